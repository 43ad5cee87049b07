"""The on-disk format of `BatchStorage`'s segments, and the few file operations around them.

A segment is one batch of checkpoint changes, written once and fsync'd once (then the folder):
``<path>/tasks/.batch-<seq>.log``, `seq` a 16-digit number that grows with every segment.

Format (version 2), every line JSON, nothing evaluated:

    {"format": "dotflow-batch", "version": 2, "seq": N, "count": C, "compacted": false}
    {"key": K, "op": "put", "size": S, "revision": R, "expires_at": E}   then the S bytes of the
                                                                         checkpoint document
    {"key": K, "op": "delete"}                                           (a tombstone)
    ...
    {"sha256": "<hex digest of every byte above>"}

The trailer makes a torn segment (a crash mid-write) recognisable: it is dropped whole, never
partly applied (`batch_inspect` tells a torn segment from a damaged one). A `compacted` segment holds every live checkpoint of the folder as of its writing,
so the segments older than it are garbage. Version 1 logs (written by the earlier BatchStorage,
put entries only, no revision or expiry in the entry line) are still read: their documents are
parsed for those two fields.

The folder also holds ``.batch.lock`` (an exclusive `flock` while a BatchStorage has the folder
open) and ``.batch-store``, the marker that tells a plain `StorageFile` the folder holds segments.
A process forked while it holds the lock does not keep it (`FolderLock`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

from dotflow.core.exception import DamagedSegmentError
from dotflow.storage.checkpoint_files import BATCH_MARKER, sync_folder, unlink, write_all

__all__ = [
    "LOG_FORMAT",
    "MARKER_NAME",
    "FolderLock",
    "LockedFolderError",
    "Segment",
    "SegmentEntry",
    "encode_segment",
    "existing_segments",
    "lock_folder",
    "read_at",
    "read_segment",
    "segment_path",
    "write_new_file",
]

LOG_FORMAT = "dotflow-batch"
LOG_VERSION = 2
MARKER_NAME = BATCH_MARKER
_PREFIX = ".batch-"
_SUFFIX = ".log"
_LOCK = ".batch.lock"
_TRAILER_SIZE = len('{"sha256":""}\n') + 64


class LockedFolderError(RuntimeError):
    """Another BatchStorage (in this process or another) has the folder open."""


class SegmentEntry(NamedTuple):
    """One change in a segment: a put (document at `offset`, `size` bytes) or a tombstone (size -1)."""

    key: str
    offset: int
    size: int  # -1: a tombstone
    revision: str | None
    expires_at: float | None
    footprint: int  # bytes the entry takes in the segment (its line and its document)


class Segment(NamedTuple):
    seq: int
    compacted: bool
    entries: list[SegmentEntry]
    size: int  # bytes of the whole file


def segment_path(root: Path, seq: int) -> Path:
    return root / f"{_PREFIX}{seq:016d}{_SUFFIX}"


def encode_segment(
    seq: int, changes: list[tuple[str, bytes | None, str | None, float | None]], compacted: bool = False
) -> tuple[bytes, list[SegmentEntry]]:
    """The bytes of a segment holding `changes` (key, document or None for a delete, revision, expiry)."""
    header = _line({"format": LOG_FORMAT, "version": LOG_VERSION, "seq": seq, "count": len(changes),
                    "compacted": compacted})  # fmt: skip
    parts = [header]
    entries = []
    offset = len(header)
    for key, document, revision, expires_at in changes:
        if document is None:
            line = _line({"key": key, "op": "delete"})
            entries.append(SegmentEntry(key, offset + len(line), -1, None, None, len(line)))
            parts.append(line)
            offset += len(line)
            continue
        line = _line({"key": key, "op": "put", "size": len(document), "revision": revision, "expires_at": expires_at})
        entries.append(SegmentEntry(key, offset + len(line), len(document), revision, expires_at, len(line) + len(document)))
        parts.append(line)
        parts.append(document)
        offset += len(line) + len(document)
    body = b"".join(parts)
    return body + _line({"sha256": hashlib.sha256(body).hexdigest()}), entries


def _line(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, separators=(",", ":")) + "\n").encode("utf-8")


def read_segment(path: Path) -> Segment | None:
    """The entries of a complete segment, or None if it is torn, unreadable or not a segment."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _TRAILER_SIZE:
        return None
    body, trailer = data[:-_TRAILER_SIZE], data[-_TRAILER_SIZE:]
    if trailer != _line({"sha256": hashlib.sha256(body).hexdigest()}):
        return None
    try:
        return _parse(body, len(data))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def _parse(body: bytes, size: int) -> Segment | None:
    end = body.index(b"\n") + 1
    header = json.loads(body[:end])
    if header.get("format") != LOG_FORMAT or header.get("version") not in (1, LOG_VERSION):
        return None
    legacy = header["version"] == 1
    entries = []
    for _ in range(header["count"]):
        line_end = body.index(b"\n", end) + 1
        meta = json.loads(body[end:line_end])
        key = meta["key"]
        if type(key) is not str:
            return None
        if meta["op"] == "delete":
            entries.append(SegmentEntry(key, line_end, -1, None, None, line_end - end))
            end = line_end
            continue
        if meta["op"] != "put":
            return None
        length = meta["size"]
        if legacy:  # version 1 kept revision and expiry in the document only
            document = json.loads(body[line_end : line_end + length])
            revision, expires_at = document.get("revision"), document.get("expires_at")
        else:
            revision, expires_at = meta.get("revision"), meta.get("expires_at")
        if type(revision) is not str:
            revision = None
        if type(expires_at) not in (int, float):
            expires_at = None
        entries.append(SegmentEntry(key, line_end, length, revision, expires_at, line_end + length - end))
        end = line_end + length
    if end != len(body):
        return None
    return Segment(header["seq"], bool(header.get("compacted", False)), entries, size)


