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

Verified resume: when the journal records runs and checksums (`uow.SupportsRuns`, as `uow.Journal`
does), every checkpoint about to be restored is compared with the SHA-256 of its key's newest
committed write, all keys of a journal in one query. A mismatch (edited, replaced, truncated, swapped
with another key's file) raises `CheckpointMismatchError` before any step runs, naming the key, the
run that committed it and both checksums. A value written by a unit whose outcome never reached the
journal (a crash window) is restored if it is that unit's value, or with a warning when its value
was reserved ahead and so is not known; a key the journal never recorded (written before it existed,
or by dotflow 1.0.1) is restored with a warning. `verify=False` (`start(verify_resume=False)`)
skips the check. Nothing of this runs when nothing is restored.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, cast

from uow import Binding, RunPersistence, VersionedCheckpoint
from uow.contracts import SupportsChecksums

from dotflow.abc.storage import Checkpoint
from dotflow.core.context import Context
from dotflow.core.exception import CheckpointMismatchError, InputChangedError
from dotflow.core.types import TypeInputChange
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.values.checkpoint_format import stored_value_encoding

logger = logging.getLogger("dotflow")

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
    claims: Any = None  # the run's `dotflow.run.claims.Claims`, when it claims its work


def plan_restore(
    sequences: list[list[Any]],
    workflow_id: Any,
    fingerprint: str | None,
    policy: str,
    run: RunPersistence,
    verify: bool = True,
) -> RunPlan:
    """Read each task's checkpoint once and plan the run. With policy "reset", deletes this run's
    checkpoints. `verify`: compare what is restored with the journal (module docstring)."""
    plan = RunPlan(fingerprint, run=run)
    recorded = _journal_fingerprint(sequences, workflow_id, run)
    to_verify: dict[int, tuple[Binding, list[tuple[str, Any]] | None]] = {}  # None: no journal that records runs
    for tasks in sequences:
        restoring = True
        for task in tasks:
            persistence = run.persistence(task.config.storage, task.config.journal)
            versioned = persistence.storage_can.versions
            if not (restoring or versioned):
                break
            key = persistence.storage.key(task=task)
            checkpoint = persistence.read_checkpoint(key)
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
            if verify:
                checking = to_verify.get(id(persistence))
                if checking is None:  # (whether its journal records runs is asked once per storage)
                    checking = to_verify[id(persistence)] = (persistence, [] if persistence.records_runs else None)
                if checking[1] is not None:
                    checking[1].append((key, checkpoint))
    for persistence, restoring_keys in to_verify.values():
        if restoring_keys is not None:
            _verify_restored(persistence, restoring_keys, run.workflow_id)
    return plan


def _verify_restored(persistence: Binding, restoring: list[tuple[str, Any]], workflow_id: str | None) -> None:
    """Compare each checkpoint about to be restored with its key's newest committed write (one query).

    When the storage gave the document it read (`Checkpoint.document`) and the journal checksums
    dotflow's encoding, the value's bytes as stored are checksummed; otherwise the value is encoded."""
    last = persistence.last_writes([key for key, _ in restoring], workflow_id=workflow_id)
    encode = _encoder(persistence.journal)
    as_stored = encode is checkpoint_bytes
    unjournaled: list[str] = []
    sha256 = hashlib.sha256
    for key, checkpoint in restoring:
        found = last.get(key)
        if found is None:
            unjournaled.append(key)
            continue
        document = checkpoint.document if as_stored and isinstance(checkpoint, Checkpoint) else None
        if document is not None and found.checksum is not None:  # (a delete's checksum is None)
            embedded = stored_value_encoding(document)
            if embedded is not None and sha256(embedded).hexdigest() == found.checksum:
                continue
        stored = hashlib.sha256(encode(checkpoint.context)).hexdigest()
        if not found.deleted and stored == found.checksum:
            continue
        if stored in found.pending:
            logger.warning("checkpoint %r: restored; it was written by a unit whose outcome never reached the "
                           "journal (a crash window), and matches what that unit wrote", key)  # fmt: skip
            continue
        if None in found.pending:
            logger.warning("checkpoint %r: restored without a check; it was written by a unit whose outcome "
                           "never reached the journal (a crash window) and whose value was not recorded", key)  # fmt: skip
            continue
        raise CheckpointMismatchError(key, found.run_id, None if found.deleted else found.checksum, stored)
    if unjournaled:
        shown = ", ".join(repr(key) for key in unjournaled[:5]) + (", ..." if len(unjournaled) > 5 else "")
        logger.warning(
            "%d checkpoint(s) restored without a check: the journal never recorded them (written before it "
            "existed, or by dotflow 1.0.1): %s", len(unjournaled), shown,
        )  # fmt: skip


def _encoder(journal: Any) -> Any:
    """The bytes the journal checksums: its `encode`, or dotflow's checkpoint encoding."""
    if isinstance(journal, SupportsChecksums) and journal.encode is not None:
        return journal.encode
    return checkpoint_bytes


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
