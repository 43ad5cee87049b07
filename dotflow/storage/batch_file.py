"""`SegmentBackend`: group commit on a `StorageFile` folder, a backend of its own.

`BatchStorage(StorageFile(path=...))` uses it (`batch_backend` says what a backend does). The
`StorageFile` names the folder and its clock; the backend works on the folder itself through the
shared file primitives (`checkpoint_files`), never through the `StorageFile`.

Each flush writes the buffered changes as one segment (`batch_segments.SegmentStore`): one fsync of
the segment and one of the folder, whatever the batch's size, and no per-key file. Reads look at the
buffer, then the segment index, then the per-key file a plain `StorageFile` wrote before.

It holds the folder exclusively (an `flock`, across processes), so it answers conditional writes
itself: a key's version is the `revision` of its document (as `StorageFile` uses), compared and
staged under one lock. A conditional write is durable, like a `post`, once its flush returns.

Deletes are tombstones in a batch (`delete`, `delete_if`) or, for a key only a per-key file holds,
the removal of that file (durable at once). `delete_prefix`, `clear` and `atomic_swap` flush
before they return. `materialize()` writes every live checkpoint back to per-key files and removes
the segments, so the folder can be used by a plain `StorageFile` again.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from pathlib import Path
from typing import Any, Literal, Mapping, NamedTuple

from dotflow.abc.storage import Checkpoint
from dotflow.core.context import Context
from dotflow.storage import checkpoint_files as files
from dotflow.storage.batch_backend import Buffer, GroupCommitBackend
from dotflow.storage.batch_segments import Change, SegmentStore
from dotflow.values.checkpoint_format import encode_document, legacy_failure, parse_document
from dotflow.storage.file import StorageFile

__all__ = ["RepairReport", "SegmentBackend", "repair"]

logger = logging.getLogger("dotflow")

_DELETE = Change(None, None, None)


class SegmentBackend(GroupCommitBackend[Change]):
    """Segments, an index and conditional writes on one `StorageFile` folder (module docstring)."""

    def __init__(self, storage: StorageFile, mode: Literal["write", "read", "repair"] = "write") -> None:
        if not isinstance(storage, StorageFile):
            raise TypeError(f"a segment backend takes a StorageFile, not {type(storage).__name__}")
        self.folder = storage.folder
        self.clock = storage.clock
        self.store = SegmentStore(self.folder, self.clock, mode=mode)

    def __repr__(self) -> str:
        return f"SegmentBackend({self.folder.root!r})"

    def prepare(self, key: str, context: Any, ttl: Any, fingerprint: Any) -> Change:
        reason = files.bad_key_reason(key, self.folder.name_max)
        if reason is not None:  # a key that could leave the folder is refused, as StorageFile does
            raise files.invalid_key(key, reason)
        revision = uuid.uuid4().hex
        now = self.clock()
        document = encode_document(key, context, ttl, fingerprint, revision=revision, now=now)
        return Change(document, revision, None if ttl is None else now + ttl)

    def write(self, batch: Mapping[str, Change]) -> None:
        self.store.commit(dict(batch))

    def close(self) -> None:
        self.store.close()

    # ----------------------------------------------------------------------------------------- reads

    def read_checkpoint(self, buffer: Buffer[Change], key: str) -> Checkpoint | None:
        found = self._find(buffer, key)
        if found is None:
            loaded = self._load_file(key)
            if loaded is None or (loaded[2] and legacy_failure(loaded[0])):
                return None
            return Checkpoint(context=loaded[0], fingerprint=loaded[1], version=loaded[3])
        document, version, where = found
        if document is None:
            return None
        context, fingerprint = _decode(key, document, where)
        return Checkpoint(context=context, fingerprint=fingerprint, version=version)

    def get(self, buffer: Buffer[Change], key: str) -> Context:
        found = self._find(buffer, key)
        if found is None:
            loaded = self._load_file(key)
            return Context() if loaded is None else loaded[0]
        document, _, where = found
        return Context() if document is None else _decode(key, document, where)[0]

    def _find(self, buffer: Buffer[Change], key: str) -> tuple[bytes | None, str | None, str] | None:
        """(document or None if deleted/expired, version, where) from the buffer or the index; None
        when neither knows the key (then its per-key file, if any, holds it)."""
        now = self.clock()
        change = buffer.pending.get(key)
        if change is not None:
            if not _live(change, now):
                return None, None, "buffer"
            return change.document, change.revision, "buffer"
        entry = self.store.index.get(key)
        if entry is None:
            return None
        if not entry.live(now):
            return None, None, "index"
        return self.store.document(entry), entry.revision, f"segment {entry.seq}"

    def _load_file(self, key: str) -> tuple[Context, str | None, bool, str] | None:
        """What `key`'s per-key file holds, if it is there and live."""
        target, exists = files.key_path(self.folder, key)
        raw = files.read_file(self.folder, target) if exists else None
        if raw is None or raw.expired(self.clock()):
            return None
        return files.decode_file(key, target, raw)

    # ------------------------------------------------------------------------------ conditional writes

    def post_if(self, buffer: Buffer[Change], key: str, change: Change, version: str | None) -> bool:
        if self._version(buffer, key) != version:
            return False
        buffer.stage(key, change)
        return True

    def delete_if(self, buffer: Buffer[Change], key: str, version: str | None) -> bool:
        current = self._version(buffer, key)
        if current != version:
            return False
        if current is not None:
            self.delete(buffer, key)
        return True

    def _version(self, buffer: Buffer[Change], key: str) -> str | None:
        """The current version of `key`: None when absent or expired."""
        now = self.clock()
        change = buffer.pending.get(key)
        if change is not None:
            return change.revision if _live(change, now) else None
        entry = self.store.index.get(key)
        if entry is not None:
            if not entry.live(now):
                return None
            return entry.revision or "sha256:" + hashlib.sha256(self.store.document(entry)).hexdigest()
        raw = files.read_file(self.folder, files.key_path(self.folder, key)[0])
        return None if raw is None else raw.live_version(now)

    # -------------------------------------------------------------------------------- other changes

    def delete(self, buffer: Buffer[Change], key: str) -> bool:
        now = self.clock()
        change = buffer.pending.get(key)
        entry = self.store.index.get(key)
        if change is None and entry is None:  # only a per-key file can hold it: removed now, durably
            existed = self._delete_file(files.key_path(self.folder, key)[0], now)
            self.store.forget_file(key)
            return existed
        if change is not None:
            existed, deleted = _live(change, now), change.document is None
        else:
            assert entry is not None
            existed, deleted = entry.live(now), entry.deleted
        if not deleted:
            buffer.stage(key, _DELETE)
        return existed

    def _delete_file(self, target: str, now: float) -> bool:
        """Remove a per-key file (and its 1.0.1 sidecar) durably; True if it held a live checkpoint."""
        raw = files.read_file(self.folder, target)
        if raw is None:
            files.unlink_sidecar(self.folder, target)
            return False
        files.remove_file(self.folder, target)
        return not raw.expired(now)

    def delete_prefix(self, buffer: Buffer[Change], prefix: str) -> int:
        files.check_prefix(prefix)
        keys = [key for key in {**self.store.index, **buffer.pending} if key.startswith(prefix)]
        removed = 0
        for key in keys:
            removed += self.delete(buffer, key)
        buffer.flush()
        now = self.clock()
        for name in files.data_file_names(self.folder, prefix):  # per-key files (and 1.0.1 sidecars)
            removed += self._delete_file(self.folder.path_of(name), now)
        for name in files.sidecar_names(self.folder, prefix):
            files.unlink(self.folder.path_of(name))
        for key in [key for key in self.store.file_keys() if key.startswith(prefix)]:
            self.store.forget_file(key)
        return removed

    def list_keys(self, buffer: Buffer[Change], prefix: str) -> list[str]:
        files.check_prefix(prefix)
        now = self.clock()
        known = {key: entry.live(now) for key, entry in self.store.index.items() if key.startswith(prefix)}
        known.update((key, _live(change, now)) for key, change in buffer.pending.items() if key.startswith(prefix))
        on_files = []
        for name in files.data_file_names(self.folder, prefix):
            if name not in known:
                raw = files.read_file(self.folder, self.folder.path_of(name))
                if raw is not None and not raw.expired(now):
                    on_files.append(name)
        return sorted([key for key, live in known.items() if live] + on_files)

    def atomic_swap(
        self, buffer: Buffer[Change], key: str, expected: Any, new: Any, ttl: int | None, fingerprint: str | None
    ) -> bool:
        change = self.prepare(key, new, ttl, fingerprint)
        if self.get(buffer, key).storage != expected:
            return False
        buffer.stage(key, change)
        buffer.flush()
        return True

    # ---------------------------------------------------------------------------------- maintenance

    def compact(self) -> None:
        self.store.compact()

    def materialize(self) -> int:
        store = self.store
        now = self.clock()
        written = 0
        live = [(key, entry) for key, entry in store.index.items() if entry.live(now)]
        for key, _, document in store.verified_documents(live):  # a segment damaged since: refused, kept
            target = files.key_path(self.folder, key)[0]
            files.replace_file(files.write_temp(self.folder, target, document), target)
            written += 1
        files.sync_folder(self.folder.root)  # the files (and the unlinks the tombstones stood for) are durable
        store.clear_all()
        store.file_keys().update(files.data_file_names(self.folder, ""))
        return written

    def segment_stats(self) -> dict[str, int]:
        return {"segments": self.store.segment_count, "keys": len(self.store.index)}


