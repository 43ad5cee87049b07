"""The journal under real workflows: every mode, failed attempts, verify, one transaction with StorageSQL."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dotflow import Config, DotFlow, action
from dotflow.cli import main
from dotflow.core.context import Context
from dotflow.core.exception import InputChangedError
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.providers import StorageFile, StorageSQL
from dotflow.storage.memory import StorageDefault
from uow import CommitError, ConflictError, Journal, UnitOfWork
from uow.journal import PROBLEMS

MODES = ("sequential", "background", "sequential_group", "parallel")


def attempt_number(name: str) -> int:
    """Counts the calls of `name` in a file, so attempts made in child processes count too."""
    path = Path(os.environ["JOURNAL_TEST_DIR"], name)
    with path.open("a") as log:
        log.write("x")
    return path.stat().st_size


@action
def extract():  # type: ignore[no-untyped-def]
    return {"rows": [1, 2, 3]}


@action(retry=2, retry_delay=0)
def flaky():  # type: ignore[no-untyped-def]
    if attempt_number("flaky") == 1:
        raise ConnectionError("first attempt times out")
    return "second attempt works"


@action(retry=2, retry_delay=0)
def broken():  # type: ignore[no-untyped-def]
    attempt_number("broken")
    raise ValueError("bad input row 7")


@pytest.fixture
def journal(schema_url: str) -> Iterator[Journal]:
    opened = Journal(schema_url, encode=checkpoint_bytes)
    yield opened
    opened.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_records_each_unit_once_and_verify_is_clean(
    mode: str, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNAL_TEST_DIR", str(tmp_path))
    storage = StorageFile(path=tmp_path / "out")
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id=f"etl-{mode}")
    flow.task.add(step=[extract, flaky], group_name="first")
    flow.task.add(step=broken, group_name="second")
    manager = flow.start(mode=mode)
    if mode == "background":
        manager.thread.join()
    statuses = [str(task.status) for task in flow.result_task()]
    assert statuses == ["Completed", "Completed", "Failed"]

    # the run has confirmed every outcome (in background mode, before its thread ended): another reader sees them all
    reader = Journal(journal.url)
    try:
        assert "prepared" not in {u.outcome for u in reader.units(workflow_id=f"etl-{mode}")}
    finally:
        reader.close()
    units = journal.units(workflow_id=f"etl-{mode}", oldest_first=True)
    entries = Counter((u.task_id, u.attempt, u.outcome) for u in units)
    assert entries == Counter({
        ("0-extract", 1, "committed"): 1,
        ("1-flaky", 1, "failed"): 1,
        ("1-flaky", 2, "committed"): 1,
        ("2-broken", 1, "failed"): 1,
        ("2-broken", 2, "failed"): 1,
    })  # fmt: skip
    errors = {(u.task_id, u.attempt): u.error for u in units if u.outcome == "failed"}
    assert errors[("1-flaky", 1)] == "ConnectionError: first attempt times out"
    assert errors[("2-broken", 2)] == "ValueError: bad input row 7"
    assert all(u.finished_at is not None and u.started_at <= u.finished_at for u in units)

    findings = journal.verify(storage, prefix=f"etl-{mode}-")
    assert [(f.key, f.status) for f in findings] == [
        (f"etl-{mode}-0-extract.json", "backed"),
        (f"etl-{mode}-1-flaky.json", "backed"),
    ]
    argv = ["journal", "verify", "--url", journal.url, "--path", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    capsys.readouterr()

    edited = tmp_path / "out" / "tasks" / f"etl-{mode}-1-flaky.json"
    body = json.loads(edited.read_text())
    body["value"]["$context"]["storage"] = "second attempt works!"
    edited.write_text(json.dumps(body))  # still valid JSON
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(f["key"], f["status"]) for f in report["findings"] if f["status"] in PROBLEMS] == [
        (f"etl-{mode}-1-flaky.json", "changed")
    ]


def test_the_end_of_a_run_confirms_its_last_outcome(journal: Journal, tmp_path: Path) -> None:
    flow = DotFlow(config=Config(storage=StorageFile(path=tmp_path), journal=journal), workflow_id="short")
    flow.task.add(step=extract)
    flow.start()
    reader = Journal(journal.url)
    try:
        assert [u.outcome for u in reader.units()] == ["committed"]
    finally:
        reader.close()


def test_a_multi_key_unit_on_storage_default_is_all_or_nothing_without_reads() -> None:
    reads: list[str] = []

    class FailsOnSecond(StorageDefault):
        def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
            if key == "wf-b":
                raise OSError("disk full")
            super().post(key, context, ttl, fingerprint)

        def read_checkpoint(self, key: str):  # type: ignore[no-untyped-def]
            reads.append(key)
            return super().read_checkpoint(key)

    storage = FailsOnSecond()
    storage.post("wf-a", Context(storage="old a"))
    reads.clear()
    unit = UnitOfWork(storage)
    unit.put("wf-a", Context(storage="new a"))
    unit.put("wf-b", Context(storage="new b"))
    with pytest.raises(CommitError) as info:
        unit.commit()
    assert reads == []  # the transaction needs no before-images
    assert "transaction rolled back" in str(info.value) and info.value.written == []
    assert storage.get("wf-a").storage == "old a" and storage.read_checkpoint("wf-b") is None


def test_a_multi_key_unit_on_storage_sql_is_one_transaction(schema_url: str) -> None:
    storage = StorageSQL(schema_url)
    try:
        storage.post("wf-a", Context(storage="old a"))
        unit = UnitOfWork(storage)
        unit.put("wf-a", Context(storage="new a"))
        unit.put("wf-b", Context(storage=object()))  # cannot be stored: refused inside the transaction
        with pytest.raises(CommitError):
            unit.commit()
        assert storage.get("wf-a").storage == "old a" and storage.read_checkpoint("wf-b") is None
        unit = UnitOfWork(storage)
        unit.put("wf-a", Context(storage="new a"))
        unit.put("wf-b", Context(storage="new b"))
        unit.commit()
        assert [storage.get(k).storage for k in ("wf-a", "wf-b")] == ["new a", "new b"]
    finally:
        storage.close()


@pytest.mark.parametrize("where", ["before the journal entry", "after the journal entry"])
def test_storage_sql_and_the_journal_on_one_database_commit_together(
    schema_url: str, journal: Journal, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = StorageSQL(schema_url)
    try:
        assert journal.shares(storage)
        ok = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
        ok.put("wf-0-a", Context(storage="first"))
        ok.commit()
        assert [u.outcome for u in journal.units()] == ["committed"]  # no separate intent record

        real_record_in = journal.record_in

        def failing_record_in(transaction: object, unit: object) -> None:
            if where == "after the journal entry":
                real_record_in(transaction, unit)
            raise ConnectionError(f"injected failure {where}")

        monkeypatch.setattr(journal, "record_in", failing_record_in)
        unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=2)
        unit.put("wf-0-a", Context(storage="second"))
        unit.put("wf-1-b", Context(storage="also second"))
        with pytest.raises(CommitError):
            unit.commit()
        assert storage.get("wf-0-a").storage == "first"
        assert storage.read_checkpoint("wf-1-b") is None
        assert [(u.attempt, u.outcome) for u in journal.units(oldest_first=True)] == [(1, "committed"), (2, "failed")]
        assert {f.key: f.status for f in journal.verify(storage)} == {"wf-0-a": "backed", "wf-1-b": "backed"}
    finally:
        storage.close()


class NoFingerprints(StorageDefault):
    """A storage that keeps no fingerprint with its checkpoints (as a custom 1.0.1 storage)."""

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        super().post(key, context, ttl)

    def post_if(self, key: str, context: Context, *, version: str | None, ttl: int | None = None,
                fingerprint: str | None = None) -> bool:  # fmt: skip
        return super().post_if(key, context, version=version, ttl=ttl)


@action
def echo(initial_context):  # type: ignore[no-untyped-def]
    return initial_context.storage


def test_on_input_change_uses_the_journal_row_of_the_workflow(journal: Journal) -> None:
    storage = NoFingerprints()

    def run(value: str, **kwargs: object) -> DotFlow:
        flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="inputs")
        flow.task.add(step=echo, initial_context=value)
        flow.start(resume=True, **kwargs)
        return flow

    run("v1")
    assert journal.fingerprint("inputs") is not None
    with pytest.raises(InputChangedError):
        run("v2", on_input_change="raise")
    # without the journal, a checkpoint without a fingerprint is reused
    flow = DotFlow(config=Config(storage=storage), workflow_id="inputs")
    flow.task.add(step=echo, initial_context="v2")
    flow.start(resume=True, on_input_change="raise")
    assert flow.result_storage() == ["v1"]


def test_config_takes_a_journal_url(tmp_path: Path) -> None:
    config = Config(journal=f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        assert isinstance(config.journal, Journal) and config.journal.encode is checkpoint_bytes
    finally:
        config.journal.close()


@pytest.mark.parametrize("keys", [("wf-0-a",), ("wf-1-b", "wf-0-a")])
def test_a_lost_race_on_storage_sql_is_a_conflict_and_writes_nothing(
    schema_url: str, journal: Journal, keys: tuple[str, ...]
) -> None:
    storage = StorageSQL(schema_url)
    try:
        unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
        assert unit.get("wf-0-a") is None  # remembers "absent"
        storage.post("wf-0-a", Context(storage="theirs"))  # another run commits first
        for key in keys:
            unit.put(key, Context(storage="mine"))
        with pytest.raises(ConflictError):
            unit.commit()
        assert storage.get("wf-0-a").storage == "theirs"
        assert storage.read_checkpoint("wf-1-b") is None
        assert [u.outcome for u in journal.units()] == ["conflict"]
    finally:
        storage.close()
