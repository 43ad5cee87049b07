"""Shared fixtures.

- No test waits for a real commit-retry delay: it is set to 0 for every test (tests that check the
  delays themselves record `time.sleep` calls instead). Storages take a `clock=` for ttl.
- A test that starts a process (subprocess or multiprocessing) must be marked `@pytest.mark.slow`,
  so that `pytest -m "not slow"` stays a fast loop; an unmarked one fails, saying so.
- SQL: a throwaway PostgreSQL server (started by the first slow test that needs it), and
  `database_url` / `schema_url`, one database per SQL backend (the PostgreSQL ones are slow).
"""

from __future__ import annotations

import multiprocessing.process
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import croniter  # noqa: F401  (its first import runs `file` through platform.architecture(): done here,
import pytest     # before any test's process guard, so the scheduler's tests start no process of their own)

import dotflow.run.engine as engine
from tests.servers import LocalServer, start_fake_gcs, start_moto
from dotflow.testing import ManualClock
from tests.postgres_server import postgres_server, postgres_url

__all__ = ["clock", "database_url", "postgres_server", "postgres_url", "schema_url"]


@pytest.fixture(autouse=True)
def _no_commit_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "COMMIT_RETRY_DELAY", 0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(autouse=True)
def _processes_only_in_slow_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    started: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        started.append("a process")
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it @pytest.mark.slow")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    yield
    # The engine turns a worker that could not start into a failed task: fail the test anyway.
    assert not started, f"{request.node.nodeid} starts a process: mark it @pytest.mark.slow"


# ----------------------------------------------------------------------------- local S3 and GCS servers
# Started on first use (by a slow test), once per session, and stopped at the end.


@pytest.fixture(scope="session")
def moto_server() -> Iterator[LocalServer]:
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gcs_server() -> Iterator[LocalServer]:
    server = start_fake_gcs()
    yield server
    server.stop()


@pytest.fixture(params=["s3", "gcs"])
def cloud(request: pytest.FixtureRequest) -> Any:
    """A fresh bucket on the local S3 or GCS server (the test runs once for each)."""
    from tests.cloud.backends import GcsCloud, S3Cloud

    if request.param == "s3":
        return S3Cloud(request.getfixturevalue("moto_server"))
    return GcsCloud(request.getfixturevalue("fake_gcs_server"))


@pytest.fixture
def cloud_s3(moto_server: LocalServer) -> Any:
    from tests.cloud.backends import S3Cloud

    return S3Cloud(moto_server)


@pytest.fixture
def cloud_gcs(fake_gcs_server: LocalServer) -> Any:
    from tests.cloud.backends import GcsCloud

    return GcsCloud(fake_gcs_server)


# ----------------------------------------------------------------------------- SQL databases


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that does not exist yet (SQLite) or is empty (PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def schema_url(database_url: str) -> str:
    """`database_url`, upgraded to the current schema where it is not created automatically (PostgreSQL)."""
    if database_url.startswith("postgresql"):
        from uow.journal_migrate import upgrade
        from uow.sql_engine import make_engine

        engine = make_engine(database_url)
        upgrade(engine)
        engine.dispose()
    return database_url