class RepairReport(NamedTuple):
    """What `BatchStorage.repair` did."""

    moved: list[Path]  # the damaged segments, renamed to `<name>.damaged`: their bytes kept for a person
    lost: list[str]  # keys whose newest checkpoint was in a damaged segment: none now (their tasks run again)
    unread: list[Path]  # of `moved`, those whose records could not all be read: keys past the damage are unknown


class _Batch:
    """The one batch of tombstones `repair` writes (a `Buffer` without a size or time bound)."""

    def __init__(self, backend: SegmentBackend) -> None:
        self.backend = backend
        self.pending: dict[str, Change] = {}

    def stage(self, key: str, change: Change) -> None:
        self.pending[key] = change

    def flush(self) -> None:
        if self.pending:
            self.backend.write(self.pending)
            self.pending = {}


def repair(storage: StorageFile) -> RepairReport:
    """Move the damaged segments of `storage`'s folder aside and go on with the intact ones (see
    `BatchStorage.repair`)."""
    if not isinstance(storage, StorageFile):
        raise TypeError(f"BatchStorage.repair takes the StorageFile of the folder, not {type(storage).__name__}")
    backend = SegmentBackend(storage, mode="repair")
    try:
        store = backend.store
        batch = _Batch(backend)
        damaged = list(store.damaged)
        newest: dict[str, tuple[int, bool]] = {}  # key -> (newest damaged segment naming it, is it compacted)
        for found in damaged:
            for key in found.problem.keys:
                valid = files.bad_key_reason(key, backend.folder.name_max) is None
                if valid and found.seq > newest.get(key, (0, False))[0]:
                    newest[key] = (found.seq, found.problem.compacted)
        lost = []
        for key, (seq, compacted) in sorted(newest.items()):
            entry = store.index.get(key)
            if entry is not None and (entry.seq > seq or compacted):
                continue  # a newer intact checkpoint; or the older segments a compaction left, with the same state
            backend.delete(batch, key)  # an older checkpoint must not come back in place of the lost newer one
            lost.append(key)
        batch.flush()  # durable before the damaged segments are moved aside (a crash in between: repair again)
        moved = store.move_damaged_aside()
        for path in moved:
            logger.warning("BatchStorage.repair: moved the damaged segment aside to %s (its bytes are kept)", path)
        unread = [path for path, found in zip(moved, damaged) if not found.problem.all_keys_read]
    finally:
        backend.close()
    return RepairReport(moved, lost, unread)


def _live(change: Change, now: float) -> bool:
    return change.document is not None and (change.expires_at is None or now < change.expires_at)


def _decode(key: str, document: bytes, where: str) -> tuple[Context, str | None]:
    return parse_document(key, document, f" (in the batch {where})")
