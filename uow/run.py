"""`RunPersistence`: the one object a workflow run talks to for persistence.

A run binds each storage/journal pair it uses once (`persistence`), begins with the checkpoints its
tasks will write (`begin`: the journal's intents recorded ahead), opens one unit of work per attempt
(`unit`), makes a buffering storage durable when asked (`flush`), and ends (`end`):

1. every storage that buffers writes is flushed, so each committed value is durable;
2. each journal releases the intents reserved for tasks that never ran, writing the outcomes it
   queued in the same transaction;
3. each journal writes what it still holds.

Storages before journals: a journal confirms a unit on a buffering storage only once its writes are
durable (`SupportsDurableNotice`), so a confirmed outcome never precedes its durable write.

A run has an id (`run_id`, carried by each of its units), a start and an end (`started_at`,
`ended_at`, `status`), the mode it ran in, the host and process it ran in, the counts of its tasks
(`counts`: completed, restored, failed, adopted, given to `end`) and a description of its storage
without credentials (`storage`, given by the caller). A journal that records runs (`SupportsRuns`)
gets the run when it begins (written with the run's first journal transaction: its reservations)
and when it ends (with its last), so a run that never ended reads "unfinished". The objects it
binds are opaque here: a "task" is whatever the storage's `key(task)` takes.

Claims (leases a worker takes before it runs a task or the workflow) are told to the run
(`claim_event`), which hands them to the binding's journal if it records them
(`SupportsClaimEvents`): queued there, and written with the journal's next transaction (the run's
outcomes, or its end), never in one of their own. A journal error while recording one is logged,
never raised: a claim event never fails or re-runs a step.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from uow.contracts import CheckpointStorage, ClaimEvent, SupportsRecord
from uow.outcomes import RUN_COMPLETED, RUN_FAILED, TASK_COUNTS
from uow.persistence import Persistence
from uow.unit_of_work import UnitOfWork

__all__ = ["RUN_COMPLETED", "RUN_FAILED", "TASK_COUNTS", "Binding", "RunPersistence"]


logger = logging.getLogger("uow")

Binding = Persistence[CheckpointStorage]  # a run's binding of a storage (with `key`) and its journal


class RunPersistence:
    """Persistence of one run of a workflow; see the module docstring.

    One instance per run. It may be copied into a child process (by fork): there it binds the
    stand-ins of the parent's storages and journals, and opens units with the ids reserved here;
    only the parent ends the run.
    """

    def __init__(
        self,
        workflow_id: str | None = None,
        *,
        run_id: str | None = None,
        mode: str | None = None,
        storage: Mapping[str, Any] | None = None,
    ) -> None:
        self.workflow_id = workflow_id
        self.run_id = run_id if run_id is not None else uuid.uuid4().hex
        self.mode = mode
        self.storage = storage  # the run's storage described without credentials (JSON-ready), if known
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.status: str | None = None  # RUN_COMPLETED or RUN_FAILED once ended
        self.counts: Mapping[str, int] | None = None  # TASK_COUNTS, once ended
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._bindings: dict[tuple[int, int], Binding] = {}
        self._last: Binding | None = None  # the binding asked for last: tasks usually share one
        self._reserved: dict[Any, str] = {}  # task id -> unit id its journal reserved (its first unit's)
        self._reservations: list[tuple[Binding, list[str]]] = []

    def __repr__(self) -> str:
        return f"<RunPersistence {self.run_id} of workflow {self.workflow_id!r}, {self.status or 'running'}>"

    # -- binding -------------------------------------------------------------------------------

    def persistence(self, storage: CheckpointStorage, journal: SupportsRecord | None = None) -> Binding:
        """The binding of `storage` and `journal` in this run: made (and their abilities worked out) once."""
        last = self._last
        if last is not None and last.storage is storage and last.journal is journal:
            return last
        # No lock: two threads binding the same pair at once make two equal bindings, and one is kept.
        key = (id(storage), id(journal))
        found = self._bindings.get(key)
        if found is None or found.storage is not storage or found.journal is not journal:
            if not isinstance(storage, CheckpointStorage):
                raise TypeError(f"a run's storage needs post, get and key; {type(storage).__name__} lacks one")
            found = self._bindings[key] = Persistence(storage, journal)
        self._last = found
        return found

    # -- the run -------------------------------------------------------------------------------

    def begin(self, tasks: Iterable[tuple[Binding, Iterable[tuple[Any, Any]]]]) -> None:
        """Begin the run with the checkpoints it will write: each binding with its `(task id, task)`s.

        Each journal that records intents ahead (`Binding.reserves`: `SupportsReservations`, not
        writing inside the storage's transaction) records them for its tasks in one transaction;
        each task's first unit (`unit(..., attempt=1)`) then takes its reserved id. A journal that
        cannot reserve is logged and skipped: each unit records its own intent, as without
        reservations. The tasks of a binding whose journal does not reserve are never looked at.
        """
        recording = self._run_journals()
        for journal_binding in recording:
            try:
                journal_binding.begin_run(self)  # queued: written with the reservations below, or flushed
            except Exception as error:
                logger.warning("workflow %s: the journal could not record the run: %s", self.workflow_id, error)
        written: set[int] = set()
        for persistence, bound in tasks:
            if not persistence.reserves:
                continue
            chosen = list(bound)
            try:
                entries = [(self.workflow_id, task_id, persistence.storage.key(task=task)) for task_id, task in chosen]
                unit_ids = persistence.reserve(entries, run_id=self.run_id)
            except Exception as error:
                logger.warning("workflow %s: the journal could not record intents ahead: %s", self.workflow_id, error)
                continue
            if unit_ids:  # (no entry: nothing written)
                written.add(id(persistence.journal))
            self._reserved.update((task_id, unit_id) for (task_id, _), unit_id in zip(chosen, unit_ids))
            self._reservations.append((persistence, list(unit_ids)))
        for journal_binding in recording:
            if id(journal_binding.journal) not in written:  # nothing reserved: the run's row alone
                try:
                    journal_binding.flush_journal()
                except Exception as error:
                    logger.warning("workflow %s: the journal could not record the run: %s", self.workflow_id, error)

    def unit(self, persistence: Binding, *, task_id: Any, attempt: int) -> UnitOfWork:
        """A unit of work of this run for one attempt of a task; a task's first unit takes the id
        its journal reserved in `begin` (later ones, and retried commits, get fresh ids)."""
        unit_id = self._reserved.pop(task_id, None) if self._reserved else None
        if attempt != 1:
            unit_id = None
        return UnitOfWork(
            persistence,
            workflow_id=self.workflow_id,
            task_id=task_id,
            attempt=attempt,
            unit_id=unit_id,
            run_id=self.run_id,
        )

    def claim_event(
        self,
        persistence: Binding,
        event: str,
        *,
        key: str,
        owner: str,
        epoch: int,
        task_id: Any = None,
        previous_owner: str | None = None,
        late: float | None = None,
    ) -> None:
        """Tell `persistence`'s journal that `event` (`uow.outcomes.CLAIM_EVENTS`) happened to the
        lease on `key` (see `ClaimEvent`); nothing when it does not record claims. Never raises."""
        if not persistence.records_claims:
            return
        happened = ClaimEvent(
            run_id=self.run_id,
            workflow_id=self.workflow_id,
            task_id=None if task_id is None else str(task_id),
            key=key,
            event=event,
            owner=owner,
            epoch=epoch,
            at=time.time(),
            previous_owner=previous_owner,
            late=late,
        )
        self.record_claims(persistence, [happened])

    def record_claims(self, persistence: Binding, events: list[ClaimEvent]) -> None:
        """Queue claim events in `persistence`'s journal (a child process's events arrive here in the
        parent). A failure is logged: the events are lost, the step goes on."""
        try:
            persistence.record_claims(events)
        except Exception as error:
            logger.warning("workflow %s: the journal could not record %d claim event(s): %s", self.workflow_id,
                           len(events), error)  # fmt: skip

    def flush(self, persistence: Binding | None = None) -> None:
        """Make buffered writes durable: of one binding's storage, or (None) of every storage of the run."""
        if persistence is not None:
            persistence.flush()
            return
        errors: list[Exception] = []
        for storage_binding in self._distinct(lambda p: p.storage):
            try:
                storage_binding.flush()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    def end(self, *, failed: bool, counts: Mapping[str, int] | None = None,
            after_storages: Callable[[], None] | None = None) -> None:  # fmt: skip
        """End the run: storages flushed, then the run's end recorded, reservations released and
        journals flushed (see the module docstring). `counts`: its tasks by TASK_COUNTS.
        `after_storages` is called once the storages were flushed (or failed to), before the journals
        are written: what it records (a claim released) goes with the run's last transaction; an
        error it raises is logged. A storage that cannot flush raises, after the journals were
        written (the run then reads failed); a journal error is logged (the run's outcome stands;
        its next write retries the queue)."""
        if self.ended_at is not None:
            return
        self.status = RUN_FAILED if failed else RUN_COMPLETED
        self.counts = counts
        try:
            self.flush()
        except BaseException:
            self.status = RUN_FAILED
            raise
        finally:
            self.ended_at = time.time()
            if after_storages is not None:
                try:
                    after_storages()
                except Exception as error:
                    logger.warning("workflow %s: ending the run: %s", self.workflow_id, error)
            self._record_end()
            self._release_reservations()
            self.flush_journals()

    def close(self) -> None:
        """Close every storage of the run, then every journal (see `Persistence.close`)."""
        try:
            for binding in self._distinct(lambda p: p.storage):
                binding.close_storage()
        finally:
            for binding in self._distinct(lambda p: p.journal):
                binding.close_journal()

    # -- internals -----------------------------------------------------------------------------

    def _run_journals(self) -> list[Binding]:
        """One binding per distinct journal that records runs."""
        return [b for b in self._distinct(lambda p: p.journal) if b.records_runs]

    def _record_end(self) -> None:
        for journal_binding in self._run_journals():
            try:
                journal_binding.end_run(self)
            except Exception as error:
                logger.warning("workflow %s: the journal could not record the end of the run: %s", self.workflow_id, error)

    def _release_reservations(self) -> None:
        reservations, self._reservations = self._reservations, []
        for persistence, unit_ids in reservations:
            try:
                persistence.release(unit_ids)
            except Exception as error:  # they read as unconfirmed intents
                logger.warning("workflow %s: the journal could not release unused intents: %s", self.workflow_id, error)

    def flush_journals(self) -> None:
        """Write what each journal of the run has queued (errors are logged)."""
        for persistence in self._distinct(lambda p: p.journal):
            try:
                persistence.flush_journal()
            except Exception as error:
                logger.warning("workflow %s: the journal could not be flushed: %s", self.workflow_id, error)

    def _distinct(self, identity: Callable[[Binding], object]) -> list[Binding]:
        """One binding per distinct `identity(binding)` (compared by object identity), in binding order."""
        bindings = list(self._bindings.values())  # (a copy: a relay thread may add one meanwhile)
        seen: set[int] = set()
        distinct = []
        for binding in bindings:
            marker = id(identity(binding))
            if marker not in seen:
                seen.add(marker)
                distinct.append(binding)
        return distinct
