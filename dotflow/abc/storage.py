"""The `Storage` contract every checkpoint backend implements.

Required: `post`, `get` and `key`. Optional, with working or refusing defaults: `read_checkpoint`
(one read returning value, fingerprint and version), `delete`, `delete_prefix`, `list_keys`,
`atomic_swap` and `clear`. The engine only ever calls `key`, `post` (once per successful task),
`read_checkpoint` (once per task it looks up on resume), `post_if` (instead of `post` when the run
resumes) and `delete` (each task's key, on_input_change="reset").

Versions and conditional writes (optimistic concurrency)
    A backend that can write conditionally defines two more methods (see `VersionedStorage`), and
    its `read_checkpoint` returns a `Checkpoint` whose `version` is an opaque, non-None string that
    changes on every write (an S3 ETag, a GCS generation, a revision id in a file, a counter):

    ``post_if(key, context, *, version, ttl=None, fingerprint=None) -> bool``
        Write only if the key's current version is `version`; `version=None` means "only if the
        key is absent" (an expired key counts as absent). True if written; False if the condition
        failed, in which case nothing was written. Atomic against every other write to the key,
        from any thread or process that shares the backend.
    ``delete_if(key, *, version) -> bool``
        Delete only if the key's current version is `version`. With `version=None`, True if the
        key is absent (nothing to delete), False if it exists.

    `uow.UnitOfWork` detects these methods and uses them for keys it has read; a storage without
    them (a custom 1.0.1 storage) still works, with unconditional writes only.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterable

from dotflow.core.context import Context

__all__ = ["Checkpoint", "Storage", "VersionedStorage", "check_post_metadata"]


def check_post_metadata(ttl: Any, fingerprint: Any) -> None:
    """Refuse a ttl that is not a finite number of seconds, or a fingerprint that is not a str."""
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float))):
        raise TypeError(f"ttl must be a number of seconds or None, not {type(ttl).__name__}")
    if ttl is not None and not math.isfinite(ttl):
        raise ValueError(f"ttl must be a finite number of seconds, not {ttl!r}")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise TypeError(f"fingerprint must be a str or None, not {type(fingerprint).__name__}")


@dataclass(frozen=True)
class Checkpoint:
    """What one read of a stored key gives back: the value, the input fingerprint it was written with,
    and the version of what was read (None on a backend without conditional writes).

    `document`: the stored checkpoint document's bytes, when the backend read them whole (StorageFile
    does), so that verified resume can checksum the value's encoding as stored instead of encoding it
    again (`dotflow.values.checkpoint_format.stored_value_encoding`). None: not given."""

    context: Context
    fingerprint: str | None = None
    version: str | None = None
    document: bytes | None = field(default=None, compare=False, repr=False)


class Storage(ABC):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @abstractmethod
    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        """Store `context` under `key`, replacing any earlier value and its ttl/fingerprint."""

    @abstractmethod
    def get(self, key: str) -> Context:
        """Return the stored Context, or an empty `Context()` (storage None) when the key is missing."""

    @abstractmethod
    def key(self, task: Any) -> str:
        """The key of a task's checkpoint: stable for the same workflow id and task id."""

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        """One read of `key`: None when missing, else its Context and fingerprint.

        This default cannot tell a stored None from a missing key and knows no fingerprint;
        backends that can, override it.
        """
        context = self.get(key=key)
        if context.storage is None:
            return None
        return Checkpoint(context=context)

    def clear(self, workflow_id: str) -> None:
        self.delete_prefix(f"{workflow_id}-")

    def delete(self, key: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not implement delete")

    def delete_prefix(self, prefix: str) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not implement delete_prefix")

    def list_keys(self, prefix: str = "") -> Iterable[str]:
        raise NotImplementedError(f"{type(self).__name__} does not implement list_keys")

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        raise NotImplementedError(f"{type(self).__name__} does not implement atomic_swap")


class VersionedStorage(Storage):
    """A storage with versions and conditional writes (see the module docstring)."""

    @abstractmethod
    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        """Write only if the current version of `key` is `version` (None: only if absent)."""

    @abstractmethod
    def delete_if(self, key: str, *, version: str | None) -> bool:
        """Delete only if the current version of `key` is `version` (None: true if absent)."""
