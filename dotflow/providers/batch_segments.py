"""`SegmentStore`: a `StorageFile` folder whose checkpoints live in fsync'd batch segments.

The segments (`dotflow.providers.batch_log`) ARE the storage: a batch is made durable by writing
one segment (one fsync of the file, one of the folder), and an in-memory index maps each key to
where its latest document lies (segment, offset, size) or to a tombstone. Keys the index does not
know are read from their per-key file, as a plain `StorageFile` wrote them.

Rules that keep it correct:

- The index wins over a per-key file. When a key gets an index entry, its per-key file (if any) is
  removed once the segment is durable; a crash before that is repaired on the next open.
- Opening replays every complete segment in order; a torn one (no valid trailer) is deleted whole.
  The newest `compacted` segment holds the whole live state, so older segments are deleted unread.
- Compaction writes the live entries to a new compacted segment, durably, and only then removes the
  old segments. A crash in between leaves both, and replay starts from the compacted one.
- The folder holds a marker (`.batch-store`) while it holds segments, so a plain `StorageFile` opened
  on it refuses to work instead of missing checkpoints (see `StorageFile`).

Not thread-safe: `BatchStorage` serialises every call.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from dotflow.providers.batch_log import (
    MARKER_NAME,
    Segment,
    encode_segment,
    existing_segments,
    fsync_folder,
    lock_folder,
    read_at,
    read_segment,
    segment_path,
    unlink,
    write_new_file,
)
from dotflow.providers.storage_file import _bad_key_reason

__all__ = ["Change", "IndexEntry", "SegmentStore"]

logger = logging.getLogger("dotflow")

_MARKER_TEXT = (
    b"This folder holds dotflow BatchStorage segments (.batch-*.log): checkpoints that are not in\n"
    b"per-key files. Open it as BatchStorage(StorageFile(path=...)), or call its materialize()\n"
    b"to write every checkpoint back to per-key files for a plain StorageFile.\n"
)
_RETIRED = ".batch-retired"  # written by the earlier BatchStorage (version 1 logs): logs up to it are applied


class Change(NamedTuple):
    """A buffered change of one key: a document to store, or None to delete the key."""

    document: bytes | None
    revision: str | None
    expires_at: float | None


class IndexEntry(NamedTuple):
    seq: int
    offset: int
    size: int  # -1: a tombstone
    revision: str | None
    expires_at: float | None
    footprint: int

    @property
    def deleted(self) -> bool:
        return self.size < 0

    def live(self, now: float) -> bool:
        return self.size >= 0 and (self.expires_at is None or now < self.expires_at)


class SegmentStore:
    """The segments and index of one StorageFile folder (see the module docstring)."""

    def __init__(self, storage: Any, compact_segments: int = 32) -> None:
        self.storage = storage
        self.root: Path = storage._root
        self.compact_segments = compact_segments
        self.index: dict[str, IndexEntry] = {}
        self._segments: dict[int, int] = {}  # seq -> file size, of every segment on disk
        self._live_bytes = 0  # footprint of the entries the index points to
        self._seq = 0
        self._lock_fd = lock_folder(self.root)
        try:
            self._files = set(storage._names(""))  # per-key files; nothing else writes while we hold the lock
            self.replayed = self._open()
        except BaseException:
            self.release()
            raise

    # ------------------------------------------------------------------------------------------ reads

    def document(self, entry: IndexEntry) -> bytes:
        return read_at(segment_path(self.root, entry.seq), entry.offset, entry.size)

    def forget_file(self, key: str) -> None:
        self._files.discard(key)

    def file_keys(self) -> set[str]:
        return self._files

    # ----------------------------------------------------------------------------------------- writes

    def commit(self, changes: dict[str, Change]) -> None:
        """Write `changes` as one durable segment, then point the index at it."""
        if not self._segments:
            self.ensure_marker()  # the first segment since the folder was plain (after materialize)
        self._seq += 1
        seq = self._seq
        data, entries = encode_segment(seq, [(key, *change) for key, change in changes.items()])
        write_new_file(segment_path(self.root, seq), data, self.root)  # the commit point
        self._segments[seq] = len(data)
        for entry in entries:
            self._point(entry.key, IndexEntry(seq, *entry[1:]))
        try:  # the batch is stored: nothing after this point may report the commit as failed
            self._drop_shadowed_files(changes)
            if self._garbage() > max(self._live_bytes, 4 << 20):
                self.compact()
        except Exception as exc:
            logger.warning("BatchStorage: segment %d is stored, but tidying up after it failed: %s", seq, exc)

    def _point(self, key: str, entry: IndexEntry) -> None:
        old = self.index.get(key)
        if old is not None:
            self._live_bytes -= old.footprint
        self.index[key] = entry
        self._live_bytes += entry.footprint

    def _drop_shadowed_files(self, keys: Iterable[str]) -> None:
        """Remove the per-key files the index now overrides (no fsync: the index wins until they are gone)."""
        files = self._files
        if not files:
            return
        for key in [key for key in keys if key in files]:
            target = self.root / key
            unlink(target)
            self.storage._unlink_meta(target)  # a dotflow 1.0.1 sidecar must not outlive its file
            files.discard(key)

    def _garbage(self) -> int:
        return sum(self._segments.values()) - self._live_bytes

    def should_compact(self) -> bool:
        """At close: many segments, or more garbage (superseded, deleted or expired) than live data."""
        if not self._segments:
            return False
        now = self.storage._clock()
        live = sum(entry.footprint for entry in self.index.values() if entry.live(now))
        return len(self._segments) > self.compact_segments or sum(self._segments.values()) - live > live

    def compact(self) -> None:
        """Merge the live entries into one new compacted segment, durably, then remove the old ones.

        Tombstones and expired entries are left out: the per-key files they hid were removed when
        they were written, and the new segment's folder fsync makes that durable too.
        """
        old = sorted(self._segments)
        if not old:
            return
        now = self.storage._clock()
        by_segment: dict[int, list[tuple[str, IndexEntry]]] = {}
        for key, entry in self.index.items():
            if not entry.live(now):
                continue
            by_segment.setdefault(entry.seq, []).append((key, entry))
        changes: list[tuple[str, bytes | None, str | None, float | None]] = []
        for seq, items in by_segment.items():
            data = segment_path(self.root, seq).read_bytes()
            for key, entry in items:
                changes.append((key, data[entry.offset : entry.offset + entry.size], entry.revision, entry.expires_at))
        self._seq += 1
        seq = self._seq
        data, entries = encode_segment(seq, changes, compacted=True)
        if not entries:  # nothing live: no segment at all is the same state
            fsync_folder(self.root)  # the per-key files the tombstones hid are gone for good first
            for number in old:
                unlink(segment_path(self.root, number))
            self._segments, self.index, self._live_bytes = {}, {}, 0
            return
        write_new_file(segment_path(self.root, seq), data, self.root)
        for number in old:
            unlink(segment_path(self.root, number))  # a crash leaves them: replay skips what precedes a compacted segment
        self._segments = {seq: len(data)}
        self.index = {}
        self._live_bytes = 0
        for written in entries:
            self._point(written.key, IndexEntry(seq, *written[1:]))

    def clear_all(self) -> None:
        """Remove every segment and the marker (after `materialize` wrote the live checkpoints to files)."""
        if self._segments:
            for seq in sorted(self._segments):
                unlink(segment_path(self.root, seq))
            fsync_folder(self.root)  # the segments are gone before the marker: a crash keeps the marker
        marker = self.root / MARKER_NAME
        if marker.exists():
            unlink(marker)
            fsync_folder(self.root)
        self._segments = {}
        self.index = {}
        self._live_bytes = 0

    def ensure_marker(self) -> None:
        marker = self.root / MARKER_NAME
        if not marker.exists():
            write_new_file(marker, _MARKER_TEXT, self.root)

    def close(self) -> None:
        """Compact if worth it; when nothing is left in segments, remove them and the marker; release the folder."""
        try:
            if self.should_compact():
                self.compact()
            if not self.index:
                self.clear_all()  # the folder is a plain StorageFile folder again
        finally:
            self.release()

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    # ----------------------------------------------------------------------------------------- replay

    def _open(self) -> int:
        """Rebuild the index from the segments on disk. Returns how many segments were replayed."""
        root = self.root
        for name in os.listdir(root):
            if name.startswith(".batch-") and name.endswith(".tmp"):
                unlink(root / name)  # a temp file of the earlier BatchStorage: never committed
        found = existing_segments(root)
        self._seq = max([0, *(seq for seq, _ in found)])
        found = self._skip_retired(found)
        segments: list[Segment] = []
        for seq, path in found:
            segment = read_segment(path)
            if segment is None or segment.seq != seq:
                # torn by a crash: its flush never returned, so nothing in it was acknowledged
                logger.warning("BatchStorage: dropping incomplete batch segment %s (torn by a crash?)", path)
                unlink(path)
                continue
            if segment.compacted:  # holds everything that came before it
                for older in segments:
                    unlink(segment_path(root, older.seq))
                segments = []
            segments.append(segment)
        name_max = self.storage._name_max
        for segment in segments:
            for entry in segment.entries:
                reason = _bad_key_reason(entry.key, name_max)
                if reason is not None:  # a key read from disk is checked like any other
                    raise ValueError(
                        f"batch segment {segment.seq} holds an invalid key {entry.key!r}: {reason}; "
                        f"a key cannot escape the storage folder"
                    )
                self._point(entry.key, IndexEntry(segment.seq, *entry[1:]))
            self._segments[segment.seq] = segment.size
        self._drop_shadowed_files(set(self.index))
        self.ensure_marker()
        return len(segments)

    def _skip_retired(self, found: list[tuple[int, Path]]) -> list[tuple[int, Path]]:
        """Version 1 logs up to `.batch-retired` were applied to the per-key files already: delete them."""
        marker = self.root / _RETIRED
        try:
            text = marker.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return found
        if not text.isdigit():
            raise ValueError(f"corrupt batch log marker {marker}: {text[:40]!r} is not a log number")
        retired = int(text)
        for seq, path in found:
            if seq <= retired:
                unlink(path)
        fsync_folder(self.root)
        unlink(marker)
        return [(seq, path) for seq, path in found if seq > retired]
