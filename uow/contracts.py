"""The persistence contract, declared once: what a storage and a journal must do, and what they may do.

Everything in `uow` (and everything dotflow does with checkpoints) goes through these declarations.
An optional ability is a `Protocol`; whether an object has it is worked out once per class
(`StorageCapabilities.of`, `JournalCapabilities.of`) when a storage or journal is bound
(`uow.Persistence`), never asked again on the way of a commit. See docs/persistence-contract.md.

Storage
-------
Must (`CheckpointStorage`): ``post(key, context, ttl=None, fingerprint=None)`` replaces the value
of `key`; ``get(key)`` reads it back; ``key(task)`` names the checkpoint of a task (the task is
opaque here: a storage of dotflow reads its ids). A unit of work alone needs only post and get
(`SupportsStorage`). `ttl` (seconds) may be ignored by a storage that cannot expire keys.

May:

==========================  =====================================================================
`SupportsReadCheckpoint`    ``read_checkpoint(key)``: one read giving value and fingerprint, None when absent
`SupportsDelete`            ``delete(key)``
`SupportsConditionalWrite`  versions: ``read_checkpoint`` gives a `version`, ``post_if`` / ``delete_if``
                            write only if the key is still at that version (None: absent). Commits of
                            keys read through a unit (or expected with ``expect_version``) are then
                            conditional; a claim (a lease next to a checkpoint) is a ``post_if``
                            with ``version=None``, create-if-absent.
`SupportsTransaction`       ``transaction()``: a context manager yielding a `StorageTransaction`;
                            multi-key commits become all or nothing
`SupportsPostMany`          ``post_many(items)``: many ``(key, context, ttl, fingerprint)`` in one call
`SupportsDurableNotice`     ``on_durable(callback)``: `post` may return before the value is durable
`SupportsFlush`             ``flush()``: make every write posted so far durable (a write buffer)
`SupportsListKeys`          ``list_keys(prefix)``: what an audit compares with the journal
`SupportsClose`             ``close()``
`SupportsLeases`            ``create_lease`` / ``read_lease`` / ``replace_lease`` / ``delete_lease``:
                            a lease record next to a checkpoint, written with the storage's own
                            conditional writes, timed by the storage's clock (see `uow.leases`)
`SupportsLeaseTransaction`  ``lease_transaction()``: a transaction that can also check and release
                            a lease, so a worker whose lease changed hands cannot commit at all
==========================  =====================================================================

Journal
-------
Must (`SupportsRecord`): ``record(unit)``, called once per top-level unit when its outcome is
final. The unit is read through `UnitFacts`.

May:

==============================  =================================================================
`SupportsPrepare`               ``prepare(unit)``: the intent, recorded before the first write
`SupportsDeferredRecord`        ``record_later(unit)``: confirm a committed unit once its storage's
                                writes are durable (with `SupportsDurableNotice`)
`SupportsReservations`          ``reserve(entries)`` / ``release(unit_ids)``: intents of a run's
                                first units recorded ahead in one go, the unused ones released
`SupportsFlush`                 ``flush()``: write what it queued
`SupportsSharedTransaction`     ``shares(storage)`` / ``record_in(transaction, unit)``: the entry is
                                written inside the storage's own transaction
`SupportsInputFingerprints`     ``fingerprint(workflow_id)``: a workflow's recorded input fingerprint
`SupportsChecksums`             ``encode``: the bytes a checksum is taken of (None: not set yet)
`SupportsRuns`                  ``begin_run(run)`` / ``end_run(run)`` / ``last_writes(keys, ...)``: runs
                                recorded (`RunFacts`), their units' ``run_id``, and the checksum of each
                                key's last committed write (verified resume)
`SupportsClaimEvents`           ``record_claims(events)``: what happened to the run's claims
                                (`ClaimEvent`: taken, renewed late, expired, taken over, released,
                                lost), queued with the journal's other writes
`SupportsClose`                 ``close()``
==============================  =================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NamedTuple, Protocol, TypeVar, runtime_checkable

from uow.leases import Lease
from uow.outcomes import ACTIVE, COMMITTED, COMMITTING, CONFLICT, FAILED, ROLLED_BACK

__all__ = [
    "ACTIVE",
    "COMMITTED",
    "COMMITTING",
    "CONFLICT",
    "FAILED",
    "ROLLED_BACK",
    "CheckpointStorage",
    "ClaimEvent",
    "JournalCapabilities",
    "LastWrite",
    "RunFacts",
    "Lease",
    "LeaseTransaction",
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
    "SupportsRuns",
    "SupportsReservations",
    "SupportsSharedTransaction",
    "SupportsStorage",
    "SupportsTransaction",
    "UnitFacts",
    "VersionedCheckpoint",
]


# The states of a unit (`UnitFacts.state`; a settled unit's state is its journal outcome) are the
# constants of `uow.outcomes`, imported above.


# -- storage: must ------------------------------------------------------------------------------


@runtime_checkable
class SupportsStorage(Protocol):
    """What a unit of work needs of any storage: write a key, read it back."""

    def post(
        self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> None: ...

    def get(self, key: str) -> Any: ...


@runtime_checkable
class CheckpointStorage(SupportsStorage, Protocol):
    """What a run needs of a storage: post, get, and the key of a task's checkpoint."""

    def key(self, task: Any) -> str: ...


