"""`FileBatchLog`: group commit for `StorageFile`: one fsync'd log file per batch of checkpoints.

A batch becomes durable in one step, then is applied to the per-key files:

1. **Log.** The batch is written to ``<path>/tasks/.batch-<seq>.log`` and fsync'd, then the folder
   is fsync'd. That is the commit point: 2 fsyncs for the whole batch, whatever its size. The log
   ends with the SHA-256 of everything before it, so a log torn by a crash is recognised and
   ignored as a whole: a batch is never partly applied.
2. **Apply.** Each checkpoint is written to its own file as `StorageFile.post` would write it (a temp
   file renamed over the key's file, so a reader sees the old file or the new one), but without an
   fsync per file: the log already holds it.
3. **Retire.** The log stays until the files it was applied to are on disk. Every `retire_every`
   batches, and on `close()`, the file system is synced once (`syncfs(2)` on Linux; elsewhere one
   fsync per file written since the last retirement), then the number of the newest retired log is
   written to ``.batch-retired`` (atomically, durably) and the retired logs are deleted.

Opening replays, in order, every complete log newer than ``.batch-retired`` (a crash came between
its commit and its retirement), then retires them; a torn log is deleted unread. Replaying a log
writes again what it holds, so the folder must not be written by anything else between a crash and
the next open through this class (`BatchStorage` takes an exclusive lock on the folder while open).

Log format (version 1): a header line ``{"format": "dotflow-batch", "version": 1, "seq": N,
"count": C}``, then per checkpoint a line ``{"key": K, "op": "put", "size": S}`` followed by the S
bytes of the checkpoint document (`checkpoint_format.encode_document`), then a trailer line
``{"sha256": "<hex of every byte above>"}``. All of it is parsed as JSON; nothing is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Iterable

__all__ = ["FileBatchLog", "LOG_FORMAT", "LockedFolderError"]

LOG_FORMAT = "dotflow-batch"
LOG_VERSION = 1
_LOG_PREFIX = ".batch-"
_LOG_SUFFIX = ".log"
_RETIRED = ".batch-retired"
_LOCK = ".batch.lock"
_TRAILER_SIZE = len('{"sha256":""}\n') + 64


class LockedFolderError(RuntimeError):
    """Another BatchStorage (in this process or another) has the folder open."""


class FileBatchLog:
    """The batch log of one `StorageFile` folder. Not thread-safe: `BatchStorage` serialises calls."""

    def __init__(self, storage: Any, retire_every: int = 16) -> None:
        self.storage = storage
        self.root: Path = storage._root  # the StorageFile's resolved folder
        self.retire_every = retire_every
        self._lock_fd = _lock_folder(self.root)
        self._unretired: list[tuple[int, Path]] = []  # logs committed since the last retirement
        self._written: set[str] = set()  # files applied since the last retirement (for non-Linux syncs)
        with os.scandir(self.root) as found:  # dotflow 1.0.1 sidecars to remove when their file is replaced
            self._sidecars = any(entry.name.endswith(".meta") for entry in found)
        self._seq = 0
        try:
            self.replayed = self._recover()
        except BaseException:
            self.close_lock()
            raise

    # -------------------------------------------------------------------------------------- commit

    def commit(self, entries: list[tuple[str, bytes]]) -> None:
        """Make `entries` (key, document bytes) durable as one batch, then apply them."""
        self._seq += 1
        path = self.root / f"{_LOG_PREFIX}{self._seq:016d}{_LOG_SUFFIX}"
        _write_durably(path, _log_bytes(self._seq, entries), self.root)
        self._unretired.append((self._seq, path))
        self.apply(entries)
        if len(self._unretired) >= self.retire_every:
            self.retire()

    def apply(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """Write each checkpoint file, without an fsync each: a committed log covers them.

        A key with no file yet gets its file created and written in place (a reader, or a crash,
        meeting it half-written sees an unparsable file, which reads as missing: what it was before);
        an existing file is replaced by rename (a reader sees the old or the new one, never a torn one).
        File creation is the dominant cost here, so no temp file is made when none is needed.
        """
        storage = self.storage
        root = str(self.root)
        with storage._exclusive():  # StorageFile's folder lock: compare-and-set writers see whole batches
            for key, data in entries:
                target = os.path.join(root, key)  # checked by `storage._file` when posted or replayed
                try:
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    _replace(target, data)
                else:
                    try:
                        _write_all(fd, data)
                    finally:
                        os.close(fd)
                if self._sidecars:
                    _unlink(target + ".meta")  # a 1.0.1 sidecar must not outlive its file
                self._written.add(target)

    def retire(self) -> None:
        """Once the applied files are on disk, record the newest committed log as retired and drop the logs."""
        if not self._unretired:
            return
        _sync_files(self.root, self._written)
        newest = self._unretired[-1][0]
        _write_durably(self.root / _RETIRED, f"{newest}\n".encode(), self.root)
        for _, path in self._unretired:
            _unlink(path)
        self._unretired.clear()
        self._written.clear()

    def close(self) -> None:
        try:
            self.retire()
        finally:
            self.close_lock()

    def close_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # ------------------------------------------------------------------------------------- recovery

    def _recover(self) -> int:
        """Replay the committed logs a crash left unretired; delete torn ones. Returns how many were replayed."""
        retired = _read_retired(self.root / _RETIRED)
        logs = sorted(_existing_logs(self.root))
        self._seq = max([retired, *(seq for seq, _ in logs)])
        replayed = 0
        for seq, path in logs:
            if seq <= retired:
                _unlink(path)  # retired, but its deletion did not reach the disk
                continue
            entries = read_log(path)
            if entries is None:
                _unlink(path)  # torn: its flush never returned, so nothing in it was acknowledged
                continue
            for key, _ in entries:
                self.storage._file(key)  # a key from disk is checked like any other: it cannot leave the folder
            self.apply(entries)
            self._unretired.append((seq, path))
            replayed += 1
        self.retire()
        return replayed


# ------------------------------------------------------------------------------------------ format


def _log_bytes(seq: int, entries: list[tuple[str, bytes]]) -> bytes:
    parts = [_line({"format": LOG_FORMAT, "version": LOG_VERSION, "seq": seq, "count": len(entries)})]
    for key, data in entries:
        parts.append(_line({"key": key, "op": "put", "size": len(data)}))
        parts.append(data)
    body = b"".join(parts)
    return body + _line({"sha256": hashlib.sha256(body).hexdigest()})


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, separators=(",", ":")) + "\n").encode("utf-8")


def read_log(path: Path) -> list[tuple[str, bytes]] | None:
    """The (key, document) entries of a complete log, or None if it is torn or not a log."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        body, trailer = data[:-_TRAILER_SIZE], data[-_TRAILER_SIZE:]
        if len(data) < _TRAILER_SIZE or trailer != _line({"sha256": hashlib.sha256(body).hexdigest()}):
            return None
        end = body.index(b"\n") + 1
        header = json.loads(body[:end])
        if header.get("format") != LOG_FORMAT or header.get("version") != LOG_VERSION:
            return None
        entries = []
        for _ in range(header["count"]):
            line_end = body.index(b"\n", end) + 1
            meta = json.loads(body[end:line_end])
            size = meta["size"]
            entries.append((meta["key"], body[line_end : line_end + size]))
            end = line_end + size
        return entries if end == len(body) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _existing_logs(root: Path) -> list[tuple[int, Path]]:
    found = []
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(_LOG_PREFIX) and name.endswith(_LOG_SUFFIX):
                number = name[len(_LOG_PREFIX) : -len(_LOG_SUFFIX)]
                if number.isdigit():
                    found.append((int(number), root / name))
    return found