def existing_segments(root: Path) -> list[tuple[int, Path]]:
    """(seq, path) of every segment file in the folder, in order."""
    found = []
    with os.scandir(root) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
                number = name[len(_PREFIX) : -len(_SUFFIX)]
                if number.isdigit():
                    found.append((int(number), root / name))
    return sorted(found)


# ----------------------------------------------------------------------------------------- file I/O


def write_new_file(path: Path, data: bytes, folder: Path) -> None:
    """Create `path` (it must not exist) holding `data`, fsync it, then fsync the folder.

    No temp file: a crash mid-write leaves a file without its trailer, which readers drop.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        sync_folder(folder)
    except BaseException:
        unlink(path)  # reported as not written: it must not turn up on the next open either
        raise


def read_at(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, size, offset)
    finally:
        os.close(fd)
    if len(data) != size:
        raise DamagedSegmentError(
            str(path), offset, f"it is shorter than its index says (cut short after it was opened): "
            f"{len(data)} of {size} bytes"
        )  # fmt: skip
    return data


class FolderLock:
    """The `flock` on a folder's `.batch.lock`, held through one file descriptor of this process.

    A process forked from this one does not keep it: right after a fork the child closes its copy
    of the descriptor (`os.register_at_fork`). The lock belongs to the open file description that
    parent and child share, so closing the child's copy releases nothing (the parent still holds
    the lock), while the parent's `release()` does release it even if children it forked are
    still alive (the workers of a `parallel` run, killed with it a moment later). Descriptors made
    by `os.open` are not inherited across `exec` anyway.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        _HELD.add(self)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Close the descriptor (once; later calls do nothing)."""
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        if fd is not None:
            os.close(fd)


_HELD: set[FolderLock] = set()  # the folder locks this process holds


def _drop_inherited_locks() -> None:
    for lock in list(_HELD):
        lock.release()


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX system
    os.register_at_fork(after_in_child=_drop_inherited_locks)


def lock_folder(root: Path, shared: bool = False) -> FolderLock | None:
    """A non-blocking flock on the folder's `.batch.lock` (released when the fd closes): exclusive, or
    `shared` (for a reader: then the lock file is never created, and a folder without one is not locked)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        return None
    try:
        fd = os.open(root / _LOCK, os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        if shared:
            return None
        raise
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedFolderError(
            f"{root} is already open in a BatchStorage (this process or another); close that one first"
        ) from None
    return FolderLock(fd)
