"""`SegmentStore`: a `StorageFile` folder whose checkpoints live in fsync'd batch segments.

The segments (`dotflow.storage.batch_log`) ARE the storage: a batch is made durable by writing
one segment (one fsync of the file, one of the folder), and an in-memory index maps each key to
where its latest document lies (segment, offset, size) or to a tombstone. Keys the index does not
know are read from their per-key file, as a plain `StorageFile` wrote them.

Rules that keep it correct:

- The index wins over a per-key file. When a key gets an index entry, its per-key file (if any) is
  removed once the segment is durable; a crash before that is repaired on the next open.
- Opening replays every complete segment in order. Only the newest segment can be torn (a crash
  while it was written: its flush never returned); it is deleted whole. Any other segment that is
  not whole, and a newest one that is damaged rather than cut short (`batch_inspect`),
  makes the open fail with `DamagedSegmentError` before anything is deleted or written; `repair`
  mode moves such segments aside instead (see `BatchStorage.repair`).
- The newest `compacted` segment holds the whole live state, so older segments are deleted unread.
- A segment is read again whole, and checked against its digest, before its bytes are copied into
  a compacted segment or a per-key file: damage that appeared while the folder was open is refused,
  never copied under a fresh digest.
- Compaction writes the live entries to a new compacted segment, durably, and only then removes the
  old segments. A crash in between leaves both, and replay starts from the compacted one.
- The folder holds a marker (`.batch-store`) while it holds segments, so a plain `StorageFile` opened
  on it refuses to work instead of missing checkpoints (see `StorageFile`).

Not thread-safe: `BatchStorage` serialises every call.
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, NamedTuple

from dotflow.core.exception import DamagedSegmentError
from dotflow.storage.batch_inspect import SegmentProblem, inspect_segment, read_verified
from dotflow.storage.batch_log import (
    MARKER_NAME,
    Segment,
    encode_segment,
    existing_segments,
    lock_folder,
    read_at,
    segment_path,
    write_new_file,
)
from dotflow.storage.checkpoint_files import Folder, bad_key_reason, data_file_names, unlink, unlink_sidecar
from dotflow.storage.checkpoint_files import sync_folder as fsync_folder

__all__ = ["Change", "DamagedFile", "IndexEntry", "SegmentStore"]

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


class DamagedFile(NamedTuple):
    """A damaged segment found by a `repair` open (moved aside by `move_damaged_aside`)."""

    seq: int
    path: Path
    problem: SegmentProblem


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

    def __init__(
        self,
        folder: Folder,
        clock: Callable[[], float],
        compact_segments: int = 32,
        mode: Literal["write", "read", "repair"] = "write",
    ) -> None:
        """`clock`: the folder's wall time (for expiry). `mode`: "write"; "read" (nothing on disk is
        created, changed or deleted, and the folder's lock is taken shared if its lock file exists);
        "repair" (damaged segments are skipped and listed in `damaged`, not refused)."""
        self.folder = folder
        self.clock = clock
        self.root = Path(folder.root)
        self.compact_segments = compact_segments
        self.mode = mode
        self.damaged: list[DamagedFile] = []
        self.index: dict[str, IndexEntry] = {}
        self._segments: dict[int, int] = {}  # seq -> file size, of every segment on disk
        self._live_bytes = 0  # footprint of the entries the index points to
        self._seq = 0
        lock = lock_folder(self.root, shared=mode == "read")
        # released by release(), or when this store is collected (its BatchStorage dropped without close())
        self._unlock = weakref.finalize(self, lock.release) if lock is not None else None
        if self._unlock is not None:
            self._unlock.atexit = False  # at exit the folder stays locked until the exit flush is done
        try:
            self._files = set(data_file_names(folder, ""))  # per-key files; nothing else writes while we hold the lock
            self.replayed = self._open()
        except BaseException:
            self.release()
            raise

    # ------------------------------------------------------------------------------------------ reads

    def document(self, entry: IndexEntry) -> bytes:
        return read_at(segment_path(self.root, entry.seq), entry.offset, entry.size)

    def verified_documents(self, entries: Iterable[tuple[str, IndexEntry]]) -> Iterable[tuple[str, IndexEntry, bytes]]:
        """(key, entry, document) for each of `entries` (puts), every segment read whole and checked
        against its digest first (`DamagedSegmentError` if it changed since it was replayed)."""
        by_segment: dict[int, list[tuple[str, IndexEntry]]] = {}
        for key, entry in entries:
            by_segment.setdefault(entry.seq, []).append((key, entry))
        for seq, items in sorted(by_segment.items()):
            data = read_verified(segment_path(self.root, seq), seq)
            for key, entry in items:
                yield key, entry, data[entry.offset : entry.offset + entry.size]

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
            unlink_sidecar(self.folder, target)  # a dotflow 1.0.1 sidecar must not outlive its file
            files.discard(key)

    def _garbage(self) -> int:
        return sum(self._segments.values()) - self._live_bytes

    def should_compact(self) -> bool:
        """At close: many segments, or more garbage (superseded, deleted or expired) than live data."""
        if not self._segments:
            return False
        now = self.clock()
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
        now = self.clock()
        live = [(key, entry) for key, entry in self.index.items() if entry.live(now)]
        changes: list[tuple[str, bytes | None, str | None, float | None]] = [
            (key, document, entry.revision, entry.expires_at) for key, entry, document in self.verified_documents(live)
        ]
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
        """Compact if worth it; when nothing is left in segments, remove them and the marker; release the
        folder. Read-only: release the folder only."""
        try:
            if self.mode == "read":
                return
            if self.should_compact():
                self.compact()
            if not self.index:
                self.clear_all()  # the folder is a plain StorageFile folder again
        finally:
            self.release()

    def release(self) -> None:
        if self._unlock is not None:
            self._unlock()  # closes the lock file once (releases the flock); later calls do nothing

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    # ----------------------------------------------------------------------------------------- replay

    def _open(self) -> int:
        """Rebuild the index from the segments on disk. Returns how many segments were replayed.

        Every segment is inspected before anything is deleted, so a damaged folder is refused untouched.
        """
        root = self.root
        found = existing_segments(root)
        self._seq = max([0, *(seq for seq, _ in found)])
        retired = self._retired()
        found = [(seq, path) for seq, path in found if seq > retired]
        inspected = [(seq, path, self._inspect(path, seq)) for seq, path in found]
        torn = None
        if inspected and isinstance(inspected[-1][2], SegmentProblem) and inspected[-1][2].torn:
            torn = inspected.pop()  # only the newest can be torn: its flush never returned
        damaged = [DamagedFile(seq, path, found) for seq, path, found in inspected if isinstance(found, SegmentProblem)]
        segments = [found for _, _, found in inspected if isinstance(found, Segment)]
        if damaged and self.mode != "repair":
            raise _damaged_error(damaged, segments)
        self.damaged = damaged
        compacted = [number for number, segment in enumerate(segments) if segment.compacted]
        superseded = segments[: compacted[-1]] if compacted else []  # the newest compacted one holds their state
        segments = segments[len(superseded) :]
        if self.mode != "read":
            self._tidy(retired, torn, superseded)
        for segment in segments:
            for entry in segment.entries:
                self._point(entry.key, IndexEntry(segment.seq, *entry[1:]))
            self._segments[segment.seq] = segment.size
        if self.mode != "read":
            self._drop_shadowed_files(set(self.index))
            self.ensure_marker()
        return len(segments)

    def _inspect(self, path: Path, seq: int) -> Segment | SegmentProblem:
        """`inspect_segment`, and every key it holds checked like any other: one that could leave the
        folder makes the segment damaged."""
        found = inspect_segment(path, seq)
        if isinstance(found, SegmentProblem):
            return found
        name_max = self.folder.name_max
        for entry in found.entries:
            reason = bad_key_reason(entry.key, name_max)
            if reason is not None:
                line = entry.offset - (entry.footprint if entry.size < 0 else entry.footprint - entry.size)
                keys = [entry.key for entry in found.entries]
                message = f"it holds an invalid key {entry.key!r}: {reason}; a key cannot escape the storage folder"
                return SegmentProblem(False, line, message, keys, True, found.compacted)
        return found

    def _tidy(self, retired: int, torn: tuple[int, Path, Any] | None, superseded: list[Segment]) -> None:
        """Delete what replay does not need: temp files and logs of the earlier BatchStorage, a torn newest
        segment, the segments a compacted one supersedes."""
        root = self.root
        for name in os.listdir(root):
            if name.startswith(".batch-") and name.endswith(".tmp"):
                unlink(root / name)  # a temp file of the earlier BatchStorage: never committed
        if retired:  # version 1 logs up to `.batch-retired` were applied to the per-key files already
            for seq, path in existing_segments(root):
                if seq <= retired:
                    unlink(path)
            fsync_folder(root)
            unlink(root / _RETIRED)
        if torn is not None:
            seq, path, problem = torn
            logger.warning(
                "BatchStorage: removing segment %s: %s; it was being written when the process stopped, "
                "and none of its batch was acknowledged", path, problem.reason,
            )  # fmt: skip
            unlink(path)
            fsync_folder(root)  # gone for good before a newer segment is written: it can never come back as "older"
        for segment in superseded:
            unlink(segment_path(root, segment.seq))

    def _retired(self) -> int:
        """The number in `.batch-retired` (0 if none): version 1 logs up to it were applied to files."""
        marker = self.root / _RETIRED
        try:
            text = marker.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        if not text.isdigit():
            raise ValueError(f"corrupt batch log marker {marker}: {text[:40]!r} is not a log number")
        return int(text)

    def move_damaged_aside(self) -> list[Path]:
        """Rename every damaged segment found by a "repair" open to `<name>.damaged` (kept for a person),
        durably. Returns the new paths."""
        moved = []
        for damaged in self.damaged:
            target = damaged.path.with_name(damaged.path.name + ".damaged")
            number = 1
            while target.exists():
                number += 1
                target = damaged.path.with_name(f"{damaged.path.name}.damaged-{number}")
            os.rename(damaged.path, target)
            moved.append(target)
        if moved:
            fsync_folder(self.root)
        self.damaged = []
        return moved


def _damaged_error(damaged: list[DamagedFile], segments: list[Segment]) -> DamagedSegmentError:
    first = damaged[0]
    others = f" ({len(damaged) - 1} other segment(s) are damaged too)" if len(damaged) > 1 else ""
    later = [segment.seq for segment in segments if segment.compacted and segment.seq > first.seq]
    if later:
        effect = f"compacted segment {later[-1]} holds everything it held, so repairing loses nothing"
    else:
        effect = "repairing deletes the keys whose newest checkpoint it held (their tasks run again)"
    return DamagedSegmentError(
        str(first.path), first.problem.offset, first.problem.reason + others,
        "Keep the file for inspection. To go on with the intact segments, call "
        f"BatchStorage.repair(StorageFile(path=...)), which moves it aside to {first.path.name}.damaged; {effect}",
    )  # fmt: skip
