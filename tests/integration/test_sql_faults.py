"""The journal and StorageSQL when their database is locked, half made, unreachable or badly named."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dotflow import Config
from dotflow.cli import main
from dotflow.core.context import Context
from dotflow.core.exception import StorageError
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.providers import StorageFile, StorageSQL
from dotflow.storage.memory import StorageDefault
from tests.servers import free_port
from uow import CommitError, Journal, JournalError, SchemaError, UnitOfWork


@pytest.fixture
def locked_by_another_process(tmp_path: Path) -> Iterator[str]:
    """A journal file whose write lock another connection holds (`BEGIN IMMEDIATE`) for the whole test."""
    path = tmp_path / "journal.db"
    journal = Journal(f"sqlite:///{path}", encode=checkpoint_bytes)
    unit = UnitOfWork(StorageDefault(), journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
    unit.put("wf-0-a", Context(storage=1))
    unit.commit()
    journal.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield f"sqlite:///{path}"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.timeout(20)
def test_opening_and_reading_a_journal_takes_no_write_lock(
    locked_by_another_process: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal(locked_by_another_process, encode=checkpoint_bytes, busy_timeout=0.05)
    try:
        assert [u.outcome for u in journal.units()] == ["committed"]
    finally:
        journal.close()
    assert main(["journal", "list", "--url", locked_by_another_process, "--json"]) == 0
    storage = tmp_path / "out"
    (storage / "tasks").mkdir(parents=True)  # an empty storage (verify never creates one)
    verify = ["journal", "verify", "--url", locked_by_another_process, "-o", "file", "-p", str(storage), "--json"]
    assert main(verify) == 1  # the key is missing from this empty storage: a finding, not a lock error
    assert "locked" not in capsys.readouterr().err


@pytest.mark.timeout(20)
def test_a_write_that_outwaits_the_busy_timeout_is_a_journal_error_naming_the_lock(
    locked_by_another_process: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("uow.sql_engine.time.sleep", lambda seconds: None)  # the pause between retries
    journal = Journal(locked_by_another_process, encode=checkpoint_bytes, busy_timeout=0.05)
    try:
        with pytest.raises(JournalError, match="another process holds its write lock") as raised:
            journal.set_fingerprint("wf", "fp-2")
        assert "journal.db" in str(raised.value)
        unit = UnitOfWork(StorageDefault(), journal=journal, workflow_id="wf", task_id="1-b", attempt=1)
        unit.put("wf-1-b", Context(storage=2))
        with pytest.raises(CommitError) as failed:
            unit.commit()
        assert isinstance(failed.value.__cause__, JournalError)
    finally:
        journal.close()


@pytest.mark.parametrize("leftover", ["empty file", "file with only its pragmas"])
def test_a_sqlite_file_left_empty_by_a_killed_creation_is_created_on_the_next_open(tmp_path: Path, leftover: str) -> None:
    for name, open_it in (("journal.db", Journal), ("checkpoints.db", StorageSQL)):
        path = tmp_path / name
        if leftover == "empty file":
            path.touch()  # killed right after the file was opened
        else:  # killed inside the creating transaction: SQLite rolled it back, the WAL header stays
            connection = sqlite3.connect(path)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.close()
        opened = open_it(f"sqlite:///{path}")
        opened.close()
    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        assert journal.units() == []
    finally:
        journal.close()


def test_a_sqlite_file_holding_other_tables_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE orders (id INTEGER)")
    connection.close()
    with pytest.raises(SchemaError, match="has no dotflow tables"):
        Journal(f"sqlite:///{path}")


@pytest.mark.timeout(30)
def test_an_unreachable_postgresql_is_one_error_naming_the_server() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://dotflow:s3cret@127.0.0.1:{port}/journal"
    with pytest.raises(StorageError) as storage_error:
        StorageSQL(url)
    with pytest.raises(JournalError) as journal_error:
        Journal(url)
    with pytest.raises(JournalError):
        Config(journal=url)
    for error in (storage_error.value, journal_error.value):
        assert f"cannot reach the server at 127.0.0.1:{port}" in str(error)
        assert "s3cret" not in str(error) and "\n" not in str(error)


def test_a_journal_that_cannot_be_created_is_one_error_naming_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'journal.db'}"
    with pytest.raises(JournalError) as raised:
        Config(storage=StorageFile(path=tmp_path / "out"), journal=url)
    assert "no-such-folder/journal.db" in str(raised.value) and "unable to open" in str(raised.value)


BAD_URLS = ["postgresql://user:PASSWORD@host:notaport/db", "postgresql://user:PASS@WORD@db.example:x/db"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_url_that_cannot_be_parsed_is_refused_without_its_password(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for open_it in (Journal, StorageSQL, lambda url: Config(journal=url)):
        with pytest.raises(ValueError, match="not a database URL") as raised:
            open_it(url)
        assert "PASS" not in str(raised.value) and "***" in str(raised.value)
    assert main(["journal", "list", "--url", url]) == 2
    err = capsys.readouterr().err
    assert "not a database URL" in err and "PASS" not in err
