"""`FileBatchStorage`: what `BatchStorage(StorageFile(path=...))` builds. Group commit into segments.

Each flush writes the buffered changes as one segment (`batch_segments.SegmentStore`): one fsync of
the segment and one of the folder, whatever the batch's size, and no per-key file. Reads look at the
buffer, then the segment index, then the per-key file a plain `StorageFile` wrote before.

It holds the folder exclusively (an `flock`, across processes), so it answers conditional writes
itself: a key's version is the `revision` of its document (as `StorageFile` uses), compared and
staged under one lock. A conditional write is durable, like a `post`, once its flush returns.

Deletes are tombstones in a batch (`delete`, `delete_if`) or, for a key only a per-key file holds,
the `StorageFile` delete itself (durable at once). `delete_prefix`, `clear` and `atomic_swap` flush
before they return. `materialize()` writes every live checkpoint back to per-key files and removes
the segments, so the folder can be used by a plain `StorageFile` again.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from pathlib import Path
from typing import Any, Literal, NamedTuple

from dotflow.abc.storage import Checkpoint, VersionedStorage
from dotflow.core.context import Context
from dotflow.providers.batch_segments import Change, SegmentStore
from dotflow.providers.batch_storage import BatchStorage
from dotflow.providers.checkpoint_format import encode_document, parse_document
from dotflow.providers.storage_file import StorageFile, _bad_key_reason, _check_prefix

__all__ = ["FileBatchStorage", "RepairReport", "repair"]

logger = logging.getLogger("dotflow")

_DELETE = Change(None, None, None)


class FileBatchStorage(BatchStorage, VersionedStorage):
    """`BatchStorage` on a `StorageFile`: segments, an index and conditional writes (module docstring)."""

    storage: StorageFile
    _pending: dict[str, Change]

    _mode: Literal["write", "repair"] = "write"

    def _open_backend(self) -> None:
        file_storage = self.storage
        file_storage._set_batch_owned(True)  # its own check for segments would refuse this folder
        try:
            self._store = SegmentStore(file_storage, mode="read" if self.read_only else self._mode)
        except BaseException:
            file_storage._set_batch_owned(False)
            raise
        self._clock = file_storage.clock

    def _close_backend(self) -> None:
        try:
            self._store.close()
        finally:
            self.storage._set_batch_owned(False)

    def _prepare(self, key: str, context: Any, ttl: Any, fingerprint: Any) -> Change:
        reason = _bad_key_reason(key, self.storage._name_max)
        if reason is not None:  # a key that could leave the folder is refused, as StorageFile does
            raise ValueError(f"invalid storage key {key!r}: {reason}; a key cannot escape the storage folder")
        revision = uuid.uuid4().hex
        now = self._clock()
        document = encode_document(key, context, ttl, fingerprint, revision=revision, now=now)
        return Change(document, revision, None if ttl is None else now + ttl)

    def _write_batch(self, batch: dict[str, Any]) -> None:
        self._store.commit(batch)

    # ----------------------------------------------------------------------------------------- reads

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        with self._lock:  # the per-key file too: a flush cannot remove it half-way through this read
            found = self._find(key)
            if found is None:
                return self.storage.read_checkpoint(key=key)
        document, version, where = found
        if document is None:
            return None
        context, fingerprint = _decode(key, document, where)
        return Checkpoint(context=context, fingerprint=fingerprint, version=version)

    def get(self, key: str) -> Context:
        with self._lock:
            found = self._find(key)
            if found is None:
                return self.storage.get(key=key)
        document, _, where = found
        return Context() if document is None else _decode(key, document, where)[0]

    def _find(self, key: str) -> tuple[bytes | None, str | None, str] | None:
        """(document or None if deleted/expired, version, where) from the buffer or the index (lock
        held); None when neither knows the key (then its per-key file, if any, holds it)."""
        now = self._clock()
        change = self._pending.get(key)
        if change is not None:
            if not _live(change, now):
                return None, None, "buffer"
            return change.document, change.revision, "buffer"
        entry = self._store.index.get(key)
        if entry is None:
            return None
        if not entry.live(now):
            return None, None, "index"
        return self._store.document(entry), entry.revision, f"segment {entry.seq}"

    # ------------------------------------------------------------------------------ conditional writes

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        change = self._prepare(key, context, ttl, fingerprint)
        with self._lock:
            self._check_open()
            if self._version(key) != version:
                return False
            self._stage(key, change)
            self._posts += 1
            return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        with self._lock:
            self._check_open()
            current = self._version(key)
            if current != version:
                return False
            if current is not None:
                self._delete_locked(key)
            return True

    def _version(self, key: str) -> str | None:
        """The current version of `key` (lock held): None when absent or expired."""
        now = self._clock()
        change = self._pending.get(key)
        if change is not None:
            return change.revision if _live(change, now) else None
        entry = self._store.index.get(key)
        if entry is not None:
            if not entry.live(now):
                return None
            return entry.revision or "sha256:" + hashlib.sha256(self._store.document(entry)).hexdigest()
        raw = self.storage._read(self.storage._file(key))
        return None if raw is None else raw.live_version(now)

    # -------------------------------------------------------------------------------- other changes

    def delete(self, key: str) -> bool:
        with self._lock:
            self._check_open()
            return self._delete_locked(key)

    def _delete_locked(self, key: str) -> bool:
        now = self._clock()
        change = self._pending.get(key)
        entry = self._store.index.get(key)
        if change is None and entry is None:  # only a per-key file can hold it: StorageFile deletes it, durably
            existed = self.storage.delete(key=key)
            self._store.forget_file(key)
            return existed
        if change is not None:
            existed, deleted = _live(change, now), change.document is None
        else:
            assert entry is not None
            existed, deleted = entry.live(now), entry.deleted
        if not deleted:
            self._stage(key, _DELETE)
        return existed

    def delete_prefix(self, prefix: str) -> int:
        _check_prefix(prefix)
        with self._lock:
            self._check_open()
            keys = [key for key in {**self._store.index, **self._pending} if key.startswith(prefix)]
            removed = 0
            for key in keys:
                removed += self._delete_locked(key)
            self._flush_locked()
            removed += self.storage.delete_prefix(prefix=prefix)  # per-key files (and 1.0.1 sidecars)
            for key in [key for key in self._store.file_keys() if key.startswith(prefix)]:
                self._store.forget_file(key)
            return removed

    def clear(self, workflow_id: str) -> None:
        self.delete_prefix(f"{workflow_id}-")

    def list_keys(self, prefix: str = "") -> list[str]:
        _check_prefix(prefix)
        with self._lock:
            now = self._clock()
            known = {key: entry.live(now) for key, entry in self._store.index.items() if key.startswith(prefix)}
            known.update((key, _live(change, now)) for key, change in self._pending.items() if key.startswith(prefix))
            on_files = [key for key in self.storage.list_keys(prefix=prefix) if key not in known]
        return sorted([key for key, live in known.items() if live] + on_files)

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Compare the stored payload with `expected` and write `new` if equal; durable when it returns."""
        change = self._prepare(key, new, ttl, fingerprint)
        with self._lock:
            self._check_open()
            if self.get(key).storage != expected:
                return False
            self._stage(key, change)
            self._posts += 1
            self._flush_locked()
            return True

    # ---------------------------------------------------------------------------------- maintenance

    def compact(self) -> None:
        """Flush, then merge the live checkpoints into one segment and remove the others (also run by
        `close()` when there are many segments or more superseded bytes than live ones)."""
        with self._lock:
            self._check_open()
            self._flush_locked()
            self._store.compact()

    def materialize(self) -> int:
        """Write every live checkpoint to its per-key file (durably, one fsync each), then remove the
        segments and the folder's marker: a plain `StorageFile` can use the folder again. The storage
        stays open (later flushes write new segments). Returns how many files were written."""
        with self._lock:
            self._check_open()
            self._flush_locked()
            store, file_storage = self._store, self.storage
            now = self._clock()
            written = 0
            live = [(key, entry) for key, entry in store.index.items() if entry.live(now)]
            for key, _, document in store.verified_documents(live):  # a segment damaged since: refused, kept
                target = file_storage._file(key)
                file_storage._rename(file_storage._write_temp(target, document), target)
                written += 1
            file_storage._sync_folder()  # the files (and the unlinks the tombstones stood for) are durable
            store.clear_all()
            store.file_keys().update(file_storage._names(""))
            return written

    def segment_stats(self) -> dict[str, int]:
        """`segments` on disk and `keys` in the index (live, expired and deleted)."""
        with self._lock:
            return {"segments": self._store.segment_count, "keys": len(self._store.index)}


