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
`ended_at`, `status`). The objects it binds are opaque here: a "task" is whatever the storage's
`key(task)` takes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from uow.contracts import CheckpointStorage, SupportsRecord
from uow.outcomes import RUN_COMPLETED, RUN_FAILED
from uow.persistence import Persistence
from uow.unit_of_work import UnitOfWork

__all__ = ["RUN_COMPLETED", "RUN_FAILED", "Binding", "RunPersistence"]


logger = logging.getLogger("uow")

Binding = Persistence[CheckpointStorage]  # a run's binding of a storage (with `key`) and its journal


class RunPersistence:
    """Persistence of one run of a workflow; see the module docstring.

    One instance per run. It may be copied into a child process (by fork): there it binds the
    stand-ins of the parent's storages and journals, and opens units with the ids reserved here;
    only the parent ends the run.
    """

    def __init__(self, workflow_id: str | None = None, *, run_id: str | None = None) -> None:
        self.workflow_id = workflow_id
        self.run_id = run_id if run_id is not None else uuid.uuid4().hex
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.status: str | None = None  # RUN_COMPLETED or RUN_FAILED once ended
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
        for persistence, bound in tasks:
            if not persistence.reserves:
                continue
            chosen = list(bound)
            try:
                entries = [(self.workflow_id, task_id, persistence.storage.key(task=task)) for task_id, task in chosen]
                unit_ids = persistence.reserve(entries)
            except Exception as error:
                logger.warning("workflow %s: the journal could not record intents ahead: %s", self.workflow_id, error)
                continue
            self._reserved.update((task_id, unit_id) for (task_id, _), unit_id in zip(chosen, unit_ids))
            self._reservations.append((persistence, list(unit_ids)))

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

    def end(self, *, failed: bool) -> None:
        """End the run: storages flushed, then reservations released and journals flushed (see the
        module docstring). A storage that cannot flush raises, after the journals were written;
        a journal error is logged (the run's outcome stands; its next write retries the queue)."""
        if self.ended_at is not None:
            return
        self.status = RUN_FAILED if failed else RUN_COMPLETED
        try:
            self.flush()
        finally:
            self._release_reservations()
            self._flush_journals()
            self.ended_at = time.time()

    def close(self) -> None:
        """Close every storage of the run, then every journal (see `Persistence.close`)."""
        try:
            for binding in self._distinct(lambda p: p.storage):
                binding.close_storage()
        finally:
            for binding in self._distinct(lambda p: p.journal):
                binding.close_journal()

    # -- internals -----------------------------------------------------------------------------

    def _release_reservations(self) -> None:
        reservations, self._reservations = self._reservations, []
        for persistence, unit_ids in reservations:
            try:
                persistence.release(unit_ids)
            except Exception as error:  # they read as unconfirmed intents
                logger.warning("workflow %s: the journal could not release unused intents: %s", self.workflow_id, error)

    def _flush_journals(self) -> None:
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
