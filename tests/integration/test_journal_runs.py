"""Runs in the journal (issue 16, item 2): each `start()` is a recorded run; units carry its id; the
command line lists runs, filters by run, and draws the timeline run by run. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from dotflow import Config, DotFlow, action
from dotflow.cli import main
from dotflow.providers import StorageFile
from dotflow.run.journal_config import checkpoint_bytes
from uow import Journal, JournalError, RunPersistence, UnitSnapshot
from uow.journal_migrate import alembic_config, current_revision, head_revision, upgrade
from uow.outcomes import COMMITTED, FAILED, RUN_COMPLETED, RUN_FAILED, RUN_UNFINISHED
from uow.sql_engine import make_engine


@pytest.fixture
def journal(schema_url: str) -> Iterator[Journal]:
    opened = Journal(schema_url, encode=checkpoint_bytes)
    yield opened
    opened.close()


FAIL = {"load": True}


@action
def extract():  # type: ignore[no-untyped-def]
    return [1, 2, 3]


@action
def load(previous_context):  # type: ignore[no-untyped-def]
    if FAIL["load"]:
        raise ConnectionError("warehouse [i] unreachable")
    return sum(previous_context.storage)


def pipeline(journal: Journal, folder: Path) -> DotFlow:
    flow = DotFlow(config=Config(storage=StorageFile(path=folder), journal=journal), workflow_id="orders")
    flow.task.add(step=[extract, load])
    return flow


def test_each_start_is_a_run_with_its_mode_status_counts_host_and_storage(journal: Journal, tmp_path: Path) -> None:
    FAIL["load"] = True
    first = pipeline(journal, tmp_path / "out").start()
    FAIL["load"] = False
    second = pipeline(journal, tmp_path / "out").start(resume=True)
    reader = Journal(journal.url, read_only=True)
    try:
        newest, oldest = reader.runs(workflow_id="orders")
        assert (oldest.id, newest.id) == (first.persistence.run_id, second.persistence.run_id)
        assert (oldest.status, oldest.mode) == (RUN_FAILED, "sequential")
        assert (oldest.completed, oldest.restored, oldest.failed, oldest.adopted) == (1, 0, 1, 0)
        assert (newest.status, newest.completed, newest.restored, newest.failed) == (RUN_COMPLETED, 1, 1, 0)
        assert newest.storage == {"storage": "file", "path": str((tmp_path / "out").resolve())}
        assert newest.pid is not None and newest.host and newest.finished_at is not None
        units = reader.units(workflow_id="orders", oldest_first=True)
        assert [(u.task_id, u.outcome, u.run_id) for u in units] == [
            ("0-extract", COMMITTED, oldest.id), ("1-load", FAILED, oldest.id), ("1-load", COMMITTED, newest.id),
        ]  # fmt: skip
        assert [u.task_id for u in reader.units(run_id=newest.id)] == ["1-load"]
        assert reader.count_units(run_id=oldest.id) == 2 and reader.count_runs(workflow_id="orders") == 2
    finally:
        reader.close()


def test_a_run_that_began_and_never_ended_reads_unfinished(journal: Journal, tmp_path: Path) -> None:
    run = RunPersistence("crashed", mode="sequential")
    storage = StorageFile(path=tmp_path / "out")
    run.begin([(run.persistence(storage, journal), [])])  # then the process dies: no end
    reader = Journal(journal.url, read_only=True)
    try:
        [found] = reader.runs(workflow_id="crashed")
        assert (found.id, found.status, found.finished_at) == (run.run_id, RUN_UNFINISHED, None)
    finally:
        reader.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_runs_list_show_and_verify_take_a_run(journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    FAIL["load"] = True
    first = pipeline(journal, tmp_path / "out").start().persistence.run_id
    FAIL["load"] = False
    second = pipeline(journal, tmp_path / "out").start(resume=True).persistence.run_id
    url = journal.engine.url.render_as_string(hide_password=False)

    status, out, _ = cli(capsys, "journal", "runs", "--journal", url, "--workflow-id", "orders", "--json")
    assert status == 0
    runs = json.loads(out)
    assert [(r["run_id"], r["status"], r["tasks"]) for r in runs] == [
        (second, "completed", {"completed": 1, "restored": 1, "failed": 0, "adopted": 0}),
        (first, "failed", {"completed": 1, "restored": 0, "failed": 1, "adopted": 0}),
    ]
    status, out, _ = cli(capsys, "journal", "list", "--journal", url, "--run", first[:10], "--json")
    assert status == 0 and [(u["task_id"], u["outcome"], u["run_id"]) for u in json.loads(out)] == [
        ("1-load", "failed", first), ("0-extract", "committed", first)]  # fmt: skip
    status, out, _ = cli(capsys, "journal", "list", "--journal", url, "--outcome", "failed")
    assert status == 0 and "warehouse [i] unreachable" in out
    status, out, _ = cli(capsys, "journal", "show", "--journal", url, "--run", second)
    assert status == 0 and "1 completed, 1 restored, 0 failed" in out and "1-load" in out
    # verify takes the storage the run recorded: no storage option needed
    status, out, _ = cli(capsys, "journal", "verify", "--journal", url, "--run", second, "--json")
    assert status == 0 and json.loads(out)["checked"] == 1  # the key the run wrote
    status, out, _ = cli(capsys, "journal", "verify", "--journal", url, "--workflow-id", "orders", "--json")
    assert status == 0 and json.loads(out)["checked"] == 2


def test_tables_show_the_end_of_ids_and_commands_take_an_ids_start_or_end(
    journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunPersistence("wf", mode="sequential")
    journal.begin_run(run)
    run.ended_at, run.status = run.started_at + 0.04, RUN_COMPLETED
    journal.end_run(run)
    began = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    first, second = "01a2c3d4e5f67" + "0" * 7 + "aaaaaaaaaaaa", "01a2c3d4e5f67" + "0" * 7 + "bbbbbbbbbbbb"
    for index, unit_id in enumerate((first, second)):  # ids made in the same millisecond start alike
        journal.record(UnitSnapshot(id=unit_id, state=COMMITTED, workflow_id="wf", task_id=f"{index}-t", attempt=1,
                                    started_at=began, finished_at=began, error_text=None, run_id=run.run_id))  # fmt: skip
    url = journal.engine.url.render_as_string(hide_password=False)
    status, out, _ = cli(capsys, "journal", "list", "--journal", url)
    assert status == 0 and "aaaaaaaaaaaa" in out and "bbbbbbbbbbbb" in out and first[:12] not in out
    assert run.run_id[-12:] in out and run.run_id[:12] not in out

    status, out, _ = cli(capsys, "journal", "show", "--journal", url, "aaaaaaaaaaaa", "--json")
    assert status == 0 and json.loads(out)["unit_id"] == first
    status, out, _ = cli(capsys, "journal", "show", "--journal", url, second[:25], "--json")
    assert status == 0 and json.loads(out)["unit_id"] == second
    status, _, err = cli(capsys, "journal", "show", "--journal", url, first[:12])
    assert status == 2 and f"more than one unit id starts or ends with {first[:12]!r}" in err
    status, _, err = cli(capsys, "journal", "show", "--journal", url, "%")  # LIKE's wildcard, taken as a character
    assert status == 2 and "no unit of work with id '%'" in err
    status, out, _ = cli(capsys, "journal", "list", "--journal", url, "--run", run.run_id[-12:], "--json")
    assert status == 0 and [unit["unit_id"] for unit in json.loads(out)] == [second, first]


def test_a_driver_error_in_the_resume_check_is_one_journal_error_naming_the_database(journal: Journal) -> None:
    # The check's scan runs on the driver's own cursor (uow.driver_query): its errors are the driver's, not
    # SQLAlchemy's, and must still come out as the journal's one-line error.
    journal.last_writes(["k"], workflow_id="wf")  # the statement is compiled and has run once
    with journal.engine.begin() as connection:
        connection.execute(text("ALTER TABLE dotflow_journal_write RENAME TO dotflow_journal_write_gone"))
    try:
        with pytest.raises(JournalError) as raised:
            journal.last_writes(["k"], workflow_id="wf")
        assert "\n" not in str(raised.value) and "dotflow_journal_write" in str(raised.value)
    finally:
        with journal.engine.begin() as connection:
            connection.execute(text("ALTER TABLE dotflow_journal_write_gone RENAME TO dotflow_journal_write"))


def test_the_timeline_groups_lanes_by_run_without_the_idle_time_between_them(
    journal: Journal, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    start = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)
    for run_id, offset in (("a" * 32, 0.0), ("b" * 32, 30.0)):  # two runs 30 s apart, 40 ms each
        run = RunPersistence("wf", run_id=run_id, mode="sequential")
        run.started_at = start.timestamp() + offset
        journal.begin_run(run)
        run.ended_at, run.status = run.started_at + 0.04, RUN_COMPLETED
        journal.end_run(run)
        for index in range(2):
            began = start + timedelta(seconds=offset + index * 0.02)
            journal.record(UnitSnapshot(id=f"{run_id[:8]}{index:024d}", state=COMMITTED, workflow_id="wf",
                                        task_id=f"{index}-t", attempt=1, started_at=began,
                                        finished_at=began + timedelta(seconds=0.02), error_text=None,
                                        run_id=run_id))  # fmt: skip
    url = journal.engine.url.render_as_string(hide_password=False)
    page = tmp_path / "t.html"
    status, out, _ = cli(capsys, "journal", "timeline", "--journal", url, "--workflow-id", "wf", "--html", str(page))
    assert status == 0
    assert out.count("run aaaaaaaaaaaa") == 1 and out.count("run bbbbbbbbbbbb") == 1
    assert "40 ms across" in out and "30.0 s" not in out and "30 s" not in out
    lanes = [line for line in out.splitlines() if "1:committed" in line]
    assert len(lanes) == 4  # each task once per run
    html = page.read_text()
    assert html.count("<h2>Run ") == 2 and "+40 ms" in html
    status, out, _ = cli(capsys, "journal", "timeline", "--journal", url, "--run", "bbbb")
    assert status == 0 and "run bbbbbbbbbbbb" in out and "run aaaaaaaaaaaa" not in out


def test_the_runs_revision_upgrades_and_downgrades_keeping_the_units(database_url: str) -> None:
    from alembic import command

    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO dotflow_journal_unit (id, workflow_id, task_id, attempt, outcome, started_at) "
                "VALUES ('u1', 'wf', '0-a', 1, 'committed', '2026-12-01 10:00:00')"))  # fmt: skip
            connection.execute(text(
                "INSERT INTO dotflow_journal_write (unit_id, key, operation) VALUES ('u1', 'wf-0-a', 'put')"))
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        assert "run_id" in {c["name"] for c in inspect(engine).get_columns("dotflow_journal_unit")}
        assert "dotflow_journal_run" in inspect(engine).get_table_names()
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "0001")
        assert current_revision(engine) == "0001"
        assert "run_id" not in {c["name"] for c in inspect(engine).get_columns("dotflow_journal_unit")}
        assert "dotflow_journal_run" not in inspect(engine).get_table_names()
        with engine.connect() as connection:  # the downgrade kept every unit and its writes
            assert connection.execute(text("SELECT count(*) FROM dotflow_journal_write")).scalar_one() == 1
            assert connection.execute(text("SELECT count(*) FROM dotflow_journal_unit")).scalar_one() == 1
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_write_key_index_revision_upgrades_and_downgrades(database_url: str) -> None:
    from alembic import command

    engine = make_engine(database_url)
    try:
        upgrade(engine, "0002")
        assert "ix_dotflow_journal_write_key" not in {i["name"] for i in inspect(engine).get_indexes("dotflow_journal_write")}
        upgrade(engine, "0003")
        indexes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("dotflow_journal_write")}
        assert indexes["ix_dotflow_journal_write_key"] == ["key"]
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "0002")
        assert current_revision(engine) == "0002"
        assert "ix_dotflow_journal_write_key" not in {i["name"] for i in inspect(engine).get_indexes("dotflow_journal_write")}
    finally:
        engine.dispose()


def test_the_claims_revision_upgrades_and_downgrades_keeping_runs_and_units(database_url: str) -> None:
    """0004 adds the claim table and nothing else: its downgrade keeps every run, unit and write."""
    from alembic import command

    engine = make_engine(database_url)
    try:
        upgrade(engine, "0003")
        assert "dotflow_journal_claim" not in inspect(engine).get_table_names()
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO dotflow_journal_run (id, workflow_id, started_at) VALUES ('r1', 'wf', '2026-12-07 06:00:00')"))
            connection.execute(text(
                "INSERT INTO dotflow_journal_unit (id, workflow_id, task_id, attempt, outcome, started_at, run_id) "
                "VALUES ('u1', 'wf', '0-a', 1, 'committed', '2026-12-07 06:00:00', 'r1')"))  # fmt: skip
            connection.execute(text(
                "INSERT INTO dotflow_journal_write (unit_id, key, operation) VALUES ('u1', 'wf-0-a', 'put')"))
        upgrade(engine)
        assert current_revision(engine) == "0004"
        columns = {c["name"] for c in inspect(engine).get_columns("dotflow_journal_claim")}
        assert columns == {"id", "run_id", "workflow_id", "task_id", "key", "event", "owner", "epoch", "at",
                           "previous_owner", "late"}  # fmt: skip
        with engine.begin() as connection:  # ids are numbered by the database
            for event in ("taken", "released"):
                connection.execute(text(
                    "INSERT INTO dotflow_journal_claim (run_id, workflow_id, task_id, key, event, owner, epoch, at) "
                    f"VALUES ('r1', 'wf', '0-a', 'wf-0-a', '{event}', 'me', 1, '2026-12-07 06:00:00')"))  # fmt: skip
            ids = connection.execute(text("SELECT id FROM dotflow_journal_claim ORDER BY id")).scalars().all()
        assert len(set(ids)) == 2
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "0003")
        assert current_revision(engine) == "0003"
        assert "dotflow_journal_claim" not in inspect(engine).get_table_names()
        with engine.connect() as connection:
            for table in ("dotflow_journal_run", "dotflow_journal_unit", "dotflow_journal_write"):
                assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1, table
        upgrade(engine)
        assert current_revision(engine) == "0004"
    finally:
        engine.dispose()
