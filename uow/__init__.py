"""A generic unit of work for checkpoint storages: stage changes, commit them once, or roll back.

`uow` knows nothing about dotflow: values are opaque. What a storage and a journal must do and may
do is declared once in `uow.contracts` (a storage must have `post`, `get` and, for a run, `key`;
versions, transactions, write buffers, ... are optional and declared by their methods).
`Persistence` binds a storage to its journal; `RunPersistence` is what a workflow run talks to.
`Journal` (SQL, needs the `sql` extra when used) records every unit.
"""

from __future__ import annotations

from uow.contracts import (
    CheckpointStorage,
    ClaimEvent,
    JournalCapabilities,
    LeaseTransaction,
    StorageCapabilities,
    StorageTransaction,
    SupportsChecksums,
    SupportsClaimEvents,
    SupportsClose,
    SupportsFlush,
    SupportsInputFingerprints,
    SupportsLeases,
    SupportsLeaseTransaction,
    SupportsListKeys,
    SupportsPostMany,
    SupportsPrepare,
    SupportsReservations,
    SupportsSharedTransaction,
    SupportsTransaction,
    UnitFacts,
)
from uow.errors import (
    CommitError,
    ConflictError,
    HookError,
    JournalError,
    LeaseLostError,
    NestingError,
    UnitClosedError,
    UnitOfWorkError,
)
from uow.journal import Journal
from uow.leases import LEASE_SUFFIX, Lease
from uow.journal_migrate import SchemaError
from uow.outcomes import CLAIM_EVENTS, FINAL_OUTCOMES, JOURNAL_OUTCOMES, PREPARED
from uow.persistence import Persistence
from uow.run import RUN_COMPLETED, RUN_FAILED, Binding, RunPersistence
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
    "CLAIM_EVENTS",
    "COMMITTED",
    "COMMITTING",
    "CONFLICT",
    "DELETE",
    "FAILED",
    "FINAL_OUTCOMES",
    "JOURNAL_OUTCOMES",
    "PREPARED",
    "ROLLED_BACK",
    "RUN_COMPLETED",
    "RUN_FAILED",
    "Binding",
    "Change",
    "CheckpointStorage",
    "ClaimEvent",
    "CommitError",
    "ConflictError",
    "Delete",
    "HookError",
    "Journal",
    "JournalCapabilities",
    "JournalError",
    "LEASE_SUFFIX",
    "Lease",
    "LeaseLostError",
    "LeaseTransaction",
    "NestingError",
    "Persistence",
    "Put",
    "RunPersistence",
    "SchemaError",
    "StorageCapabilities",
    "StorageTransaction",
    "StoredCheckpoint",
    "SupportsChecksums",
    "SupportsClaimEvents",
    "SupportsClose",
    "SupportsConditionalWrite",
    "SupportsDeferredRecord",
    "SupportsDelete",
    "SupportsDurableNotice",
    "SupportsFlush",
    "SupportsInputFingerprints",
    "SupportsLeaseTransaction",
    "SupportsLeases",
    "SupportsListKeys",
    "SupportsPostMany",
    "SupportsPrepare",
    "SupportsReadCheckpoint",
    "SupportsRecord",
    "SupportsReservations",
    "SupportsSharedTransaction",
    "SupportsStorage",
    "SupportsTransaction",
    "UnitClosedError",
    "UnitFacts",
    "UnitOfWork",
    "UnitOfWorkError",
    "UnitSnapshot",
    "VersionedCheckpoint",
    "record_outcome",
]
