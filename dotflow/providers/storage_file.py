"""`StorageFile`: one JSON file per checkpoint in `<path>/tasks/`, replaced atomically.

Key and file name
    `key(task)` is ``f"{workflow_id}-{task_id}.json"`` and the file name is exactly the key. A key is
    a plain file name: non-empty, at most 255 bytes in UTF-8 (or the folder's smaller NAME_MAX),
    without "/", "\\" or NUL, not "." or "..", not starting with "." (dot-files are this backend's
    temporary files) and not ending with ".meta" (dotflow 1.0.1's sidecars). Any other key raises
    ValueError before anything is written: a key cannot escape the folder.

File format (version 1), one UTF-8 JSON object (ASCII in practice) written in a single file::

    {"format": "dotflow-checkpoint",
     "version": 1,
     "value": {"$context": {"storage": ..., "task_id": ..., "workflow_id": ..., "time": ...}},
     "fingerprint": "<str>" | null,
     "expires_at": <unix time, float> | null}

`value` is the whole Context in the encoding of `dotflow.core.codec` (storage value, ids and time),
so values round-trip exactly and nothing read back is ever unpickled or evaluated. Value,
fingerprint and expiry live in the same file and are replaced together by every write, so metadata
never goes stale. A file whose `expires_at` has passed reads as missing and is deleted when touched.

Writes
    `post` encodes first (an unencodable value raises `UnencodableValueError`, a TypeError naming the
    key and the type, and nothing is written), then writes a temp file ``.<key>.<random>.tmp`` in the
    same folder, flushes and fsyncs it, renames it over the key's file with `os.replace` and fsyncs
    the folder. Readers see the old file or the new one, never a torn one, even after a crash; a
    crash can at worst leave a stray dot-file, which every method ignores. Files are created with
    mode 0600 (private to the owner), as `tempfile.mkstemp` makes them. The rename (or link) is the
    commit point: once it is done the checkpoint is stored, and what follows (removing a 1.0.1
    sidecar, the folder's fsync) is logged as a warning if it fails, never raised, so a stored
    checkpoint is never reported as a failed write.

Files written by dotflow 1.0.1
    A body that is 1.0.1's format, a JSON array of strings (each ``json.dumps(payload)``), is read as
    dotflow 1.0.1 did: no element → empty `Context()`; one element →
    ``Context(storage=json.loads(e))`` (the raw string if it does not parse); several →
    ``Context(storage=[Context(storage=v1), Context(storage=v2), ...])``. Their ``<key>.meta`` sidecar
    (``{"fingerprint"?: str, "expires_at"?: unix time}``) is honoured for them only, and the next
    `post` to the key replaces the file with the new format and removes the sidecar. Because 1.0.1
    wrote ``null`` when a task failed, `read_checkpoint` treats a legacy file whose payload is None
    (or a list of Contexts that are all None) as missing; `get` still returns what 1.0.1 returned.

Unreadable files
    A file that is neither (empty, truncated, not JSON, another JSON shape, a corrupt document)
    makes `get`, `read_checkpoint` and `atomic_swap` raise `CorruptCheckpointError` (a ValueError)
    naming the key and the file, so a resumed run stops before running anything instead of
    silently re-running the task over it. `delete` and `delete_prefix` remove such a file;
    `list_keys` lists it; a conditional write sees it as present (its version is a digest of its bytes).

Versions and concurrency
    Every write stores a fresh random `revision` in the file: that is the version `read_checkpoint`
    returns (a file without one, such as a 1.0.1 file, has the SHA-256 of its bytes as version).
    `post_if(version=None)` creates the file with `os.link` of the finished temp file, which fails if
    the key exists: no lock. Every other change of a file (the rename of a write, a delete, and the
    compare-then-rename of `post_if`, `delete_if` and `atomic_swap`) happens while holding an
    exclusive `flock` on the folder's `.lock` file (plus a thread lock), so compare-and-set is atomic
    between threads and processes of one machine. The lock is held for a read and a rename only:
    encoding, writing and fsyncing the temp file happen before it is taken. (On a platform without
    `fcntl` only threads of one process are serialised.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dotflow.abc.storage import Checkpoint, VersionedStorage
from dotflow.providers.checkpoint_format import (
    decode_document,
    document_expires_at,
    encode_document,
    is_document,
    is_legacy_body,
    is_number,
    legacy_context,
    legacy_failure,
)
from dotflow.core.context import Context
from dotflow.core.exception import CorruptCheckpointError
from dotflow.settings import Settings

__all__ = ["BATCH_MARKER", "BatchFolderError", "StorageFile"]

_META_SUFFIX = ".meta"  # dotflow 1.0.1's sidecar, read for legacy files only
_MAX_NAME_BYTES = 255  # NAME_MAX of common file systems; a folder may allow fewer
logger = logging.getLogger("dotflow")
_LOCK_NAME = ".lock"  # a dot-file: never taken for a key
_TEMP_FLAGS = (  # a private new file, never through a symlink (as tempfile.mkstemp opens one)
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)  # (Windows: no newline translation)
)
_TEMP_ATTEMPTS = 100  # random names tried before giving up (tempfile.mkstemp's TMP_MAX is 10000)
BATCH_MARKER = ".batch-store"  # present while BatchStorage keeps checkpoints in segments here


class BatchFolderError(ValueError):
    """The folder holds BatchStorage segments, which a plain StorageFile cannot see."""

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class _Raw:
    """A checkpoint file as read from disk, before its value is decoded."""

    body: Any  # the parsed JSON, or None if the file did not parse
    legacy: bool
    expires_at: float | None
    legacy_fingerprint: str | None
    identity: tuple[int, int, int]  # (inode, mtime_ns, size): to avoid deleting a file replaced meanwhile
    version: str
    problem: str | None = None  # why the file is unreadable: neither format (reads raise; delete works)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def live_version(self, now: float) -> str | None:
        """The version a conditional write compares with: None if expired or a 1.0.1 failure marker."""
        if self.expired(now) or (self.legacy and legacy_failure(legacy_context(self.body))):
            return None
        return self.version


class _FolderLock:
    """A thread lock plus an exclusive `flock` on the folder's lock file; re-entrant, a context manager.

    A flock belongs to the open file, which a fork shares, so each process opens the file itself.
    (A class rather than a generator-based context manager: it is taken once per write.)
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd
        self._depth = 0

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._depth == 0 and fcntl is not None:
                if self._fd is None or self._pid != os.getpid():
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class StorageFile(VersionedStorage):
    """Checkpoints as JSON files in `Path(path, "tasks")`, created (with parents) on construction.

    `clock`: a function returning the current unix time, used for ttl (default `time.time`; expiry
    times are stored in the files, so the clock must be wall time shared by every process).
    """

    def __init__(
        self,
        *args: Any,
        path: str | os.PathLike[str] = Settings.START_PATH,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock  # wall time: expiry times are stored in the files
        self._clock = clock
        self.path = Path(path, "tasks")
        self.path.mkdir(parents=True, exist_ok=True)
        self._root = self.path.resolve()
        self._folder = str(self._root)  # paths are built as str on the write path: pathlib costs microseconds
        self._name_max = _name_max(self._root)
        self._exclusive = _FolderLock(self._path_of(_LOCK_NAME))  # `with self._exclusive:` around a change
        self._batch_owned = False  # BatchStorage wraps this instance: the folder's segments are its own
        self._batch_checked = False  # the folder was checked for segments (once, on first use)

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}.json"

    # ------------------------------------------------------------------------------------------ writes

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        target, existed = self._target(key)
        tmp = self._write_temp(target, _encode(key, context, ttl, fingerprint, self._clock()))
        with self._exclusive:
            self._rename(tmp, target)
        self._after_write(target, replaced=existed)

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        target, existed = self._target(key)
        tmp = self._write_temp(target, _encode(key, context, ttl, fingerprint, self._clock()))
        if version is None and self._create(tmp, target):
            self._after_write(target, replaced=existed)
            return True
        # Replace (or create over an expired file): compare and rename under the lock.
        with self._exclusive:
            raw = self._read(target)
            current = None if raw is None else raw.live_version(self._clock())
            if current != version:
                _unlink(tmp)
                return False
            self._rename(tmp, target)
        self._after_write(target, replaced=True)
        return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        target = self._file(key)
        with self._exclusive:
            raw = self._read(target)
            current = None if raw is None else raw.live_version(self._clock())
            if current != version:
                return False
            if raw is not None:
                self._remove(target)
        return True

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Compare-and-set on the stored payload, atomic between threads and processes of this machine."""
        target = self._file(key)
        tmp = self._write_temp(target, _encode(key, new, ttl, fingerprint, self._clock()))
        with self._exclusive:
            loaded = self._load(key, target)
            current = None if loaded is None else loaded[0].storage
            if current != expected:
                _unlink(tmp)
                return False
            self._rename(tmp, target)
        self._after_write(target, replaced=True)
        return True

    def delete(self, key: str) -> bool:
        target = self._file(key)
        with self._exclusive:
            raw = self._read(target)
            if raw is None:
                self._unlink_meta(target)
                return False
            self._remove(target)
            return not raw.expired(self._clock())

    def delete_prefix(self, prefix: str) -> int:
        _check_prefix(prefix)
        removed = 0
        with self._exclusive:
            for name in self._names(prefix):
                target = self._path_of(name)
                raw = self._read(target)
                if raw is not None:
                    self._remove(target)
                    removed += 0 if raw.expired(self._clock()) else 1
            # 1.0.1 sidecars left without their data file
            with os.scandir(self._root) as entries:
                sidecars = [entry.name for entry in entries if entry.name.endswith(_META_SUFFIX)]
            for name in sidecars:
                data_key = name[: -len(_META_SUFFIX)]
                if data_key.startswith(prefix) and not data_key.startswith("."):
                    _unlink(self._path_of(name))
        return removed

    def list_keys(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)
        keys = []
        for name in self._names(prefix):
            target = self._path_of(name)
            raw = self._read(target)
            if raw is None:
                continue
            if raw.expired(self._clock()):
                self._remove_if_unchanged(target, raw)
                continue
            keys.append(name)
        return sorted(keys)

    # ------------------------------------------------------------------------------------------- reads

    def get(self, key: str) -> Context:
        loaded = self._load(key, self._file(key))
        return Context() if loaded is None else loaded[0]

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        loaded = self._load(key, self._file(key))
        if loaded is None:
            return None
        context, fingerprint, legacy, version = loaded
        if legacy and legacy_failure(context):
            return None
        return Checkpoint(context=context, fingerprint=fingerprint, version=version)

    # ----------------------------------------------------------------------------------------- helpers

    def _set_batch_owned(self, owned: bool) -> None:
        """Called by BatchStorage when it takes (True) or releases (False) this instance."""
        self._batch_owned = self._batch_checked = owned

    def _check_batch_folder(self) -> None:
        """On first use: refuse a folder whose checkpoints are in BatchStorage segments (one stat, once)."""
        if not self._batch_owned and os.path.exists(self._root / BATCH_MARKER):
            raise BatchFolderError(
                f"{self.path} holds checkpoints in BatchStorage segments (.batch-*.log), which a plain "
                f"StorageFile cannot see (a resume would run every task again): open it as "
                f"BatchStorage(StorageFile(path=...)), or call materialize() on one to write them back "
                f"to per-key files"
            )
        self._batch_checked = True

    def _file(self, key: str) -> str:
        """The path of `key`'s file, after checking that the key cannot leave the folder."""
        return self._target(key)[0]

    def _target(self, key: str) -> tuple[str, bool]:
        """(path of `key`'s file, whether it exists), after checking that the key cannot leave the folder."""
        if not self._batch_checked:
            self._check_batch_folder()
        reason = _bad_key_reason(key, self._name_max)
        if reason is None:
            target = self._path_of(key)
            # The folder is resolved and the key is one plain name, so only the key's own entry can
            # lead elsewhere, as a symlink: one lstat, and a full resolve only for a link.
            try:
                mode = os.lstat(target).st_mode
            except FileNotFoundError:
                return target, False
            if not stat.S_ISLNK(mode) or os.path.dirname(os.path.realpath(target)) == self._folder:
                return target, True
            reason = "it resolves to a path outside the storage folder"
        raise ValueError(f"invalid storage key {key!r}: {reason}; a key cannot escape the storage folder")

    def _path_of(self, name: str) -> str:
        return self._folder + os.sep + name

    def _names(self, prefix: str) -> list[str]:
        """Names of the data files starting with `prefix` (no dot-files, no 1.0.1 sidecars)."""
        if not self._batch_checked:
            self._check_batch_folder()
        with os.scandir(self._root) as entries:
            return [
                entry.name
                for entry in entries
                if entry.name.startswith(prefix)
                and _bad_key_reason(entry.name, self._name_max) is None
                and entry.is_file(follow_symlinks=False)  # a symlink could lead out of the folder
            ]

    def _read(self, target: str) -> _Raw | None:
        try:
            with open(target, "rb") as fh:
                stat = os.fstat(fh.fileno())
                data = fh.read()
        except FileNotFoundError:
            return None
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            problem = "the file is empty" if not data else "it is not valid JSON (truncated, or edited by hand?)"
            return _Raw(None, False, None, None, identity, _content_version(data), problem)
        if is_document(body):
            revision = body.get("revision")
            version = revision if type(revision) is str else _content_version(data)
            return _Raw(body, False, document_expires_at(body), None, identity, version)
        if not is_legacy_body(body):
            problem = f"it holds a JSON {type(body).__name__}, neither a checkpoint document nor a dotflow 1.0.1 file"
            return _Raw(None, False, None, None, identity, _content_version(data), problem)
        meta_path = self._meta_of(target)
        meta = {} if meta_path is None else _read_legacy_meta(meta_path)
        expires_at = meta.get("expires_at")
        fingerprint = meta.get("fingerprint")
        return _Raw(
            body,
            True,
            expires_at if is_number(expires_at) else None,
            fingerprint if type(fingerprint) is str else None,
            identity,
            _content_version(data),
        )

    def _load(self, key: str, target: str) -> tuple[Context, str | None, bool, str] | None:
        """(context, fingerprint, is_legacy, version) of a live file, or None if missing or expired."""
        raw = self._read(target)
        if raw is None:
            return None
        if raw.expired(self._clock()):
            self._remove_if_unchanged(target, raw)
            return None
        if raw.problem is not None:
            raise CorruptCheckpointError(key, f"{raw.problem} (file: {target})", path=str(target))
        if raw.legacy:
            return legacy_context(raw.body), raw.legacy_fingerprint, True, raw.version
        try:
            context, fingerprint = decode_document(key, raw.body, f" (file: {target})")
        except CorruptCheckpointError as exc:
            exc.path = str(target)
            raise
        return context, fingerprint, False, raw.version

    def _write_temp(self, target: str, data: bytes) -> str:
        """A durable temp file holding `data`, in the same folder as `target` (so a rename is atomic)."""
        fd, tmp = self._open_temp(os.path.basename(target))
        try:
            try:  # raw writes: a buffered file object would add an fstat, an ioctl and an lseek
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def _open_temp(self, name: str) -> tuple[int, str]:
        """A new private file ``.<name>.<random>.tmp`` opened for writing, as `tempfile.mkstemp` makes one.

        (Done here because mkstemp's name generator and pathlib handling cost more than the write itself.)
        """
        prefix = f"{self._folder}{os.sep}.{name[:100]}."
        for _ in range(_TEMP_ATTEMPTS):
            tmp = f"{prefix}{os.urandom(6).hex()}.tmp"
            try:
                return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
            except FileExistsError:
                continue  # a name another writer holds: draw again
        raise FileExistsError(f"no free temporary file name for {name!r} in {self._folder}")

    def _rename(self, tmp: str, target: str) -> None:
        try:
            os.replace(tmp, target)
        except BaseException:
            _unlink(tmp)
            raise

    def _create(self, tmp: str, target: str) -> bool:
        """Put `tmp` in place only if `target` does not exist (atomic, no lock). Consumes `tmp` on success."""
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except BaseException:
            _unlink(tmp)
            raise
        try:  # stored: the temp name is only a second link to it now, and a stray one is ignored
            _unlink(tmp)
        except OSError as exc:
            logger.warning("checkpoint %s is in place, but its temp file %s stays: %s", target, tmp, exc)
        return True

    def _after_write(self, target: str, *, replaced: bool) -> None:
        """Tidy up after a write. The checkpoint is stored already: nothing here may raise."""
        try:
            if replaced:  # a 1.0.1 sidecar must not outlive the file it described (one is read for 1.0.1 files only)
                self._unlink_meta(target)
            self._sync_folder()
        except OSError as exc:
            logger.warning("checkpoint %s is in place, but a step after the rename failed: %s", target, exc)

    def _meta_of(self, target: str | os.PathLike[str]) -> str | None:
        """The 1.0.1 sidecar of `target`, or None when its name would be too long to exist."""
        meta = os.fspath(target) + _META_SUFFIX
        if len(os.path.basename(meta).encode("utf-8", "surrogatepass")) > self._name_max:
            return None
        return meta

    def _unlink_meta(self, target: str | os.PathLike[str]) -> None:
        meta = self._meta_of(target)
        if meta is not None:
            _unlink(meta)

    def __del__(self) -> None:
        lock = getattr(self, "_exclusive", None)
        if lock is not None:
            lock.close()

    def _remove(self, target: str) -> None:
        _unlink(target)
        self._unlink_meta(target)
        self._sync_folder()

    def _remove_if_unchanged(self, target: str, raw: _Raw) -> None:
        """Delete an expired file unless another writer has replaced it since it was read."""
        with self._exclusive:
            try:
                stat = os.stat(target)
            except FileNotFoundError:
                return
            if (stat.st_ino, stat.st_mtime_ns, stat.st_size) == raw.identity:
                self._remove(target)

    def _sync_folder(self) -> None:
        if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a folder to fsync it
            return
        fd = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_legacy_meta(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            meta = json.loads(fh.read())
    except (OSError, ValueError, RecursionError):
        return {}
    return meta if type(meta) is dict else {}


def _encode(key: str, value: Any, ttl: float | None, fingerprint: str | None, now: float) -> bytes:
    # The revision is the file's version token: 128 random bits, 32 hex digits (as uuid4().hex, cheaper).
    return encode_document(key, value, ttl, fingerprint, revision=os.urandom(16).hex(), now=now)


def _content_version(data: bytes) -> str:
    """The version of a file written without a revision (by dotflow 1.0.1, say): a digest of its bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) the folder's file system takes, at most 255."""
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows) or no answer
        return _MAX_NAME_BYTES
    return min(limit, _MAX_NAME_BYTES) if limit > 0 else _MAX_NAME_BYTES


def _bad_key_reason(key: Any, name_max: int = _MAX_NAME_BYTES) -> str | None:
    if not isinstance(key, str):
        return f"a key must be a str, not {type(key).__name__}"
    if not key:
        return "a key must not be empty"
    if "/" in key or "\\" in key:
        return "it contains a path separator"
    if "\0" in key:
        return "it contains a NUL character"
    if key in (".", ".."):
        return "it names a directory"
    if key.startswith("."):
        return "it starts with '.' (reserved for temporary files)"
    if key.endswith(_META_SUFFIX):
        return "it ends with '.meta' (reserved for dotflow 1.0.1 metadata files)"
    if len(key.encode("utf-8", "surrogatepass")) > name_max:
        return f"it is longer than {name_max} bytes, the longest file name this folder takes"
    return None


def _check_prefix(prefix: Any) -> None:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")


def _unlink(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
