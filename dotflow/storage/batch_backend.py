"""What `BatchStorage` asks of a group-commit backend, and the backend for any storage.

`BatchStorage` owns the buffer and when it is flushed (batch size, delay, close, exit); a backend
owns what a change is, how a batch is made durable, and how reads, conditional writes and deletes
combine the buffer with what is stored. `BatchStorage` calls a backend with its lock held (except
`prepare`), so a backend needs no lock of its own.

- `StorageBackend` (here): any `Storage`. A batch goes to its `post_many` (declared by
  `SupportsPostMany`) or to one `post` per change. Deletes, listings and swaps flush first and go to
  the storage; so do conditional writes, on a storage that has them (see `StorageBackend`).
- `SegmentBackend` (`batch_file`): a `StorageFile` folder whose checkpoints live in segments.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Generic, Iterable, Mapping, NamedTuple, Protocol, TypeVar, cast, runtime_checkable

from dotflow.abc.storage import Checkpoint, Storage, check_post_metadata
from dotflow.core.context import Context
from dotflow.values.isolated_copy import isolated_copy

__all__ = ["Buffer", "GroupCommitBackend", "StorageBackend", "SupportsPostMany"]

C = TypeVar("C")
Item = tuple[str, Any, "int | None", "str | None"]  # (key, context, ttl, fingerprint)


class Buffer(Protocol[C]):
    """The buffer of a `BatchStorage`, as its backend sees it (its lock is held)."""

    @property
    def pending(self) -> Mapping[str, C]:
        """The buffered changes by key, oldest first."""

    def stage(self, key: str, change: C) -> None:
        """Buffer `change` (flushing when the batch is full)."""

    def flush(self) -> None:
        """Make every buffered change durable now."""


class GroupCommitBackend(ABC, Generic[C]):
    """How a `BatchStorage` makes batches durable and answers what its buffer alone cannot."""

    @abstractmethod
    def prepare(self, key: str, context: Any, ttl: Any, fingerprint: Any) -> C:
        """Check and capture one change now (no lock held), so later changes to the value cannot reach it."""

    @abstractmethod
    def write(self, batch: Mapping[str, C]) -> None:
        """Make `batch` durable: all of it, or raise (then it stays buffered)."""

    @abstractmethod
    def read_checkpoint(self, buffer: Buffer[C], key: str) -> Checkpoint | None: ...

    @abstractmethod
    def get(self, buffer: Buffer[C], key: str) -> Context: ...

    @abstractmethod
    def post_if(self, buffer: Buffer[C], key: str, change: C, version: str | None) -> bool: ...

    @abstractmethod
    def delete_if(self, buffer: Buffer[C], key: str, version: str | None) -> bool: ...

    @abstractmethod
    def delete(self, buffer: Buffer[C], key: str) -> bool: ...

    @abstractmethod
    def delete_prefix(self, buffer: Buffer[C], prefix: str) -> int: ...

    @abstractmethod
    def list_keys(self, buffer: Buffer[C], prefix: str) -> Iterable[str]: ...

    @abstractmethod
    def atomic_swap(
        self, buffer: Buffer[C], key: str, expected: Any, new: Any, ttl: int | None, fingerprint: str | None
    ) -> bool: ...

    def close(self) -> None:
        """Release what the backend holds; called once, after the last flush (even a failed one)."""

    # What only a backend that keeps its own files can do.

    def compact(self) -> None:
        raise NotImplementedError(f"compact() needs BatchStorage(StorageFile(...)); {self} keeps no segments")

    def materialize(self) -> int:
        raise NotImplementedError(f"materialize() needs BatchStorage(StorageFile(...)); {self} keeps no segments")

    def segment_stats(self) -> dict[str, int]:
        raise NotImplementedError(f"segment_stats() needs BatchStorage(StorageFile(...)); {self} keeps no segments")


@runtime_checkable
class SupportsPostMany(Protocol):
    """A storage that takes a whole batch in one call (items: `(key, context, ttl, fingerprint)`)."""

    def post_many(self, items: Iterable[Item]) -> None: ...


@runtime_checkable
class _SupportsConditionalWrite(Protocol):
    def post_if(
        self, key: str, context: Any, *, version: str | None, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool: ...

    def delete_if(self, key: str, *, version: str | None) -> bool: ...


class Pending(NamedTuple):
    """A buffered checkpoint for `StorageBackend`."""

    context: Context  # a private copy of what was posted
    ttl: float | None
    fingerprint: str | None
    deadline: float | None = None  # time.monotonic() expiry of the buffered checkpoint

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class StorageBackend(GroupCommitBackend[Pending]):
    """Group commit on any storage (see the module docstring).

    Conditional writes, on a storage that has them (every storage dotflow ships), flush the buffer and
    then go to the storage's own `post_if` / `delete_if`: durable when they return, not batched. Their
    version is the storage's, which a buffered checkpoint does not have yet, so `read_checkpoint` of a
    buffered key flushes it first. A storage without them (a custom one with `post` / `get` / `key`
    only) has no versions to compare: `read_checkpoint` gives none, and `post_if` / `delete_if` write
    unconditionally, which is what a unit of work does on such a storage itself.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        post_many = storage.post_many if isinstance(storage, SupportsPostMany) else None
        self._post_many: Callable[[Iterable[Item]], None] | None = post_many
        self._conditional = storage if isinstance(storage, _SupportsConditionalWrite) else None

    def __repr__(self) -> str:
        return repr(self.storage)

    def prepare(self, key: str, context: Any, ttl: Any, fingerprint: Any) -> Pending:
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        check_post_metadata(ttl, fingerprint)
        value = context if isinstance(context, Context) else Context(storage=context)
        copied = isolated_copy(value)  # as StorageDefault keeps it: what cannot be copied is kept as is
        return Pending(copied, ttl, fingerprint, None if ttl is None else time.monotonic() + ttl)

    def write(self, batch: Mapping[str, Pending]) -> None:
        items = [(key, p.context, cast("int | None", p.ttl), p.fingerprint) for key, p in batch.items()]
        if self._post_many is not None:
            self._post_many(items)
            return
        for key, context, ttl, fingerprint in items:
            self.storage.post(key=key, context=context, ttl=ttl, fingerprint=fingerprint)

    # ----------------------------------------------------------------------------------------- reads

    def read_checkpoint(self, buffer: Buffer[Pending], key: str) -> Checkpoint | None:
        pending = buffer.pending.get(key)
        if pending is None:
            return self.storage.read_checkpoint(key=key)
        if self._conditional is not None:  # its version is the storage's, known once it is written
            buffer.flush()
            return self.storage.read_checkpoint(key=key)
        if pending.expired():
            return None
        return Checkpoint(context=isolated_copy(pending.context), fingerprint=pending.fingerprint)

    def get(self, buffer: Buffer[Pending], key: str) -> Context:
        pending = buffer.pending.get(key)
        if pending is None:
            return self.storage.get(key=key)
        return Context() if pending.expired() else isolated_copy(pending.context)

    # ---------------------------------------------------- everything else: flush first, then the storage

    def post_if(self, buffer: Buffer[Pending], key: str, change: Pending, version: str | None) -> bool:
        buffer.flush()
        ttl = cast("int | None", change.ttl)
        if self._conditional is not None:
            return self._conditional.post_if(key, change.context, version=version, ttl=ttl, fingerprint=change.fingerprint)
        self.storage.post(key=key, context=change.context, ttl=ttl, fingerprint=change.fingerprint)
        return True

    def delete_if(self, buffer: Buffer[Pending], key: str, version: str | None) -> bool:
        buffer.flush()
        if self._conditional is not None:
            return self._conditional.delete_if(key, version=version)
        self.storage.delete(key=key)
        return True

    def delete(self, buffer: Buffer[Pending], key: str) -> bool:
        buffer.flush()
        return self.storage.delete(key=key)

    def delete_prefix(self, buffer: Buffer[Pending], prefix: str) -> int:
        buffer.flush()
        return self.storage.delete_prefix(prefix=prefix)

    def list_keys(self, buffer: Buffer[Pending], prefix: str) -> Iterable[str]:
        buffer.flush()
        return self.storage.list_keys(prefix=prefix)

    def atomic_swap(
        self, buffer: Buffer[Pending], key: str, expected: Any, new: Any, ttl: int | None, fingerprint: str | None
    ) -> bool:
        buffer.flush()
        return self.storage.atomic_swap(key=key, expected=expected, new=new, ttl=ttl, fingerprint=fingerprint)
