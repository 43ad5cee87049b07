"""What a run knows before it starts (`RunPlan`): which tasks it can skip, and which checkpoint
version each task's commit is conditional on.

Resume reads each task's checkpoint once. In each sequence of tasks (the whole queue, or one group)
the leading tasks whose checkpoints exist are restored; from the first task that must run, the rest
of that sequence runs too, since its input may now differ. Parallel tasks are independent: each one
with a checkpoint is restored.

Input changes (`on_input_change`): when the configured journal keeps per-workflow fingerprints
(`journal.fingerprint(workflow_id)`, as `uow.Journal` does), its row is compared with this run's
fingerprint; otherwise each restored checkpoint's own fingerprint is.

On a storage with versions, the tasks that run are also looked up, so that each commit can be
conditional on the version this run saw ("absent" included): if another run committed that task
first, the commit conflicts and the engine adopts the stored checkpoint instead (see TaskEngine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from uow import RunPersistence, VersionedCheckpoint

from dotflow.core.context import Context
from dotflow.core.exception import InputChangedError
from dotflow.core.types import TypeInputChange

__all__ = ["NOT_READ", "RunPlan", "plan_restore"]


class _NotRead:
    def __repr__(self) -> str:
        return "NOT_READ"


NOT_READ: Any = _NotRead()  # a task whose checkpoint this run did not look up: commit unconditionally


@dataclass
class RunPlan:
    fingerprint: str | None = None
    restored: dict[str, Context] = field(default_factory=dict)  # task_id -> restored checkpoint
    versions: dict[str, str | None] = field(default_factory=dict)  # task_id -> version seen (None: absent)
    run: RunPersistence = field(default_factory=RunPersistence)  # the run's persistence (reservations too)


def plan_restore(
    sequences: list[list[Any]],
    workflow_id: Any,
    fingerprint: str | None,
    policy: str,
    run: RunPersistence,
) -> RunPlan:
    """Read each task's checkpoint once and plan the run. With policy "reset", deletes this run's checkpoints."""
    plan = RunPlan(fingerprint, run=run)
    recorded = _journal_fingerprint(sequences, workflow_id, run)
    for tasks in sequences:
        restoring = True
        for task in tasks:
            persistence = run.persistence(task.config.storage, task.config.journal)
            versioned = persistence.storage_can.versions
            if not (restoring or versioned):
                break
            checkpoint = persistence.read_checkpoint(persistence.storage.key(task=task))
            if versioned:
                plan.versions[task.task_id] = None if checkpoint is None else cast(VersionedCheckpoint, checkpoint).version
            if checkpoint is None or not restoring:
                restoring = False
                continue
            if recorded is not _NO_JOURNAL:  # the journal's row for the workflow decides
                changed = recorded is not None and recorded != fingerprint
            else:
                changed = checkpoint.fingerprint is not None and checkpoint.fingerprint != fingerprint
            if changed and policy == TypeInputChange.RAISE:
                raise InputChangedError(workflow_id=workflow_id)
            if changed and policy == TypeInputChange.RESET:
                _delete_checkpoints(sequences, run)
                return RunPlan(fingerprint, versions={task.task_id: None for seq in sequences for task in seq}, run=run)
            plan.restored[task.task_id] = checkpoint.context
    return plan


_NO_JOURNAL: Any = object()


def _journal_fingerprint(sequences: list[list[Any]], workflow_id: Any, run: RunPersistence) -> Any:
    """The workflow's input fingerprint recorded in the journal (None if none), or _NO_JOURNAL
    when no journal that keeps per-workflow fingerprints is configured."""
    first = next((task for tasks in sequences for task in tasks), None)
    if first is None:
        return _NO_JOURNAL
    persistence = run.persistence(first.config.storage, first.config.journal)
    if not persistence.keeps_input_fingerprints:
        return _NO_JOURNAL
    return persistence.input_fingerprint(str(workflow_id))


def _delete_checkpoints(sequences: list[list[Any]], run: RunPersistence) -> None:
    """Delete the checkpoint of every task of this run (exact keys: never another workflow's)."""
    for tasks in sequences:
        for task in tasks:
            persistence = run.persistence(task.config.storage, task.config.journal)
            try:
                persistence.delete(persistence.storage.key(task=task))
            except NotImplementedError:
                return  # cannot delete: each checkpoint is overwritten as its task commits
