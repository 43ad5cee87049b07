"""The command line never alters or invents evidence (issue 16, item 4): user text is printed verbatim
by every command, read-only commands create, lock and change nothing, and what cannot be answered is
an error (exit 2), never an empty answer. On SQLite and PostgreSQL where a journal is involved."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dotflow.cli import main
from tests.support import tree

STEPS = "tests.integration.cli_steps"
NASTY = ["rows[i] is negative (data[b])", "cannot read [/etc/app.ini]", "[bold red]x", "first line\nsecond [i] line"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err



@pytest.fixture
def evidence(schema_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A journal holding one failed run per nasty error text, and one good run, on StorageFile."""
    monkeypatch.delenv("DOTFLOW_JOURNAL_URL", raising=False)
    out = tmp_path / "out"
    for index, message in enumerate(NASTY):
        monkeypatch.setenv("CLI_STEP_ERROR", message)
        status, _, _ = cli(capsys, "start", "-s", f"{STEPS}:raises_the_given_error", "-o", "file", "-p", str(out),
                           "--journal", schema_url, "--workflow-id", f"nasty{index}")  # fmt: skip
        assert status == 1
    status, _, _ = cli(capsys, "start", "-s", f"{STEPS}:greet", "-i", "[i] [/etc/app.ini] [bold red]x", "-o", "file",
                       "-p", str(out), "--journal", schema_url, "--workflow-id", "greetings")  # fmt: skip
    assert status == 0
    return schema_url, out


