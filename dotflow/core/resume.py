"""Which tasks a resumed run can skip: one checkpoint read per task looked up.

In each sequence of tasks (the whole queue, or one group) the leading tasks whose checkpoints
exist are restored; from the first task that must run, the rest of that sequence runs too, since
its input may now differ. Parallel tasks are independent: each is looked up.
"""

from __future__ import annotations

from typing import Any

from dotflow.core.context import Context
from dotflow.core.exception import InputChangedError
from dotflow.core.types import TypeInputChange

__all__ = ["plan_restore"]


def plan_restore(
    sequences: list[list[Any]],
    workflow_id: Any,
    fingerprint: str | None,
    policy: str,
) -> dict[str, Context]:
    """Map task_id -> restored Context. With policy "reset", deletes this run's checkpoints."""
    restored: dict[str, Context] = {}
    for tasks in sequences:
        for task in tasks:
            storage = task.config.storage
            checkpoint = storage.read_checkpoint(key=storage.key(task=task))
            if checkpoint is None:
                break
            changed = checkpoint.fingerprint is not None and checkpoint.fingerprint != fingerprint
            if changed and policy == TypeInputChange.RAISE:
                raise InputChangedError(workflow_id=workflow_id)
            if changed and policy == TypeInputChange.RESET:
                _delete_checkpoints(sequences)
                return {}
            restored[task.task_id] = checkpoint.context
    return restored


def _delete_checkpoints(sequences: list[list[Any]]) -> None:
    """Delete the checkpoint of every task of this run (exact keys: never another workflow's)."""
    for tasks in sequences:
        for task in tasks:
            storage = task.config.storage
            try:
                storage.delete(key=storage.key(task=task))
            except NotImplementedError:
                return  # cannot delete: each checkpoint is overwritten as its task commits
