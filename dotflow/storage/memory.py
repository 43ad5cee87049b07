"""`StorageDefault`: checkpoints in the memory of one process.

Each instance owns its own dictionary (nothing is shared between instances or kept on the class).
Values are deep-copied on the way in and on the way out, so neither the caller that posted a Context
nor a reader that mutates what it got can change a stored checkpoint. Objects that cannot be
deep-copied (generators, locks, open files, sockets, memoryviews, ...) are accepted and kept as the
same object, inside copied containers (see `isolated_copy`). A ttl is measured on the
storage's clock (`clock=`, default `time.monotonic`; tests pass a fake clock instead of sleeping);
an expired key behaves as missing everywhere and is evicted when touched.
Value, fingerprint and expiry are stored together and replaced together by every write.

`transaction()` holds the lock for a block of writes and puts every entry back as it was if the
block raises: several writes become visible together or not at all (the unit of work uses it for
multi-key commits).

Versions: every write stamps the entry with the next value of a per-instance counter ("1", "2", ...),
so `post_if` / `delete_if` compare-and-set under the same lock.

Leases (`uow.leases`): kept beside the checkpoints, never listed as one, changed under the same lock
and timed by the same clock. `lease_transaction()` is `transaction()`: a commit there can check or
release a lease with `holds_lease` / `release_lease`, all or nothing with its writes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, NamedTuple
from uuid import UUID

from uow.leases import LEASE_SUFFIX, Lease, check_lease_request

from dotflow.abc.storage import Checkpoint, VersionedStorage, check_post_metadata
from dotflow.core.context import Context
from dotflow.values.plain_copy import NotPlain, copy_plain
from dotflow.values.isolated_copy import isolated_copy

__all__ = ["StorageDefault"]


class _Entry(NamedTuple):
    """A stored checkpoint, as read back.

    Stored as two parts, so that the garbage collector has next to nothing to walk in a run that
    keeps 100,000 checkpoints: the value's copy in `_values` (a dict or list of plain data is not
    tracked by the collector), and the rest (`_Row`: time, ids, fingerprint, expiry, version, all
    immutable) as an exact tuple, which the collector stops tracking. A plain Context is kept as its
    parts (and its workflow UUID as an int: a UUID object is tracked); a Context subclass is kept
    whole, as its copy, in `_values`, with `whole` set."""

    value: Any  # a private copy of the Context's storage, or of the whole Context
    time: datetime | None
    task_id: str | None
    workflow_id: int | None
    whole: bool
    fingerprint: str | None
    expires_at: float | None  # deadline on the storage's clock
    version: str

    def stored_value(self) -> Any:
        """The stored Context's `storage` itself (not a copy: compare it, never hand it out)."""
        return self.value.storage if self.whole else self.value

    def context(self) -> Context:
        """A fresh copy of the stored Context, for a reader."""
        if self.whole:
            copied: Context = isolated_copy(self.value)
            return copied
        context = Context.__new__(Context)
        context._time = self.time
        context._task_id = self.task_id
        context._workflow_id = None if self.workflow_id is None else UUID(int=self.workflow_id)
        context._storage = isolated_copy(self.value)
        return context


_Row = tuple[Any, ...]  # an _Entry's fields but `value`, as stored
# Their places in a _Row (which lacks `value`, the first field of _Entry).
_EXPIRES_AT, _VERSION = _Entry._fields.index("expires_at") - 1, _Entry._fields.index("version") - 1


def _expired(row: _Row, now: float) -> bool:
    expires_at = row[_EXPIRES_AT]
    return expires_at is not None and bool(now >= expires_at)


