"""Tell a torn BatchStorage segment from a damaged one (the format is in `batch_log`).

A crash while a segment is written leaves a prefix of it (possibly followed by NUL bytes, which
some file systems leave in space they had not written before a power loss): every line it holds is
whole and well-formed, and the bytes run out before the trailer. Anything else is damage: a line
that does not parse, a trailer whose digest does not match the bytes before it, a header that names
another segment, or a file that ends with a whole trailer line although its records need more bytes
(its write finished, then it changed). Only the newest segment can be torn; `batch_segments`
decides what that means for the folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from dotflow.core.exception import DamagedSegmentError
from dotflow.storage.batch_log import _TRAILER_SIZE, LOG_FORMAT, LOG_VERSION, Segment, _line, _parse

__all__ = ["SegmentProblem", "inspect_segment", "read_verified"]

_TRAILER_LINE = re.compile(rb'\{"sha256":"[0-9a-f]{64}"\}\n')
_ENTRY_LINE = re.compile(rb'^\{"key":("(?:[^"\\\n]|\\.)*"),"op":"(?:put|delete)"', re.MULTILINE)
_HEX = frozenset(b"0123456789abcdef")


class SegmentProblem(NamedTuple):
    """Why a segment file cannot be replayed (`inspect_segment`)."""

    torn: bool  # True: a prefix of a segment, as a crash during its write leaves; False: damage
    offset: int  # the byte where the problem was found
    reason: str
    keys: list[str]  # keys named by the record lines that could be read (best effort when damaged)
    all_keys_read: bool  # every record line was read (so `keys` names every key of the segment)
    compacted: bool  # its header says it is a compacted segment (False when the header is unreadable)


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
            if segment.seq != seq:  # whole, but under another segment's name
                keys = [entry.key for entry in segment.entries]
                return SegmentProblem(False, 0, f"its header says segment {segment.seq}", keys, True, segment.compacted)
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
