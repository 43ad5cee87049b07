"""Intents recorded ahead (`Journal.reserve`), outcomes written in batches: few journal transactions
per run, the same guarantees (verify, the crash window), no stale "prepared" rows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dotflow import Config, DotFlow, action
from dotflow.core.context import Context
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.providers import StorageFile
from uow import Journal, UnitOfWork
from uow.journal import BACKED, PROBLEMS, UNCONFIRMED

ROOT = Path(__file__).resolve().parents[2]


@action
def extract():  # type: ignore[no-untyped-def]
    return {"rows": [1, 2, 3]}


@action
def broken():  # type: ignore[no-untyped-def]
    raise ValueError("bad input row 7")


@action(retry=2, retry_delay=0)
def flaky():  # type: ignore[no-untyped-def]
    path = Path(os.environ["JOURNAL_TEST_DIR"], "flaky")
    with path.open("a") as log:
        log.write("x")
    if path.stat().st_size == 1:
        raise ConnectionError("first attempt times out")
    return "second attempt works"


@pytest.fixture
def journal(schema_url: str) -> Iterator[Journal]:
    opened = Journal(schema_url, encode=checkpoint_bytes)
    yield opened
    opened.close()


def count_transactions(journal: Journal) -> list[int]:
    """A counter of the transactions the journal's writer runs from now on."""
    counter = [0]
    run = journal._writer.run

    def counted(batch: Any, **kwargs: Any) -> None:
        counter[0] += 1
        run(batch, **kwargs)

    journal._writer.run = counted  # type: ignore[method-assign]
    return counter


def test_a_run_of_n_tasks_costs_about_n_over_64_transactions(journal: Journal, tmp_path: Path) -> None:
    tasks = 150
    storage = StorageFile(path=tmp_path / "out")
    transactions = count_transactions(journal)
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="many")
    flow.task.add(step=[extract] * tasks)
    flow.start()
    assert all(str(task.status) == "Completed" for task in flow.result_task())
    # the intents (1), a batch of outcomes per 64 (2), the rest with the end of the run (1)
    assert transactions[0] == 1 + tasks // 64 + 1

    reader = Journal(journal.url, encode=checkpoint_bytes)
    try:
        units = reader.units(workflow_id="many", limit=None)
        assert len(units) == tasks and {u.outcome for u in units} == {"committed"}
        assert all(u.attempt == 1 and u.finished_at is not None and u.started_at <= u.finished_at for u in units)
        shown = reader.unit(units[0].id)
        assert shown is not None and len(shown.writes) == 1
        write = shown.writes[0]
        assert write.operation == "put" and write.checksum is not None and write.size and write.fingerprint
        findings = reader.verify(storage)
        assert len(findings) == tasks and {f.status for f in findings} == {BACKED}
    finally:
        reader.close()


def test_a_run_stopped_by_a_failure_leaves_no_prepared_rows(journal: Journal, tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "out")
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="stopped")
    flow.task.add(step=[extract, broken, extract, extract])
    flow.start()
    assert [str(t.status) for t in flow.result_task()][:2] == ["Completed", "Failed"]

    reader = Journal(journal.url, encode=checkpoint_bytes)
    try:
        units = reader.units(workflow_id="stopped", oldest_first=True)
        assert [(u.task_id, u.outcome) for u in units] == [("0-extract", "committed"), ("1-broken", "failed")]
        failed = reader.unit(units[1].id)
        assert failed is not None and failed.writes == () and failed.error == "ValueError: bad input row 7"
        assert [f.status for f in reader.verify(storage)] == [BACKED]
    finally:
        reader.close()


def test_retries_after_the_first_attempt_are_journalled_as_before(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_TEST_DIR", str(tmp_path))
    storage = StorageFile(path=tmp_path / "out")
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="retried")
    flow.task.add(step=flaky)
    flow.start()
    units = journal.units(workflow_id="retried", oldest_first=True)
    assert [(u.attempt, u.outcome) for u in units] == [(1, "failed"), (2, "committed")]
    first, second = (journal.unit(u.id) for u in units)
    assert first is not None and first.writes == ()
    assert second is not None and [w.key for w in second.writes] == ["retried-0-flaky.json"]
    assert second.writes[0].checksum is not None
    assert [f.status for f in journal.verify(storage)] == [BACKED]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_child_process_modes_take_the_fast_path(mode: str, journal: Journal, tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "out")
    transactions = count_transactions(journal)
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id=f"children-{mode}")
    for group in ("a", "b", "c"):
        flow.task.add(step=[extract, extract], group_name=group)
    flow.start(mode=mode)
    assert [str(t.status) for t in flow.result_task()] == ["Completed"] * 6
    assert transactions[0] == 2  # the intents, then the outcomes with the end of the run
    units = journal.units(workflow_id=f"children-{mode}", limit=None)
    assert Counter(u.outcome for u in units) == Counter({"committed": 6})
    findings = journal.verify(storage)
    assert len(findings) == 6 and {f.status for f in findings} == {BACKED}


