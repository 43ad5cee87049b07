"""A generic unit of work for checkpoint storages: stage changes, commit them once, or roll back.

`uow` knows nothing about dotflow: values are opaque and the storage is any object with
`post(key=, context=, ttl=, fingerprint=)` and `get(key=)` (optionally `delete`,
`read_checkpoint`, and `post_if` / `delete_if` for optimistic concurrency).
`Journal` (SQL, needs the `sql` extra when used) records every unit.
"""

from __future__ import annotations

from uow.errors import (
    CommitError,
    ConflictError,
    HookError,
    JournalError,
    NestingError,
    UnitClosedError,
    UnitOfWorkError,
)
from uow.journal import Journal
from uow.journal_migrate import SchemaError
from uow.outcomes import FINAL_OUTCOMES, JOURNAL_OUTCOMES, PREPARED
from uow.snapshot import UnitSnapshot
from uow.unit_of_work import (
    ACTIVE,
    COMMITTED,
    COMMITTING,
    CONFLICT,
    DELETE,
    FAILED,
    ROLLED_BACK,
    Change,
    Delete,
    Put,
    StoredCheckpoint,
    SupportsConditionalWrite,
    SupportsDeferredRecord,
    SupportsDelete,
    SupportsDurableNotice,
    SupportsReadCheckpoint,
    SupportsRecord,
    SupportsStorage,
    UnitOfWork,
    VersionedCheckpoint,
    record_outcome,
)

__all__ = [
    "ACTIVE",
    "COMMITTED",
    "COMMITTING",
    "CONFLICT",
    "DELETE",
    "FAILED",
    "FINAL_OUTCOMES",
    "JOURNAL_OUTCOMES",
    "PREPARED",
    "ROLLED_BACK",
    "Change",
    "CommitError",
    "ConflictError",
    "Delete",
    "HookError",
    "Journal",
    "JournalError",
    "NestingError",
    "Put",
    "SchemaError",
    "StoredCheckpoint",
    "SupportsConditionalWrite",
    "SupportsDeferredRecord",
    "SupportsDelete",
    "SupportsDurableNotice",
    "SupportsReadCheckpoint",
    "SupportsRecord",
    "SupportsStorage",
    "UnitClosedError",
    "UnitOfWork",
    "UnitOfWorkError",
    "UnitSnapshot",
    "VersionedCheckpoint",
    "record_outcome",
]