class StorageDefault(VersionedStorage):
    """In-memory storage, safe to share between threads (an RLock guards every access).

    `clock`: a function returning seconds on a monotonic scale, used for ttl (default `time.monotonic`).
    """

    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock
        self._entries: dict[str, _Row] = {}  # key -> everything but the value, see `_Entry`
        self._values: dict[str, Any] = {}  # key -> the value's copy (same keys as _entries, always)
        self._lock = threading.RLock()
        self._versions = itertools.count(1)
        self._leases: dict[str, tuple[str, int, float, str]] = {}  # key -> (owner, epoch, expires_at, version)

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}"

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        value, row = self._new_entry(key, context, ttl, fingerprint)
        with self._lock:  # (`_put`, inline: once per task)
            self._entries[key] = row + (str(next(self._versions)),)
            self._values[key] = value

    def post_many(self, items: Iterable[tuple[str, Any, int | None, str | None]]) -> None:
        """Write `(key, context, ttl, fingerprint)` items at once: readers see all of them or none, and
        an item that is refused (a bad key, ttl or fingerprint) refuses the batch before any write."""
        prepared = [(key, *self._new_entry(key, context, ttl, fingerprint)) for key, context, ttl, fingerprint in items]
        with self._lock:
            for key, value, row in prepared:
                self._put(key, value, row)

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        value, row = self._new_entry(key, context, ttl, fingerprint)
        with self._lock:
            if self._version_of(key) != version:
                return False
            self._put(key, value, row)
            return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        with self._lock:
            if self._version_of(key) != version:
                return False
            self._drop(key)
            return True

    def get(self, key: str) -> Context:
        checkpoint = self.read_checkpoint(key)
        return Context() if checkpoint is None else checkpoint.context

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        with self._lock:
            row = self._live(key)
            if row is None:
                return None
            entry = _Entry(self._values[key], *row)
            return Checkpoint(context=entry.context(), fingerprint=entry.fingerprint, version=entry.version)

    def delete(self, key: str) -> bool:
        with self._lock:
            found = self._live(key) is not None
            self._drop(key)
            return found

    def delete_prefix(self, prefix: str) -> int:
        _check_key(prefix, "prefix")
        with self._lock:
            now = self._clock()
            doomed = [k for k in self._entries if k.startswith(prefix)]
            live = sum(1 for k in doomed if not _expired(self._entries[k], now))
            for k in doomed:
                self._drop(k)
            return live

    def list_keys(self, prefix: str = "") -> list[str]:
        _check_key(prefix, "prefix")
        with self._lock:
            self._evict_expired()
            return sorted(k for k in self._entries if k.startswith(prefix))

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        value, row = self._new_entry(key, new, ttl, fingerprint)
        with self._lock:
            current = self._live(key)
            if (None if current is None else _Entry(self._values[key], *current).stored_value()) != expected:
                return False
            self._put(key, value, row)
            return True

    @contextmanager
    def transaction(self) -> Iterator[StorageDefault]:
        """Writes made through the yielded storage inside the block are all kept, or all undone if it raises."""
        with self._lock:
            saved = dict(self._entries), dict(self._values), dict(self._leases)  # never changed in place
            try:
                yield self
            except BaseException:
                self._entries, self._values, self._leases = saved
                raise

    lease_transaction = transaction

    # ------------------------------------------------------------------------------------------ leases

    def create_lease(self, key: str, *, owner: str, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl)
        with self._lock:
            if key in self._leases:
                return None
            return self._write_lease(key, owner, 1, ttl)

    def read_lease(self, key: str) -> Lease | None:
        _check_key(key, "key")
        with self._lock:
            found = self._leases.get(key)
            if found is None:
                return None
            owner, epoch, expires_at, version = found
            return Lease(key, owner, epoch, expires_at, self._clock(), version)

    def replace_lease(self, key: str, *, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl, epoch)
        with self._lock:
            found = self._leases.get(key)
            if found is None or found[3] != version:
                return None
            return self._write_lease(key, owner, epoch, ttl)

    def delete_lease(self, key: str, *, version: str) -> bool:
        _check_key(key, "key")
        with self._lock:
            found = self._leases.get(key)
            if found is None or found[3] != version:
                return False
            del self._leases[key]
            return True

    def holds_lease(self, key: str, *, owner: str, epoch: int) -> bool:
        """Whether `owner` holds `key`'s lease in `epoch` (inside `lease_transaction()`)."""
        with self._lock:
            found = self._leases.get(key)
            return found is not None and found[0] == owner and found[1] == epoch

    def release_lease(self, key: str, *, owner: str, epoch: int) -> bool:
        """Delete `key`'s lease if `owner` holds it in `epoch` (inside `lease_transaction()`)."""
        with self._lock:
            if not self.holds_lease(key, owner=owner, epoch=epoch):
                return False
            del self._leases[key]
            return True

    def _write_lease(self, key: str, owner: str, epoch: int, ttl: float) -> Lease:
        """Store a lease under a fresh version. Hold the lock."""
        now = self._clock()
        version = str(next(self._versions))
        self._leases[key] = (owner, epoch, now + ttl, version)
        return Lease(key, owner, epoch, now + ttl, now, version)

    # ----------------------------------------------------------------------------------------- helpers

    def _new_entry(self, key: str, value: Any, ttl: float | None, fingerprint: str | None) -> tuple[Any, _Row]:
        """The value's copy, and the row without its version, which `_put` adds."""
        if type(key) is not str or key.endswith(LEASE_SUFFIX):
            _check_key(key, "key")
            raise ValueError(f"invalid storage key {key!r}: it ends with {LEASE_SUFFIX!r} (reserved for the leases of claims)")
        if ttl is not None or (fingerprint is not None and type(fingerprint) is not str):
            check_post_metadata(ttl, fingerprint)
        context = value if isinstance(value, Context) else Context(storage=value)
        expires_at = None if ttl is None else self._clock() + ttl
        # A checkpoint is a Context's value, time and ids, as on every other backend: an attribute a
        # caller added to a plain Context is not part of it. (Not checked with vars(): that would
        # give every task's Context a dict of its own for the collector to walk.)
        if type(context) is Context:
            try:
                copied = copy_plain(context._storage)  # the usual case, without isolated_copy's fallbacks
            except NotPlain:
                copied = isolated_copy(context._storage)
            workflow = context._workflow_id
            workflow_int = None if workflow is None else workflow.int
            return copied, (context._time, context._task_id, workflow_int, False, fingerprint, expires_at)
        return isolated_copy(context), (None, None, None, True, fingerprint, expires_at)

    def _put(self, key: str, value: Any, unversioned: _Row) -> None:
        """Store a value and its row under a fresh version. Hold the lock."""
        self._entries[key] = unversioned + (str(next(self._versions)),)
        self._values[key] = value

    def _drop(self, key: str) -> None:
        """Forget `key` (a no-op if absent). Hold the lock."""
        self._entries.pop(key, None)
        self._values.pop(key, None)

    def _version_of(self, key: str) -> str | None:
        """The live entry's version, None if absent or expired. Hold the lock."""
        row = self._live(key)
        return None if row is None else str(row[_VERSION])

    def _live(self, key: str) -> _Row | None:
        """The entry under `key` unless missing or expired (an expired one is evicted). Hold the lock."""
        _check_key(key, "key")
        entry = self._entries.get(key)
        if entry is not None and _expired(entry, self._clock()):
            self._drop(key)
            return None
        return entry

    def _evict_expired(self) -> None:
        now = self._clock()
        for k in [k for k, entry in self._entries.items() if _expired(entry, now)]:
            self._drop(k)


def _check_key(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")

