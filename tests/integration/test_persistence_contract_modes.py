"""The declared persistence contract in every execution mode, child processes included.

A storage with only post/get/key and a journal with only `record`: each task is written once and
recorded once, by the parent, with the run's id; a journal that reserves gets its reserved ids back
from the children's units.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from dotflow import Config, DotFlow
from dotflow.core.types import TypeStatus
from tests.support import MinimalStorage
from tests.unit.test_persistence_contract import EventLog, FullJournal, RecordOnlyJournal, fails, one

MODES = ("sequential", "background", "sequential_group", "parallel")

pytestmark = pytest.mark.slow


class PidJournal(RecordOnlyJournal):
    """Records, with each unit, the process that recorded it."""

    def record(self, unit: Any) -> None:
        self.units.append((os.getpid(), unit))


def run(config: Config, mode: str, *steps: Any) -> tuple[DotFlow, Any]:
    flow = DotFlow(config=config, workflow_id=str(uuid.uuid4()))
    for index, step in enumerate(steps):
        flow.task.add(step=step, group_name=f"g{index}")
    manager = flow.start(mode=mode)
    if manager.thread is not None:
        manager.thread.join()
    return flow, manager


@pytest.mark.parametrize("mode", MODES)
def test_a_minimal_storage_and_a_record_only_journal_work_in_every_mode(mode: str) -> None:
    storage, journal = MinimalStorage(), PidJournal()
    flow, manager = run(Config(storage=storage, journal=journal), mode, one, one, fails)
    assert [t.status for t in flow.result_task()] == [TypeStatus.COMPLETED, TypeStatus.COMPLETED, TypeStatus.FAILED]
    assert sorted((u.task_id, u.state) for _, u in journal.units) == [
        ("0-one", "committed"), ("1-one", "committed"), ("2-fails", "rolled_back"),
    ]  # fmt: skip
    assert {pid for pid, _ in journal.units} == {os.getpid()}  # recorded by the parent
    assert {u.run_id for _, u in journal.units} == {manager.persistence.run_id}
    assert sorted(c.storage for c in storage.data.values()) == [1, 1]  # the parent's storage, once each


@pytest.mark.parametrize("mode", ["sequential_group", "parallel"])
def test_children_take_the_ids_the_parent_reserved(mode: str) -> None:
    log = EventLog()
    journal = FullJournal(log)
    run(Config(journal=journal), mode, one, one)
    assert sorted(unit_id for unit_id, _, _ in journal.recorded) == ["reserved-0-one", "reserved-1-one"]
    assert log.events[0] == "reserve 2" and log.events[-2:] == ["release 0", "journal flush"]
