"""`UnitSnapshot`: the facts a journal reads from a unit, as a plain value that can cross processes.

A unit of work holds its storage (which may be a pipe to another process); a snapshot holds only
what `UnitOfWork` exposes to a journal, so a child process can send it to the parent, whose
journal records it as if it had seen the unit itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from uow.unit_of_work import Change, UnitOfWork

__all__ = ["UnitSnapshot"]


@dataclass(frozen=True)
class UnitSnapshot:
    id: str
    state: str
    workflow_id: str | None
    task_id: Any
    attempt: int | None
    started_at: datetime
    finished_at: datetime | None
    error_text: str | None
    changes: Mapping[str, Change] = field(default_factory=dict)
    written_keys: list[str] = field(default_factory=list)
    expected_versions: Mapping[str, str | None] = field(default_factory=dict)
    run_id: str | None = None

    @classmethod
    def of(cls, unit: UnitOfWork | UnitSnapshot) -> UnitSnapshot:
        if isinstance(unit, UnitSnapshot):
            return unit
        return cls(
            id=unit.id,
            state=unit.state,
            workflow_id=unit.workflow_id,
            task_id=unit.task_id,
            attempt=unit.attempt,
            started_at=unit.started_at,
            finished_at=unit.finished_at,
            error_text=unit.error_text,
            changes=dict(unit.changes),
            written_keys=unit.written_keys,
            expected_versions=dict(unit.expected_versions),
            run_id=unit.run_id,
        )
