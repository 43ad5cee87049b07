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
partly applied. `inspect_segment` tells a torn write from damage: a torn write leaves a prefix of
the segment (possibly followed by NUL bytes, as some file systems leave after a power loss): every
line it holds is whole and well-formed and the bytes run out before the trailer. Anything else (a
line that does not parse, a trailer whose digest does not match, a segment that ends with a whole
trailer line yet lacks bytes its records need) is damage. A `compacted` segment holds every live checkpoint of the folder as of its writing,
so the segments older than it are garbage. Version 1 logs (written by the earlier BatchStorage,
put entries only, no revision or expiry in the entry line) are still read: their documents are
parsed for those two fields.

The folder also holds ``.batch.lock`` (an exclusive `flock` while a BatchStorage has the folder
open) and ``.batch-store``, the marker that tells a plain `StorageFile` the folder holds segments.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from dotflow.core.exception import DamagedSegmentError
from dotflow.providers.storage_file import BATCH_MARKER

__all__ = [
    "LOG_FORMAT",
    "MARKER_NAME",
    "LockedFolderError",
    "Segment",
    "SegmentEntry",
    "SegmentProblem",
    "encode_segment",
    "existing_segments",
    "fsync_folder",
    "inspect_segment",
    "lock_folder",
    "read_at",
    "read_segment",
    "read_verified",
    "segment_path",
    "unlink",
    "write_new_file",
]

LOG_FORMAT = "dotflow-batch"
LOG_VERSION = 2
MARKER_NAME = BATCH_MARKER
_PREFIX = ".batch-"
_SUFFIX = ".log"
_LOCK = ".batch.lock"
_TRAILER_SIZE = len('{"sha256":""}\n') + 64
_TRAILER_LINE = re.compile(rb'\{"sha256":"[0-9a-f]{64}"\}\n')
_ENTRY_LINE = re.compile(rb'^\{"key":("(?:[^"\\\n]|\\.)*"),"op":"(?:put|delete)"', re.MULTILINE)
_HEX = frozenset(b"0123456789abcdef")


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


class SegmentProblem(NamedTuple):
    """Why a segment file cannot be replayed (`inspect_segment`)."""

    torn: bool  # True: a prefix of a segment, as a crash during its write leaves; False: damage
    offset: int  # the byte where the problem was found
    reason: str
    keys: list[str]  # keys named by the record lines that could be read (best effort when damaged)
    all_keys_read: bool  # every record line was read (so `keys` names every key of the segment)
    compacted: bool  # its header says it is a compacted segment (False when the header is unreadable)


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


def inspect_segment(path: Path, seq: int) -> Segment | SegmentProblem:
    """The segment `seq` at `path` if it is whole, else what is wrong with it: torn or damaged."""
    data = path.read_bytes()
    if len(data) >= _TRAILER_SIZE:
        body = data[:-_TRAILER_SIZE]
        if data[-_TRAILER_SIZE:] == _line({"sha256": hashlib.sha256(body).hexdigest()}):
            try:
                segment = _parse(body, len(data))
            except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
                segment = None
            if segment is None:  # its digest matches, yet it is not a segment dotflow wrote
                return _walk(data, seq)._replace(torn=False)
            if segment.seq != seq:
                return SegmentProblem(False, 0, f"its header says segment {segment.seq}", [], False, segment.compacted)
            return segment
    return _walk(data, seq)


def _walk(data: bytes, seq: int) -> SegmentProblem:
    """Read `data` (not a whole segment) record by record to find where and how it goes wrong."""
    finished = _TRAILER_LINE.fullmatch(data, max(0, len(data) - _TRAILER_SIZE)) is not None
    data = data.rstrip(b"\0")  # JSON lines never hold a NUL byte: a run of them at the end is unwritten space
    keys: list[str] = []
    compacted = False

    def problem(torn: bool, offset: int, reason: str, all_read: bool = False) -> SegmentProblem:
        if torn and finished:  # its last line was written: not a write cut short
            torn, reason = False, f"{reason}, yet it ends with a whole trailer line"
        if not torn and not all_read:
            keys.extend(_scan_keys(data, offset))
        return SegmentProblem(torn, offset, reason, keys, all_read, compacted)

    def cut(offset: int) -> SegmentProblem:
        return problem(True, offset, f"it ends at byte {len(data)}, inside the record that starts at byte {offset}")

    end = data.find(b"\n") + 1
    if end == 0:
        return cut(0)
    header = _json(data[:end])
    if header is None or header.get("format") != LOG_FORMAT or header.get("version") not in (1, LOG_VERSION):
        return problem(False, 0, "its first line is not a dotflow-batch header")
    compacted = header.get("compacted") is True
    count = header.get("count")
    if header.get("seq") != seq or type(count) is not int or count < 0:
        return problem(False, 0, f"its header does not describe segment {seq}")
    for _ in range(count):
        start, end = end, data.find(b"\n", end) + 1
        if end == 0:
            return cut(start)
        meta = _json(data[start:end]) or {}
        key, op, size = meta.get("key"), meta.get("op"), meta.get("size")
        if op == "delete":
            size = 0
        if type(key) is not str or op not in ("put", "delete") or type(size) is not int or size < 0:
            return problem(False, start, "this line is not a valid record")
        keys.append(key)
        if end + size > len(data):
            return cut(start)
        end += size
    rest = data[end:]
    if len(rest) < _TRAILER_SIZE and _trailer_prefix(rest):
        return problem(True, end, f"it ends at byte {len(data)}, inside its trailer", all_read=True)
    if _TRAILER_LINE.fullmatch(rest):
        return problem(False, end, f"the SHA-256 in its trailer (at byte {end}) does not match the bytes before it: "
                       f"a byte before it changed", all_read=True)  # fmt: skip
    return problem(False, end, "its trailer line is missing or garbled", all_read=True)


def _json(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _trailer_prefix(data: bytes) -> bool:
    """True if `data` can be the start of a trailer line (a write cut short inside it)."""
    head = b'{"sha256":"'
    tail = b'"}\n'
    for number, byte in enumerate(data):
        if number < len(head):
            ok = byte == head[number]
        elif number < len(head) + 64:
            ok = byte in _HEX
        else:
            ok = byte == tail[number - len(head) - 64]
        if not ok:
            return False
    return True


def _scan_keys(data: bytes, offset: int) -> list[str]:
    """Keys of the record lines found after `offset` in a damaged segment (documents never start a
    line with `{"key":`, so a match is a record line)."""
    keys = []
    for match in _ENTRY_LINE.finditer(data, offset):
        try:
            key = json.loads(match.group(1))
        except ValueError:
            continue
        if isinstance(key, str):
            keys.append(key)
    return keys


def read_verified(path: Path, seq: int) -> bytes:
    """The bytes of the segment at `path`, checked against its trailer (they may have changed since it
    was replayed): `DamagedSegmentError` if they no longer match."""
    data = path.read_bytes()
    body = data[:-_TRAILER_SIZE]
    if len(data) < _TRAILER_SIZE or data[-_TRAILER_SIZE:] != _line({"sha256": hashlib.sha256(body).hexdigest()}):
        found = inspect_segment(path, seq)
        offset, reason = (found.offset, found.reason) if isinstance(found, SegmentProblem) else (0, "it changed")
        raise DamagedSegmentError(str(path), offset, f"{reason} (it changed after it was opened)")
    return data


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
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_folder(folder)
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_folder(folder: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a folder to fsync it
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_folder(root: Path, shared: bool = False) -> int | None:
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
    return fd


def unlink(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