class RepairReport(NamedTuple):
    """What `BatchStorage.repair` did."""

    moved: list[Path]  # the damaged segments, renamed to `<name>.damaged`: their bytes kept for a person
    lost: list[str]  # keys whose newest checkpoint was in a damaged segment: none now (their tasks run again)
    unread: list[Path]  # of `moved`, those whose records could not all be read: keys past the damage are unknown


class _RepairingBatchStorage(FileBatchStorage):
    _mode = "repair"


def repair(storage: StorageFile) -> RepairReport:
    """Move the damaged segments of `storage`'s folder aside and go on with the intact ones (see
    `BatchStorage.repair`)."""
    if not isinstance(storage, StorageFile):
        raise TypeError(f"BatchStorage.repair takes the StorageFile of the folder, not {type(storage).__name__}")
    batch = _RepairingBatchStorage(storage, max_batch=1 << 30, max_delay=None)
    try:
        store = batch._store
        damaged = list(store.damaged)
        newest: dict[str, tuple[int, bool]] = {}  # key -> (newest damaged segment naming it, is it compacted)
        for found in damaged:
            for key in found.problem.keys:
                if _bad_key_reason(key, storage._name_max) is None and found.seq > newest.get(key, (0, False))[0]:
                    newest[key] = (found.seq, found.problem.compacted)
        lost = []
        for key, (seq, compacted) in sorted(newest.items()):
            entry = store.index.get(key)
            if entry is not None and (entry.seq > seq or compacted):
                continue  # a newer intact checkpoint; or the older segments a compaction left, with the same state
            batch.delete(key)  # an older checkpoint must not come back in place of the lost newer one
            lost.append(key)
        batch.flush()  # durable before the damaged segments are moved aside (a crash in between: repair again)
        moved = store.move_damaged_aside()
        for path in moved:
            logger.warning("BatchStorage.repair: moved the damaged segment aside to %s (its bytes are kept)", path)
        unread = [path for path, found in zip(moved, damaged) if not found.problem.all_keys_read]
    finally:
        batch.close()
    return RepairReport(moved, lost, unread)


def _live(change: Change, now: float) -> bool:
    return change.document is not None and (change.expires_at is None or now < change.expires_at)


def _decode(key: str, document: bytes, where: str) -> tuple[Context, str | None]:
    return parse_document(key, document, f" (in the batch {where})")