# -- storage: may -------------------------------------------------------------------------------


class StoredCheckpoint(Protocol):
    """What `read_checkpoint` returns for a present key."""

    @property
    def context(self) -> Any: ...

    @property
    def fingerprint(self) -> str | None: ...


class VersionedCheckpoint(StoredCheckpoint, Protocol):
    """A checkpoint read from a storage with versions: `version` changes on every write."""

    @property
    def version(self) -> str | None: ...


@runtime_checkable
class SupportsDelete(Protocol):
    def delete(self, key: str) -> bool: ...


@runtime_checkable
class SupportsReadCheckpoint(Protocol):
    """One read of a key: None when it is absent (so a stored None is told apart from a missing key)."""

    def read_checkpoint(self, key: str) -> StoredCheckpoint | None: ...


@runtime_checkable
class SupportsConditionalWrite(Protocol):
    """Versions and conditional writes; `version=None` means "the key is absent".

    `post_if` writes only if the key is at `version` and says whether it did; `delete_if` likewise.
    Each is atomic against every other write to the key, from any thread or process.
    """

    def read_checkpoint(self, key: str) -> VersionedCheckpoint | None: ...

    def post_if(
        self,
        key: str,
        context: Any,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool: ...

    def delete_if(self, key: str, *, version: str | None) -> bool: ...


class StorageTransaction(Protocol):
    """The writes of one open storage transaction (what `transaction()` yields)."""

    def post(
        self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> None: ...

    def delete(self, key: str) -> bool: ...

    def post_if(
        self,
        key: str,
        context: Any,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool: ...

    def delete_if(self, key: str, *, version: str | None) -> bool: ...


@runtime_checkable
class SupportsTransaction(Protocol):
    """Several writes as one: committed when the block ends normally, rolled back on an exception."""

    def transaction(self) -> AbstractContextManager[StorageTransaction]: ...


@runtime_checkable
class SupportsPostMany(Protocol):
    """Many writes in one call: `(key, context, ttl, fingerprint)` items."""

    def post_many(self, items: Iterable[tuple[str, Any, int | None, str | None]]) -> None: ...


@runtime_checkable
class SupportsDurableNotice(Protocol):
    """A storage that buffers writes: `post` may return before the value is durable.

    `on_durable(callback)` calls `callback()` once every write posted before the call is durable:
    at once, in the caller's thread, when nothing is buffered; otherwise right after the flush
    that makes them durable, from whichever thread flushes, possibly under the storage's lock (so
    the callback is quick, never calls the storage and does no I/O). If that flush fails, the
    callback waits for the next successful one.
    """

    def on_durable(self, callback: Callable[[], None]) -> None: ...


@runtime_checkable
class SupportsFlush(Protocol):
    """Storage: make every write posted so far durable. Journal: write what it has queued."""

    def flush(self) -> None: ...


@runtime_checkable
class SupportsListKeys(Protocol):
    def list_keys(self, prefix: str = "") -> Iterable[str]: ...


@runtime_checkable
class SupportsClose(Protocol):
    def close(self) -> None: ...


@runtime_checkable
class SupportsLeases(Protocol):
    """Leases next to checkpoints (see `uow.leases`); `key` is the key of the checkpoint guarded.

    Each write is one conditional write of the storage, atomic against every other writer of the
    lease, from any thread, process or machine that shares the storage. Times are seconds on the
    storage's clock; `ttl` is a positive number of seconds.
    """

    def create_lease(self, key: str, *, owner: str, ttl: float) -> Lease | None:
        """Create the lease (epoch 1) only if there is none, expired or not; None if there is one."""
        ...

    def read_lease(self, key: str) -> Lease | None:
        """The lease, with the storage's clock now (None: there is none)."""
        ...

    def replace_lease(self, key: str, *, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        """Replace the lease only if it is at `version` (renewal or takeover); None if it is not."""
        ...

    def delete_lease(self, key: str, *, version: str) -> bool:
        """Delete the lease only if it is at `version`."""
        ...


class LeaseTransaction(StorageTransaction, Protocol):
    """A storage transaction that can also check and release a lease, in the same transaction."""

    def holds_lease(self, key: str, *, owner: str, epoch: int) -> bool: ...

    def release_lease(self, key: str, *, owner: str, epoch: int) -> bool: ...


@runtime_checkable
class SupportsLeaseTransaction(Protocol):
    """A storage whose commit can be conditional on a lease: ``lease_transaction()`` yields a
    `LeaseTransaction`, committed when the block ends normally, rolled back on an exception."""

    def lease_transaction(self) -> AbstractContextManager[LeaseTransaction]: ...


# -- journal ------------------------------------------------------------------------------------


class UnitFacts(Protocol):
    """What a journal reads of a settled unit: a `UnitOfWork`, or a `UnitSnapshot` of one."""

    @property
    def id(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def run_id(self) -> str | None: ...

    @property
    def workflow_id(self) -> str | None: ...

    @property
    def task_id(self) -> Any: ...

    @property
    def attempt(self) -> int | None: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def finished_at(self) -> datetime | None: ...

    @property
    def error_text(self) -> str | None: ...

    @property
    def changes(self) -> Mapping[str, Any]: ...


@runtime_checkable
class SupportsRecord(Protocol):
    """A journal: told about every top-level unit once its outcome is final."""

    def record(self, unit: Any) -> None: ...


@runtime_checkable
class SupportsPrepare(Protocol):
    """Records a unit's intent before its first write; a failure there fails the commit, nothing written."""

    def prepare(self, unit: Any) -> None: ...


@runtime_checkable
class SupportsDeferredRecord(Protocol):
    """A journal that can confirm a committed unit later, when its storage calls back.

    `record_later(unit)` takes the unit's outcome now and returns the callback that queues it;
    the callback must be quick and do no I/O (see `SupportsDurableNotice`).
    """

    def record_later(self, unit: Any) -> Callable[[], None]: ...


@runtime_checkable
class SupportsReservations(Protocol):
    """Intents recorded ahead for units that will each put one key.

    `reserve` takes `(workflow id, task id, key)` entries and returns one unit id each, in order; a
    unit opened with one of them (attempt 1) and putting exactly that key needs no intent of its
    own. `release(unit_ids)` forgets the reservations never used (and writes what is queued).
    """

    def reserve(self, entries: Iterable[tuple[str | None, Any, str]]) -> list[str]: ...

    def release(self, unit_ids: Iterable[str] | None = None) -> None: ...


@runtime_checkable
class SupportsSharedTransaction(Protocol):
    """A journal that can write its entry inside the storage's own transaction.

    `shares(storage)` is asked once per storage; when true, every commit on that storage (one key
    too) runs in the storage's transaction and `record_in(transaction, unit)` writes the committed
    entry there, so writes and entry become visible together or not at all.
    """

    def shares(self, storage: Any) -> bool: ...

    def record_in(self, transaction: Any, unit: Any) -> None: ...


@runtime_checkable
class SupportsInputFingerprints(Protocol):
    """A journal that keeps each workflow's input fingerprint (resume compares it with the run's)."""

    def fingerprint(self, workflow_id: str) -> str | None: ...


@runtime_checkable
class SupportsChecksums(Protocol):
    """A journal that checksums stored values: `encode(value)` gives the bytes (None: not set yet)."""

    encode: Callable[[Any], bytes] | None


class RunFacts(Protocol):
    """What a journal reads of a run (`uow.RunPersistence` is one): ids, mode, times, status, task counts,
    where it ran, and its storage described without credentials (a JSON-ready dict, or None)."""

    @property
    def run_id(self) -> str: ...

    @property
    def workflow_id(self) -> str | None: ...

    @property
    def mode(self) -> str | None: ...

    @property
    def started_at(self) -> float: ...

    @property
    def ended_at(self) -> float | None: ...

    @property
    def status(self) -> str | None: ...

    @property
    def counts(self) -> Mapping[str, int] | None: ...

    @property
    def host(self) -> str: ...

    @property
    def pid(self) -> int: ...

    @property
    def storage(self) -> Mapping[str, Any] | None: ...


class LastWrite(NamedTuple):
    """A key's newest committed write in a journal: its checksum (None for a delete, or when no entry
    was ever committed), the unit and run that wrote it; `pending`: checksums written by newer units
    whose outcome never reached the journal (a crash window; None: reserved ahead, value unknown).
    (A named tuple: a resume makes one per restored key, and it is cheaper to make than a dataclass.)"""

    key: str
    checksum: str | None
    unit_id: str | None
    run_id: str | None
    pending: tuple[str | None, ...] = ()
    deleted: bool = False


@runtime_checkable
class SupportsRuns(Protocol):
    """A journal that records runs.

    It also reserves (`SupportsReservations`), taking the run's id.
    `begin_run(run)` records a run that begins (its row is written with the run's first journal
    transaction: its reservations, or a flush); `end_run(run)` records how it ended (written with
    the run's last transaction). Its `reserve(entries, run_id=...)` stamps the reserved units with
    the run. `last_writes(keys, workflow_id=...)` gives each key's last committed write (keys never
    written are left out), which a resume compares with what it restores; `workflow_id` says whose
    units most likely wrote them (an answer that only looks there first).
    """

    def begin_run(self, run: RunFacts) -> None: ...

    def end_run(self, run: RunFacts) -> None: ...

    def reserve(self, entries: Iterable[tuple[str | None, Any, str]], run_id: str | None = None) -> list[str]: ...

    def last_writes(self, keys: Iterable[str], *, workflow_id: str | None = None) -> dict[str, LastWrite]: ...


class ClaimEvent(NamedTuple):
    """Something that happened to a claim (a lease, see `uow.leases`), as a run tells its journal.

    `event` is one of `uow.outcomes.CLAIM_EVENTS`; `task_id` is None for a claim on a whole
    workflow; `key` is the checkpoint key the lease guards (the workflow id for a workflow's);
    `owner` and `epoch` are the lease's (for CLAIM_EXPIRED: the previous owner's, whose lease
    expired); `at` is when it happened (seconds since the epoch, this process's clock, as the
    journal's other times). For a takeover (CLAIM_EXPIRED, CLAIM_TAKEN_OVER) `previous_owner` is the
    owner whose lease had expired and `late` how many seconds past its expiry it was found (on the
    storage's clock); for CLAIM_RENEWED_LATE `late` is how many seconds after it was due the renewal
    was made (on the worker's clock). A named tuple: immutable, and cheap to make on the claimed path.
    """

    run_id: str | None
    workflow_id: str | None
    task_id: str | None
    key: str
    event: str
    owner: str
    epoch: int
    at: float
    previous_owner: str | None = None
    late: float | None = None


@runtime_checkable
class SupportsClaimEvents(Protocol):
    """A journal that records what happens to a run's claims.

    `record_claims(events)` is called on the claimed path (before a step runs, after it commits, from
    the heartbeat): it must be quick and do no I/O of its own, only queue the events for the
    journal's next write. A run never lets an error here fail or re-run a step (it is logged).
    """

    def record_claims(self, events: Iterable[ClaimEvent]) -> None: ...


# -- what an object declares, worked out once per class -------------------------------------------


@dataclass(frozen=True)
class StorageCapabilities:
    """The optional abilities a storage's class declares (see the module docstring)."""

    read: bool
    delete: bool
    versions: bool
    transaction: bool
    post_many: bool
    durable_notice: bool
    flush: bool
    list_keys: bool
    close: bool
    leases: bool
    lease_transaction: bool

    @classmethod
    def of(cls, storage: object) -> StorageCapabilities:
        return _declared(cls, storage, _STORAGE_PROTOCOLS, _STORAGE_CAPABILITIES)


@dataclass(frozen=True)
class JournalCapabilities:
    """The optional abilities a journal's class declares (see the module docstring)."""

    prepare: bool
    record_later: bool
    reservations: bool
    flush: bool
    shared_transaction: bool
    input_fingerprints: bool
    close: bool
    runs: bool
    claims: bool

    @classmethod
    def of(cls, journal: SupportsRecord) -> JournalCapabilities:
        if not isinstance(journal, SupportsRecord):
            raise TypeError(f"a journal needs a record(unit) method; {type(journal).__name__} has none")
        return _declared(cls, journal, _JOURNAL_PROTOCOLS, _JOURNAL_CAPABILITIES)


# Each ability, the protocol that declares it.
_STORAGE_PROTOCOLS: dict[str, type] = {
    "read": SupportsReadCheckpoint,
    "delete": SupportsDelete,
    "versions": SupportsConditionalWrite,
    "transaction": SupportsTransaction,
    "post_many": SupportsPostMany,
    "durable_notice": SupportsDurableNotice,
    "flush": SupportsFlush,
    "list_keys": SupportsListKeys,
    "close": SupportsClose,
    "leases": SupportsLeases,
    "lease_transaction": SupportsLeaseTransaction,
}
_JOURNAL_PROTOCOLS: dict[str, type] = {
    "prepare": SupportsPrepare,
    "record_later": SupportsDeferredRecord,
    "reservations": SupportsReservations,
    "flush": SupportsFlush,
    "shared_transaction": SupportsSharedTransaction,
    "input_fingerprints": SupportsInputFingerprints,
    "close": SupportsClose,
    "runs": SupportsRuns,
    "claims": SupportsClaimEvents,
}

# Abilities are declared by a class's methods, so they are worked out once per class.
_STORAGE_CAPABILITIES: dict[type, StorageCapabilities] = {}
_JOURNAL_CAPABILITIES: dict[type, JournalCapabilities] = {}

_Capabilities = TypeVar("_Capabilities", StorageCapabilities, JournalCapabilities)


def _declared(
    capabilities: type[_Capabilities], thing: object, protocols: dict[str, type], known: dict[type, _Capabilities]
) -> _Capabilities:
    """The `capabilities` of `thing`'s class: each field says whether it declares that field's protocol."""
    kind = type(thing)
    found = known.get(kind)
    if found is None:
        found = known[kind] = capabilities(**{name: isinstance(thing, protocol) for name, protocol in protocols.items()})
    return found
