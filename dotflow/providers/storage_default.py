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
from dataclasses import dataclass
from typing import Any, Callable

from dotflow.abc.storage import Checkpoint, VersionedStorage, check_post_metadata
from dotflow.core.context import Context
from dotflow.core.plain_copy import NotPlain, copy_plain
from dotflow.providers.isolated_copy import isolated_copy

__all__ = ["StorageDefault"]


@dataclass(slots=True)
class _Entry:
    context: Context
    fingerprint: str | None
    expires_at: float | None  # deadline on the storage's clock
    version: str = ""

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class StorageDefault(VersionedStorage):
    """In-memory storage, safe to share between threads (an RLock guards every access).

    `clock`: a function returning seconds on a monotonic scale, used for ttl (default `time.monotonic`).
    """

    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._versions = itertools.count(1)

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}"

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        entry = self._new_entry(key, context, ttl, fingerprint)
        with self._lock:
            self._put(key, entry)

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
            entry = self._live(key)
            if entry is None:
                return None
            return Checkpoint(
                context=isolated_copy(entry.context), fingerprint=entry.fingerprint, version=entry.version
            )

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
            live = sum(1 for k in doomed if not self._entries[k].expired(now))
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
            if (None if current is None else current.context.storage) != expected:
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

    def _new_entry(self, key: str, value: Any, ttl: float | None, fingerprint: str | None) -> _Entry:
        if type(key) is not str:
            _check_key(key, "key")
        if ttl is not None or (fingerprint is not None and type(fingerprint) is not str):
            check_post_metadata(ttl, fingerprint)
        context = value if isinstance(value, Context) else Context(storage=value)
        try:
            stored = copy_plain(context)  # the usual case, without isolated_copy's fallbacks around it
        except NotPlain:
            stored = isolated_copy(context)
        expires_at = None if ttl is None else self._clock() + ttl
        return _Entry(context=stored, fingerprint=fingerprint, expires_at=expires_at)

    def _put(self, key: str, entry: _Entry) -> None:
        """Store `entry` under a fresh version. Hold the lock."""
        entry.version = str(next(self._versions))
        self._entries[key] = entry

    def _version_of(self, key: str) -> str | None:
        """The live entry's version, None if absent or expired. Hold the lock."""
        entry = self._live(key)
        return None if entry is None else entry.version

    def _live(self, key: str) -> _Entry | None:
        """The entry under `key` unless missing or expired (an expired one is evicted). Hold the lock."""
        _check_key(key, "key")
        entry = self._entries.get(key)
        if entry is not None and entry.expired(self._clock()):
            del self._entries[key]
            return None
        return entry

    def _evict_expired(self) -> None:
        now = self._clock()
        for k in [k for k, entry in self._entries.items() if entry.expired(now)]:
            del self._entries[k]


def _check_key(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")

