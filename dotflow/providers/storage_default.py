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
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, NamedTuple
from uuid import UUID

from dotflow.abc.storage import Checkpoint, VersionedStorage, check_post_metadata
from dotflow.core.context import Context
from dotflow.core.plain_copy import NotPlain, copy_plain
from dotflow.providers.isolated_copy import isolated_copy

__all__ = ["StorageDefault"]


class _Entry(NamedTuple):
    """A stored checkpoint, as built and as read. It is stored as a plain tuple of the same fields
    (`_Row`): the garbage collector stops walking an exact tuple of untracked objects, and a plain
    Context is kept as its parts, so an entry holding plain data costs the collector nothing once
    made (a run of 100,000 tasks keeps 100,000 entries). A Context subclass is kept whole, as its
    copy, in `whole`."""

    value: Any  # a private copy of the Context's storage
    time: datetime | None
    task_id: str | None
    workflow_id: int | None  # the UUID's int: a UUID object would keep the collector walking the entry
    whole: Context | None
    fingerprint: str | None
    expires_at: float | None  # deadline on the storage's clock
    version: str

    def stored_value(self) -> Any:
        """The stored Context's `storage` itself (not a copy: compare it, never hand it out)."""
        return self.value if self.whole is None else self.whole.storage

    def context(self) -> Context:
        """A fresh copy of the stored Context, for a reader."""
        if self.whole is not None:
            copied: Context = isolated_copy(self.whole)
            return copied
        context = Context.__new__(Context)
        context._time = self.time
        context._task_id = self.task_id
        context._workflow_id = None if self.workflow_id is None else UUID(int=self.workflow_id)
        context._storage = isolated_copy(self.value)
        return context


_Row = tuple[Any, ...]  # an _Entry's fields, as stored
_EXPIRES_AT, _VERSION = 6, 7  # their places in a _Row


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
        self._entries: dict[str, _Row] = {}
        self._lock = threading.RLock()
        self._versions = itertools.count(1)

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}"

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        entry = self._new_entry(key, context, ttl, fingerprint)
        with self._lock:  # (`_put`, inline: once per task)
            self._entries[key] = entry + (str(next(self._versions)),)

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        entry = self._new_entry(key, context, ttl, fingerprint)
        with self._lock:
            if self._version_of(key) != version:
                return False
            self._put(key, entry)
            return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        with self._lock:
            if self._version_of(key) != version:
                return False
            self._entries.pop(key, None)
            return True

    def get(self, key: str) -> Context:
        checkpoint = self.read_checkpoint(key)
        return Context() if checkpoint is None else checkpoint.context

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        with self._lock:
            row = self._live(key)
            if row is None:
                return None
            entry = _Entry._make(row)
            return Checkpoint(context=entry.context(), fingerprint=entry.fingerprint, version=entry.version)

    def delete(self, key: str) -> bool:
        with self._lock:
            found = self._live(key) is not None
            self._entries.pop(key, None)
            return found

    def delete_prefix(self, prefix: str) -> int:
        _check_key(prefix, "prefix")
        with self._lock:
            now = self._clock()
            doomed = [k for k in self._entries if k.startswith(prefix)]
            live = sum(1 for k in doomed if not _expired(self._entries[k], now))
            for k in doomed:
                del self._entries[k]
            return live

    def list_keys(self, prefix: str = "") -> list[str]:
        _check_key(prefix, "prefix")
        with self._lock:
            self._evict_expired()
            return sorted(k for k in self._entries if k.startswith(prefix))

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        entry = self._new_entry(key, new, ttl, fingerprint)
        with self._lock:
            current = self._live(key)
            if (None if current is None else _Entry._make(current).stored_value()) != expected:
                return False
            self._put(key, entry)
            return True

    @contextmanager
    def transaction(self) -> Iterator[StorageDefault]:
        """Writes made through the yielded storage inside the block are all kept, or all undone if it raises."""
        with self._lock:
            saved = dict(self._entries)  # entries are replaced by writes, never changed in place
            try:
                yield self
            except BaseException:
                self._entries.clear()
                self._entries.update(saved)
                raise

    # ----------------------------------------------------------------------------------------- helpers

    def _new_entry(self, key: str, value: Any, ttl: float | None, fingerprint: str | None) -> _Row:
        """The fields of `_Entry` but the version, which `_put` adds (plain tuples: made once per task)."""
        if type(key) is not str:
            _check_key(key, "key")
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
            return (copied, context._time, context._task_id, None if workflow is None else workflow.int, None,
                    fingerprint, expires_at)  # fmt: skip
        return (None, None, None, None, isolated_copy(context), fingerprint, expires_at)

    def _put(self, key: str, unversioned: _Row) -> None:
        """Store an entry (all of `_Entry` but the version) under a fresh version. Hold the lock."""
        self._entries[key] = unversioned + (str(next(self._versions)),)

    def _version_of(self, key: str) -> str | None:
        """The live entry's version, None if absent or expired. Hold the lock."""
        row = self._live(key)
        return None if row is None else str(row[_VERSION])

    def _live(self, key: str) -> _Row | None:
        """The entry under `key` unless missing or expired (an expired one is evicted). Hold the lock."""
        _check_key(key, "key")
        entry = self._entries.get(key)
        if entry is not None and _expired(entry, self._clock()):
            del self._entries[key]
            return None
        return entry

    def _evict_expired(self) -> None:
        now = self._clock()
        for k in [k for k, entry in self._entries.items() if _expired(entry, now)]:
            del self._entries[k]


def _check_key(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")

