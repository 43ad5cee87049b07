"""`Persistence`: one storage and its optional journal, bound, with what each declares it can do.

Binding works out the declared abilities once (`uow.contracts`); everything after that asks the
binding, never the objects. A unit of work, a run (`uow.RunPersistence`) and the parent side of
dotflow's child-process relay all go through it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from uow.contracts import (
    COMMITTED,
    ClaimEvent,
    JournalCapabilities,
    LastWrite,
    RunFacts,
    StorageCapabilities,
    StorageTransaction,
    Lease,
    LeaseTransaction,
    StoredCheckpoint,
    SupportsClaimEvents,
    SupportsClose,
    SupportsConditionalWrite,
    SupportsDeferredRecord,
    SupportsDelete,
    SupportsDurableNotice,
    SupportsFlush,
    SupportsInputFingerprints,
    SupportsLeases,
    SupportsLeaseTransaction,
    SupportsPrepare,
    SupportsReadCheckpoint,
    SupportsRecord,
    SupportsReservations,
    SupportsRuns,
    SupportsSharedTransaction,
    SupportsStorage,
    SupportsTransaction,
)

__all__ = ["Persistence", "record_outcome"]

S = TypeVar("S", bound=SupportsStorage, covariant=True)

logger = logging.getLogger("uow")


@dataclass(frozen=True)
class _Read:
    """A checkpoint read with `get` from a storage without `read_checkpoint`."""

    context: Any
    fingerprint: str | None = None


class Persistence(Generic[S]):
    """A storage and its optional journal; see the module docstring.

    Generic in the storage's type: a run's bindings are `Persistence[CheckpointStorage]`, whose
    `storage.key(task)` names a task's checkpoint. `shared` is true when the journal writes its
    entries inside the storage's own transactions (`SupportsSharedTransaction`), asked once here.
    """

    __slots__ = ("storage", "journal", "storage_can", "journal_can", "shared", "reserves")

    def __init__(self, storage: S, journal: SupportsRecord | None = None) -> None:
        self.storage = storage
        self.journal = journal
        self.storage_can = StorageCapabilities.of(storage)
        self.journal_can = None if journal is None else JournalCapabilities.of(journal)
        self.shared = bool(
            self.journal_can is not None
            and self.journal_can.shared_transaction
            and self.storage_can.transaction
            and cast(SupportsSharedTransaction, journal).shares(storage)
        )
        # The journal records intents ahead (`reserve`), unless it writes inside the storage's transactions.
        self.reserves = self.journal_can is not None and self.journal_can.reservations and not self.shared

    def __repr__(self) -> str:
        return f"Persistence({self.storage!r}, journal={self.journal!r})"

    # -- storage ---------------------------------------------------------------------------------

    def read_checkpoint(self, key: str) -> StoredCheckpoint | None:
        """One read of `key` (None: absent); a storage without `read_checkpoint` is read with `get`."""
        if self.storage_can.read:
            return cast(SupportsReadCheckpoint, self.storage).read_checkpoint(key=key)
        value = self.storage.get(key=key)
        return None if value is None else _Read(value)

    def delete(self, key: str) -> bool:
        """Delete `key`; NotImplementedError when the storage cannot."""
        if not self.storage_can.delete:
            raise NotImplementedError(f"{type(self.storage).__name__} does not implement delete")
        return cast(SupportsDelete, self.storage).delete(key=key)

    def post_if(self, key: str, context: Any, *, version: str | None, ttl: int | None = None,
                fingerprint: str | None = None) -> bool:  # fmt: skip
        """A conditional write (see `SupportsConditionalWrite`); TypeError on a storage without versions."""
        if not self.storage_can.versions:
            raise TypeError(f"{type(self.storage).__name__} has no versions (post_if / delete_if)")
        storage = cast(SupportsConditionalWrite, self.storage)
        return storage.post_if(key=key, context=context, version=version, ttl=ttl, fingerprint=fingerprint)

    def delete_if(self, key: str, *, version: str | None) -> bool:
        """A conditional delete (see `SupportsConditionalWrite`); TypeError on a storage without versions."""
        if not self.storage_can.versions:
            raise TypeError(f"{type(self.storage).__name__} has no versions (post_if / delete_if)")
        return cast(SupportsConditionalWrite, self.storage).delete_if(key=key, version=version)

    def transaction(self) -> AbstractContextManager[StorageTransaction]:
        return cast(SupportsTransaction, self.storage).transaction()

    # -- leases (see `uow.leases`) ---------------------------------------------------------------

    def _leases(self) -> SupportsLeases:
        if not self.storage_can.leases:
            raise TypeError(f"{type(self.storage).__name__} has no leases (SupportsLeases): it cannot hold claims")
        return cast(SupportsLeases, self.storage)

    def create_lease(self, key: str, *, owner: str, ttl: float) -> Lease | None:
        return self._leases().create_lease(key=key, owner=owner, ttl=ttl)

    def read_lease(self, key: str) -> Lease | None:
        return self._leases().read_lease(key=key)

    def replace_lease(self, key: str, *, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        return self._leases().replace_lease(key=key, version=version, owner=owner, epoch=epoch, ttl=ttl)

    def delete_lease(self, key: str, *, version: str) -> bool:
        return self._leases().delete_lease(key=key, version=version)

    def lease_transaction(self) -> AbstractContextManager[LeaseTransaction]:
        return cast(SupportsLeaseTransaction, self.storage).lease_transaction()

    def flush(self) -> None:
        """Make the storage's buffered writes durable (nothing to do for a storage that does not buffer)."""
        if self.storage_can.flush:
            cast(SupportsFlush, self.storage).flush()

    # -- journal ---------------------------------------------------------------------------------

    def prepare(self, unit: Any) -> None:
        """The journal's intent record of `unit`, before its first write (when the journal keeps one)."""
        if self.journal_can is not None and self.journal_can.prepare:
            cast(SupportsPrepare, self.journal).prepare(unit)

    def record(self, unit: Any) -> None:
        """Tell the journal the final outcome of `unit` (see `record_outcome`)."""
        if self.journal is not None:
            assert self.journal_can is not None
            _record(self.journal, self.journal_can, self.storage_can, self.storage, unit)

    def record_in(self, transaction: Any, unit: Any) -> None:
        """Write `unit`'s committed entry inside the storage's `transaction` (only when `shared`)."""
        cast(SupportsSharedTransaction, self.journal).record_in(transaction, unit)

    def reserve(self, entries: Iterable[tuple[str | None, Any, str]], run_id: str | None = None) -> list[str]:
        """The journal's reservations (`SupportsReservations`); a journal that records runs stamps them with `run_id`."""
        if run_id is not None and self.records_runs:
            return cast(SupportsRuns, self.journal).reserve(entries, run_id=run_id)
        return cast(SupportsReservations, self.journal).reserve(entries)

    def release(self, unit_ids: Iterable[str]) -> None:
        cast(SupportsReservations, self.journal).release(unit_ids)

    def flush_journal(self) -> None:
        """Write what the journal has queued (nothing to do for a journal that queues nothing)."""
        if self.journal_can is not None and self.journal_can.flush:
            cast(SupportsFlush, self.journal).flush()

    @property
    def records_runs(self) -> bool:
        """The journal records runs and each key's last committed write (`SupportsRuns`)."""
        return self.journal_can is not None and self.journal_can.runs

    def begin_run(self, run: RunFacts) -> None:
        cast(SupportsRuns, self.journal).begin_run(run)

    def end_run(self, run: RunFacts) -> None:
        cast(SupportsRuns, self.journal).end_run(run)

    def last_writes(self, keys: Iterable[str], *, workflow_id: str | None = None) -> dict[str, LastWrite]:
        """Each key's last committed write in the journal (`SupportsRuns`; keys never written are left out)."""
        return cast(SupportsRuns, self.journal).last_writes(keys, workflow_id=workflow_id)

    @property
    def records_claims(self) -> bool:
        """The journal records what happens to claims (`SupportsClaimEvents`)."""
        return self.journal_can is not None and self.journal_can.claims

    def record_claims(self, events: Iterable[ClaimEvent]) -> None:
        """Queue claim events in the journal (`SupportsClaimEvents`; nothing for a journal without it)."""
        if self.journal_can is not None and self.journal_can.claims:
            cast(SupportsClaimEvents, self.journal).record_claims(events)

    @property
    def keeps_input_fingerprints(self) -> bool:
        return self.journal_can is not None and self.journal_can.input_fingerprints

    def input_fingerprint(self, workflow_id: str) -> str | None:
        """The workflow's input fingerprint the journal recorded (see `keeps_input_fingerprints`)."""
        return cast(SupportsInputFingerprints, self.journal).fingerprint(workflow_id)

    # -- both ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the storage, then the journal (each if it declares `close`).

        The storage first: closing a storage that buffers writes makes them durable, which lets the
        journal confirm their outcomes before it closes.
        """
        try:
            self.close_storage()
        finally:
            self.close_journal()

    def close_storage(self) -> None:
        if self.storage_can.close:
            cast(SupportsClose, self.storage).close()

    def close_journal(self) -> None:
        if self.journal_can is not None and self.journal_can.close:
            cast(SupportsClose, self.journal).close()


def record_outcome(journal: SupportsRecord, storage: object, unit: Any) -> None:
    """Tell `journal` the final outcome of `unit` (a `UnitOfWork` or a snapshot of one).

    A committed unit on a storage that buffers writes (`SupportsDurableNotice`) is confirmed only
    once the storage says its writes are durable, when the journal can wait (`record_later`);
    anything else is recorded at once.
    """
    _record(journal, JournalCapabilities.of(journal), StorageCapabilities.of(storage), storage, unit)


def _record(
    journal: SupportsRecord,
    journal_can: JournalCapabilities,
    storage_can: StorageCapabilities,
    storage: object,
    unit: Any,
) -> None:
    if unit.state == COMMITTED and journal_can.record_later and storage_can.durable_notice:
        callback = cast(SupportsDeferredRecord, journal).record_later(unit)
        cast(SupportsDurableNotice, storage).on_durable(callback)
        return
    journal.record(unit)