def test_a_reserved_unit_prepares_without_a_transaction(journal: Journal, tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "out")
    [unit_id] = journal.reserve([("wf", "t1", "wf-t1.json")])
    transactions = count_transactions(journal)
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="t1", attempt=1, unit_id=unit_id, run_id="r1")
    assert unit.id == unit_id
    unit.put("wf-t1.json", Context(storage="v1"), fingerprint="fp")
    unit.commit()
    assert transactions[0] == 0  # intent reserved, outcome queued
    journal.flush()
    assert transactions[0] == 1
    entry = journal.unit(unit_id)
    assert entry is not None and entry.outcome == "committed" and entry.writes[0].checksum is not None
    assert journal.fingerprint("wf") == "fp"


def test_last_writes_sees_an_outcome_still_queued(journal: Journal, tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "out")
    [unit_id] = journal.reserve([("wf", "t1", "wf-t1.json")])
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="t1", attempt=1, unit_id=unit_id, run_id="r1")
    unit.put("wf-t1.json", Context(storage="v1"))
    unit.commit()  # its outcome is queued
    transactions = count_transactions(journal)
    found = journal.last_writes(["wf-t1.json"])["wf-t1.json"]
    assert transactions[0] == 1  # the queued outcome was written first
    assert found.unit_id == unit_id and found.checksum is not None and found.pending == ()


def test_a_reserved_unit_that_writes_another_key_is_prepared_as_before(journal: Journal, tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "out")
    [unit_id] = journal.reserve([("wf", "t1", "wf-t1.json")])
    transactions = count_transactions(journal)
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="t1", attempt=1, unit_id=unit_id, run_id="r1")
    unit.put("wf-other.json", Context(storage="v1"))
    unit.commit()
    assert transactions[0] == 1  # its own intent transaction, dropping the reserved write row
    entry = journal.unit(unit_id)
    assert entry is not None and entry.outcome == "committed"
    assert [(w.key, w.checksum is not None) for w in entry.writes] == [("wf-other.json", True)]


def test_verify_calls_a_key_written_under_a_reservation_unconfirmed(journal: Journal, tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "out")
    journal.reserve([("wf", "t1", "wf-t1.json"), ("wf", "t2", "wf-t2.json")])
    storage.post("wf-t1.json", Context(storage="written, outcome never came"))
    findings = journal.verify(storage)
    assert [(f.key, f.status) for f in findings] == [("wf-t1.json", UNCONFIRMED), ("wf-t2.json", BACKED)]
    assert "reserved ahead" in findings[0].detail
    assert not {f.status for f in findings} & set(PROBLEMS)


def test_release_deletes_only_unused_reservations(journal: Journal, tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path / "out")
    used, unused = journal.reserve([("wf", "t1", "wf-t1.json"), ("wf", "t2", "wf-t2.json")])
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="t1", attempt=1, unit_id=used)
    unit.put("wf-t1.json", Context(storage="v1"))
    unit.commit()
    journal.release([used, unused])
    assert [(u.id, u.outcome) for u in journal.units()] == [(used, "committed")]


def test_batch_outcomes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_outcomes"):
        Journal(f"sqlite:///{tmp_path / 'j.db'}", batch_outcomes=0)


@pytest.mark.slow
@pytest.mark.parametrize(("batch", "confirmed"), [(64, 0), (4, 8)])
def test_a_crash_after_a_write_leaves_its_key_unconfirmed(batch: int, confirmed: int, tmp_path: Path) -> None:
    worker = subprocess.run(
        [sys.executable, "-m", "tests.integration.journal_ahead_crash_worker", str(tmp_path), "20", "10", str(batch)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert worker.returncode == -9, worker.stderr
    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}", encode=checkpoint_bytes)
    try:
        findings = {f.key: f.status for f in journal.verify(StorageFile(path=tmp_path / "out"))}
        committed = journal.units(outcome="committed", limit=None)
    finally:
        journal.close()
    assert len(committed) == confirmed
    written = [f"ahead-{n}-step.json" for n in range(10)]
    assert [findings[key] for key in written] == [BACKED] * confirmed + [UNCONFIRMED] * (10 - confirmed)
    assert set(findings.values()) <= {BACKED, UNCONFIRMED}  # never unbacked, missing or changed


def test_on_batch_storage_outcomes_are_written_in_batches_once_durable(journal: Journal, tmp_path: Path) -> None:
    from dotflow.storage.batch import BatchStorage

    storage = BatchStorage(StorageFile(path=tmp_path / "out"), max_batch=10, max_delay=None)
    transactions = count_transactions(journal)
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="batched")
    flow.task.add(step=[extract] * 150)
    flow.start()
    assert all(str(task.status) == "Completed" for task in flow.result_task())
    assert transactions[0] == 1 + 150 // 64 + 1
    units = journal.units(workflow_id="batched", limit=None)
    assert len(units) == 150 and {u.outcome for u in units} == {"committed"}
    findings = journal.verify(storage)
    assert len(findings) == 150 and {f.status for f in findings} == {BACKED}
