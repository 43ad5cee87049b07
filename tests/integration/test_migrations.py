"""Alembic owns every table: migrations match the table definitions, run both ways, and are never implicit."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from dotflow.storage.sql import metadata as storage_metadata
from uow import Journal, SchemaError
from uow.journal_migrate import PROJECT_ROOT, current_revision, head_revision, upgrade
from uow.journal_schema import metadata as journal_metadata
from uow.sql_engine import make_engine

OWN_TABLES = {"dotflow_journal_run", "dotflow_journal_claim", "dotflow_journal_unit", "dotflow_journal_write", "dotflow_workflow_input", "dotflow_checkpoint"}


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_autogenerate_finds_no_difference_after_upgrade(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            diff = compare_metadata(context, [journal_metadata, storage_metadata])
        assert diff == []
        assert tables(database_url) == OWN_TABLES
    finally:
        engine.dispose()


def test_upgrade_then_downgrade_base(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        from alembic import command

        from uow.journal_migrate import alembic_config

        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "base")
        assert tables(database_url) == set()
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_a_missing_sqlite_file_is_created_at_head(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert current_revision(journal.engine) == head_revision()
        with journal.engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert mode == "wal"
    finally:
        journal.close()


def test_an_existing_database_without_the_tables_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "existing.db"
    existing = sqlite3.connect(path)  # an application's database (an empty file is created: see test_sql_faults)
    existing.execute("CREATE TABLE orders (id INTEGER)")
    existing.close()
    with pytest.raises(SchemaError) as info:
        Journal(f"sqlite:///{path}")
    assert "has no dotflow tables" in str(info.value)
    assert "dotflow journal upgrade" in str(info.value)
    assert tables(f"sqlite:///{path}") == {"orders"}


def test_a_database_at_an_older_revision_names_the_command_to_paste(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    engine.dispose()
    with pytest.raises(SchemaError, match=rf"is at revision '0001'.*run `dotflow journal upgrade --journal '{url}'`"):
        Journal(url)


def test_a_database_at_an_unknown_revision_says_another_version_wrote_it_and_suggests_no_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Journal(url).close()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    engine.dispose()
    with pytest.raises(SchemaError) as raised:
        Journal(url)
    message = str(raised.value)
    assert "is at revision 'f00d'" in message and "written by a newer (or another) version of dotflow" in message
    assert "upgrade" not in message


def test_a_suggested_command_never_shows_a_masked_password() -> None:
    from uow.journal_migrate import mismatch

    engine = make_engine("postgresql://auditor:s3cret@db.example:5432/journal")
    try:
        message = mismatch(engine, None, head_revision())
    finally:
        engine.dispose()
    assert "s3cret" not in message and "***" in message.split(";")[0]  # the database named, masked
    assert "set DOTFLOW_JOURNAL_URL to its URL, then run `dotflow journal upgrade`" in message


@pytest.mark.slow
def test_a_postgres_database_is_never_created_implicitly(postgres_url: str) -> None:
    with pytest.raises(SchemaError, match="dotflow journal upgrade"):
        Journal(postgres_url)
    assert tables(postgres_url) == set()




@pytest.mark.slow
def test_the_alembic_command_line_with_x_url_and_the_environment(tmp_path: Path) -> None:
    alembic = [sys.executable, "-m", "alembic", "-c", str(PROJECT_ROOT / "alembic.ini")]
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "DOTFLOW_JOURNAL_URL": url}
    subprocess.run([*alembic, "-x", f"url={url}", "upgrade", "head"], check=True, capture_output=True, cwd=tmp_path)
    assert tables(url) == OWN_TABLES
    subprocess.run([*alembic, "downgrade", "base"], check=True, capture_output=True, cwd=tmp_path, env=env)
    assert tables(url) == set()
    missing = subprocess.run([*alembic, "upgrade", "head"], capture_output=True, text=True, cwd=tmp_path,
                             env={k: v for k, v in env.items() if k != "DOTFLOW_JOURNAL_URL"})
    assert missing.returncode != 0 and "DOTFLOW_JOURNAL_URL" in missing.stderr