def _read_retired(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    if not text.isdigit():
        raise ValueError(f"corrupt batch log marker {path}: {text[:40]!r} is not a log number")
    return int(text)


# ----------------------------------------------------------------------------------------- file I/O


def _write_durably(path: Path, data: bytes, folder: Path) -> None:
    """Temp file, write, fsync, rename over `path`, fsync the folder."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_folder(folder)


def _replace(target: str, data: bytes) -> None:
    """Temp file in the same folder, renamed over `target` (no fsync)."""
    head, name = os.path.split(target)
    tmp = os.path.join(head, f".{name[:100]}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        _unlink(tmp)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_folder(folder: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a folder to fsync it
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNCFS: list[Any] = []  # [syncfs function or None], looked up on first use


def _syncfs() -> Any:
    if not _SYNCFS:
        function = None
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                function = ctypes.CDLL(None, use_errno=True).syncfs
            except (OSError, AttributeError):
                function = None
        _SYNCFS.append(function)
    return _SYNCFS[0]


def _sync_files(folder: Path, written: set[str]) -> None:
    """Make every file written since the last retirement durable, and the folder's entries."""
    syncfs = _syncfs()
    if syncfs is not None:
        import ctypes

        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if syncfs(fd) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"syncfs of {folder} failed: {os.strerror(errno)}")
        finally:
            os.close(fd)
        return
    for path in written:  # no syncfs: one fsync per file (only at retirement, not per batch)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # replaced or deleted since: whatever replaced it was written durably
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_folder(folder)


def _lock_folder(root: Path) -> int | None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        return None
    fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedFolderError(
            f"{root} is already open in a BatchStorage (this process or another); close that one first"
        ) from None
    return fd


def _unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