def test_start_prints_a_step_error_verbatim(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for message in NASTY:
        monkeypatch.setenv("CLI_STEP_ERROR", message)
        status, out, err = cli(capsys, "start", "-s", f"{STEPS}:raises_the_given_error")
        assert status == 1 and "dotflow: error" not in err
        for line in message.splitlines():
            assert line in out


def test_every_read_command_prints_user_text_verbatim(evidence: tuple[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url, out = evidence
    status, listed, _ = cli(capsys, "journal", "list", "--journal", url, "--outcome", "failed")
    assert status == 0
    for message in NASTY:
        for line in message.splitlines():
            assert line in listed
    units = json.loads(cli(capsys, "journal", "list", "--journal", url, "--outcome", "failed", "--json")[1])
    assert sorted(u["error"] for u in units) == sorted(f"ValueError: {m}" for m in NASTY)
    for unit in units:
        status, shown, _ = cli(capsys, "journal", "show", unit["unit_id"], "--journal", url)
        assert status == 0
        assert all(line in shown for line in unit["error"].splitlines())
        status, timeline, _ = cli(capsys, "journal", "timeline", unit["workflow_id"], "--journal", url,
                                  "--html", str(tmp_path / "t.html"))  # fmt: skip
        assert status == 0 and unit["workflow_id"] in timeline
        html = (tmp_path / "t.html").read_text()
        assert "[bold red]x" not in html or "&lt;" not in unit["error"]  # escaped, never interpreted
    status, runs, _ = cli(capsys, "journal", "runs", "--journal", url)
    assert status == 0 and "nasty3" in runs
    status, shown_run, _ = cli(capsys, "journal", "show", "--run", units[0]["run_id"], "--journal", url)
    assert status == 0 and units[0]["error"].splitlines()[0] in shown_run
    # a value holding markup, and the key of a hand-edited checkpoint in the verify table
    [checkpoint] = (out / "tasks").glob("greetings-*.json")
    body = json.loads(checkpoint.read_text())
    body["value"]["$context"]["storage"]["greeting"] = "[bold red]edited"
    checkpoint.write_text(json.dumps(body))
    status, verified, _ = cli(capsys, "journal", "verify", "--journal", url, "--workflow-id", "greetings")
    assert status == 1 and "greetings-0-greet.json" in verified and "changed" in verified
    status, prints, _ = cli(capsys, "journal", "fingerprints", "--journal", url)
    assert status == 0 and "greetings" in prints


def test_read_only_commands_create_lock_and_change_nothing(evidence: tuple[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url, out = evidence
    [run_id] = [r["run_id"] for r in json.loads(cli(capsys, "journal", "runs", "--journal", url, "--json")[1])
                if r["workflow_id"] == "greetings"]  # fmt: skip
    before = tree(tmp_path)
    commands = [
        ["journal", "list"], ["journal", "runs"], ["journal", "fingerprints"], ["journal", "show", "--run", run_id],
        ["journal", "timeline", "--workflow-id", "greetings"], ["journal", "verify", "--run", run_id],
        ["journal", "verify", "-o", "file", "-p", str(out)],
    ]
    for command in commands:
        status, _, err = cli(capsys, *command, "--journal", url)
        assert status == 0, (command, err)
    assert tree(tmp_path) == before


def test_a_storage_or_journal_that_does_not_exist_is_an_error_and_is_not_created(
    evidence: tuple[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, out = evidence
    missing = tmp_path / "doesnotexist"
    for kind in ("file", "batch"):
        status, _, err = cli(capsys, "journal", "verify", "--journal", url, "-o", kind, "-p", str(missing))
        assert status == 2 and "does not exist" in err and not missing.exists()
    status, _, err = cli(capsys, "journal", "list", "--journal", f"sqlite:///{tmp_path / 'none.db'}")
    assert status == 2 and "no journal at" in err and not (tmp_path / "none.db").exists()
    status, _, err = cli(capsys, "journal", "verify", "--journal", url, "-o", "sql", "--storage-url",
                         f"sqlite:///{tmp_path / 'nosql.db'}")  # fmt: skip
    assert status == 2 and not (tmp_path / "nosql.db").exists()


def test_an_application_database_is_refused_and_left_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.db"
    database = sqlite3.connect(path)
    database.execute("CREATE TABLE orders (id INTEGER)")
    database.commit()
    database.close()
    before = tree(tmp_path)
    for command in (["journal", "list"], ["journal", "runs"], ["journal", "fingerprints"]):
        status, _, err = cli(capsys, *command, "--journal", f"sqlite:///{path}")
        assert status == 2 and "has no dotflow tables" in err and err.count("\n") == 1
    assert tree(tmp_path) == before
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # never switched to WAL
    finally:
        check.close()


def test_batch_verify_leaves_no_lock_file(schema_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "batched"
    status, _, _ = cli(capsys, "start", "-s", f"{STEPS}:greet", "-o", "batch", "-p", str(path), "--journal", schema_url,
                       "--workflow-id", "batched")  # fmt: skip
    assert status == 0
    lock = path / "tasks" / ".batch.lock"
    if lock.exists():
        lock.unlink()
    before = tree(tmp_path)
    status, _, err = cli(capsys, "journal", "verify", "--journal", schema_url, "-o", "batch", "-p", str(path))
    assert status == 0, err
    status, _, err = cli(capsys, "journal", "verify", "--journal", schema_url, "--workflow-id", "batched")
    assert status == 0, err  # the storage recorded with the run: BatchStorage on that folder
    assert tree(tmp_path) == before and not lock.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["journal", "verify"], "verify needs the storage"),
        (["journal", "verify", "--workflow-id", "nope"], "the journal has no workflow 'nope'"),
        (["journal", "verify", "-o", "file", "-p", "{out}", "--workflow-id", "nope"], "the journal has no workflow 'nope'"),
        (["journal", "verify", "--run", "0000"], "no run with id '0000'"),
        (["journal", "list", "--run", "0000"], "no run with id '0000'"),
        (["journal", "timeline", "--run", "0000"], "no run with id '0000'"),
        (["journal", "show", "--run", "0000"], "no run with id '0000'"),
        (["journal", "runs", "--workflow-id", "nope"], "the journal has no workflow 'nope'"),
        (["journal", "list", "--workflow-id", "nope"], "the journal has no workflow 'nope'"),
        (["journal", "verify", "-o", "default"], "in-memory storage"),
    ],
)
def test_what_cannot_be_answered_is_an_error_not_an_empty_answer(
    argv: list[str], message: str, evidence: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, out = evidence
    status, stdout, err = cli(capsys, *[a.format(out=out) for a in argv], "--journal", url)
    assert status == 2 and stdout == ""
    assert err.startswith("dotflow: error: ") and message in err and err.count("\n") == 1


def test_an_unknown_revision_is_named_and_upgrade_is_not_suggested(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy import text

    from uow import Journal
    from uow.sql_engine import make_engine

    url = f"sqlite:///{tmp_path / 'j.db'}"
    Journal(url).close()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    engine.dispose()
    for command in (["journal", "list"], ["journal", "upgrade"]):
        status, _, err = cli(capsys, *command, "--journal", url)
        assert status == 2 and "newer (or another) version of dotflow" in err and "dotflow journal upgrade" not in err
