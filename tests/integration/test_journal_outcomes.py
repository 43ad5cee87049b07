"""Outcomes are complete (issue 16, item 1): a unit's outcome is in the journal when its commit returns
(outside a run) or when `start()` returns (inside one); a step that raised is `failed` with its error,
a rollback asked for stays `rolled_back`. Another reader of the database checks, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.context import Context
from dotflow.providers import BatchStorage, StorageFile
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.storage.memory import StorageDefault
from uow import Journal, UnitOfWork
from uow.outcomes import COMMITTED, FAILED, PREPARED, ROLLED_BACK


@pytest.fixture
def journal(schema_url: str) -> Iterator[Journal]:
    opened = Journal(schema_url, encode=checkpoint_bytes)
    yield opened
    opened.close()


def seen_by_another_reader(url: str, unit_id: str) -> str | None:
    reader = Journal(url)
    try:
        entry = reader.unit(unit_id)
        return None if entry is None else entry.outcome
    finally:
        reader.close()


def test_a_unit_outside_a_run_is_committed_in_the_journal_when_the_with_block_returns(journal: Journal) -> None:
    with UnitOfWork(StorageDefault(), journal=journal, workflow_id="alone", task_id="t", attempt=1) as unit:
        unit.put("alone-t", Context(storage=1))
    assert seen_by_another_reader(journal.url, unit.id) == COMMITTED


def test_a_unit_outside_a_run_is_committed_in_the_journal_when_commit_returns(journal: Journal) -> None:
    first = UnitOfWork(StorageDefault(), journal=journal, workflow_id="alone", task_id="a", attempt=1)
    first.put("alone-a", Context(storage=1))
    first.commit()
    assert seen_by_another_reader(journal.url, first.id) == COMMITTED


def test_on_a_buffering_storage_the_outcome_follows_the_flush_without_another_unit(journal: Journal, tmp_path: Path) -> None:
    storage = BatchStorage(StorageFile(path=tmp_path / "out"), max_delay=None)
    try:
        with UnitOfWork(storage, journal=journal, workflow_id="alone", task_id="b", attempt=1) as unit:
            unit.put("alone-b", Context(storage=2))
        assert seen_by_another_reader(journal.url, unit.id) == PREPARED  # not durable yet: not confirmed
        storage.flush()
        assert seen_by_another_reader(journal.url, unit.id) == COMMITTED
    finally:
        storage.close()


def test_a_with_block_left_by_an_exception_is_failed_and_an_asked_rollback_is_rolled_back(journal: Journal) -> None:
    storage = StorageDefault()
    with pytest.raises(ValueError):
        with UnitOfWork(storage, journal=journal, workflow_id="alone", task_id="c", attempt=1) as failed:
            failed.put("alone-c", Context(storage=3))
            raise ValueError("rows[i] is negative")
    asked = UnitOfWork(storage, journal=journal, workflow_id="alone", task_id="d", attempt=1)
    asked.put("alone-d", Context(storage=4))
    asked.rollback()
    assert seen_by_another_reader(journal.url, failed.id) == FAILED
    assert seen_by_another_reader(journal.url, asked.id) == ROLLED_BACK
    entry = journal.unit(failed.id)
    assert entry is not None and entry.error == "ValueError: rows[i] is negative"
    assert [u.id for u in journal.units(outcome=FAILED)] == [failed.id]


@action
def fine():  # type: ignore[no-untyped-def]
    return 1


@action
def raises():  # type: ignore[no-untyped-def]
    raise ValueError("rows[i] is negative (data[b])")


def test_a_task_whose_step_raised_is_found_as_failed_with_its_error(journal: Journal, tmp_path: Path) -> None:
    flow = DotFlow(config=Config(storage=StorageFile(path=tmp_path / "out"), journal=journal), workflow_id="searched")
    flow.task.add(step=[fine, raises])
    flow.start()
    reader = Journal(journal.url)
    try:
        units = reader.units(workflow_id="searched", oldest_first=True)
        assert [(u.task_id, u.outcome) for u in units] == [("0-fine", COMMITTED), ("1-raises", FAILED)]
        [failed] = reader.units(outcome=FAILED)
        assert failed.error == "ValueError: rows[i] is negative (data[b])"
        assert reader.units(outcome=ROLLED_BACK) == []
    finally:
        reader.close()
