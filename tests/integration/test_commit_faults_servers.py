"""Faults at every step of a commit against real servers: PostgreSQL stopped (as the storage and as the
journal, mid-run and before the run), the S3 and GCS endpoints cut mid-run and during resume, and every
storage unreachable when `dotflow start` begins. The same checks as test_commit_faults.py: the caller's
error, what storage and journal hold, and that no step ran again because of a storage failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dotflow import Config
from dotflow.cli import main
from dotflow.core.exception import StorageError, TransientStorageError
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageFile, StorageSQL
from dotflow.run.journal_config import checkpoint_bytes
from tests.integration.fault_support import VALUES, flow_of, outcomes, stored, verify
from tests.postgres_server import PostgresServer
from tests.servers import free_port, gcs_client, new_bucket_name, s3_client
from tests.tcp_proxy import TcpProxy
from uow import Journal, JournalError

pytestmark = pytest.mark.slow  # PostgreSQL, moto and fake-gcs-server run as processes

COMPLETED, FAILED, NOT_STARTED = TypeStatus.COMPLETED, TypeStatus.FAILED, TypeStatus.NOT_STARTED


@pytest.fixture(autouse=True)
def _fresh_values() -> None:
    VALUES.update(run="v1", executions=[], during={})


# -- PostgreSQL that a test stops and starts again -----------------------------------------------------


class StoppablePostgres(PostgresServer):
    def halt(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.data), "status")
        except RuntimeError:
            return False
        return True


@pytest.fixture(scope="module")
def stoppable_postgres() -> Iterator[StoppablePostgres]:
    server = StoppablePostgres()
    try:
        yield server
    finally:
        if not server.running():
            server.restart()
        server.stop()


@pytest.fixture
def pg(stoppable_postgres: StoppablePostgres) -> Iterator[Any]:
    """A fresh database on a server this test may stop (it is running again afterwards)."""
    if not stoppable_postgres.running():
        stoppable_postgres.restart()
    url = stoppable_postgres.new_database() + "?connect_timeout=3"
    from uow.journal_migrate import upgrade
    from uow.sql_engine import make_engine

    engine = make_engine(url)
    upgrade(engine)  # the journal's and StorageSQL's tables (an existing database is never altered by itself)
    engine.dispose()
    yield stoppable_postgres, url
    if not stoppable_postgres.running():
        stoppable_postgres.restart()


def names_the_server(message: str, server: PostgresServer) -> bool:
    return f"127.0.0.1:{server.port}" in message


def test_postgresql_storage_stopped_mid_run_keeps_the_previous_checkpoint(pg: Any, tmp_path: Path) -> None:
    server, url = pg
    storage = StorageSQL(url)
    config = Config(storage=storage, journal=f"sqlite:///{tmp_path / 'journal.db'}")
    flow = flow_of(config)
    flow.start()
    VALUES.update(run="v2", executions=[])
    VALUES["during"]["transform"] = server.halt  # after extract committed, before transform's commit

    started = time.monotonic()
    flow.start()
    elapsed = time.monotonic() - started

    tasks = flow.result_task()
    assert [task.status for task in tasks] == [COMPLETED, FAILED, NOT_STARTED]
    error = tasks[1].errors[-1]
    assert error.exception == "CheckpointNotSaved"
    key = storage.key(task=tasks[1])
    assert error.message.startswith(
        f"checkpoint of task '1-transform' could not be saved to key '{key}': TransientStorageError: SQL storage "
    )
    assert names_the_server(error.message, server) and "\n" not in error.message
    assert VALUES["executions"] == ["extract", "transform"]  # the commit alone was tried again
    assert elapsed < 30
    server.restart()
    assert stored(storage, flow) == ["v2-extract", "v1-transform", "v1-load"]
    assert outcomes(config.journal)[3:] == [("0-extract", "committed")] + [("1-transform", "failed")] * 3
    assert set(verify(config.journal, storage).values()) == {"backed"}
    storage.close()
    config.journal.close()


def test_postgresql_journal_stopped_after_the_writes_leaves_them_unconfirmed_until_it_is_back(
    pg: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, url = pg
    storage = StorageFile(path=tmp_path / "out")
    journal = Journal(url, encode=checkpoint_bytes)
    flow = flow_of(Config(storage=storage, journal=journal))
    VALUES["during"]["load"] = server.halt  # the intents are in; the outcomes are queued for the end
    with caplog.at_level(logging.WARNING, logger="uow"):
        flow.start()  # the checkpoints are saved: nothing reaches the caller

    assert [task.status for task in flow.result_task()] == [COMPLETED] * 3
    assert "the journal could not be flushed" in caplog.text and f"127.0.0.1:{server.port}" in caplog.text
    assert stored(storage, flow) == ["v1-extract", "v1-transform", "v1-load"]
    server.restart()
    audit = Journal(url, encode=checkpoint_bytes)
    assert sorted(outcomes(audit)) == [(task.task_id, "prepared") for task in flow.result_task()]
    assert set(verify(audit, storage).values()) == {"unconfirmed"}
    journal.flush()  # the journal kept the outcomes; its connection comes back with the server
    assert sorted(outcomes(audit)) == [(task.task_id, "committed") for task in flow.result_task()]
    assert set(verify(audit, storage).values()) == {"backed"}
    flow.start(resume=True)
    assert VALUES["executions"] == ["extract", "transform", "load"]  # nothing ran again
    audit.close()
    journal.close()


def test_postgresql_journal_down_before_the_run_fails_each_commit_with_nothing_written(
    pg: Any, tmp_path: Path
) -> None:
    server, url = pg
    storage = StorageFile(path=tmp_path / "out")
    journal = Journal(url, encode=checkpoint_bytes)
    flow = flow_of(Config(storage=storage, journal=journal))
    server.halt()
    started = time.monotonic()
    flow.start()
    assert time.monotonic() - started < 60  # 1 + 3 connection attempts, each refused at once

    tasks = flow.result_task()
    assert [task.status for task in tasks] == [FAILED, NOT_STARTED, NOT_STARTED]
    message = tasks[0].errors[-1].message
    assert message.startswith("checkpoint of task '0-extract' could not be saved to key ")
    assert "JournalError: journal postgresql" in message and names_the_server(message, server)
    assert VALUES["executions"] == ["extract"]
    assert stored(storage, flow) == [None, None, None]  # no write without its intent in the journal
    with pytest.raises(JournalError, match="cannot reach the server"):  # the run's end is still queued
        journal.close()


@pytest.mark.parametrize("down", ["storage", "journal"])
def test_postgresql_down_during_resume_stops_the_run_before_any_step(pg: Any, tmp_path: Path, down: str) -> None:
    server, url = pg
    if down == "storage":
        storage: Any = StorageSQL(url)
        journal: Any = f"sqlite:///{tmp_path / 'journal.db'}"
    else:
        storage, journal = StorageFile(path=tmp_path / "out"), Journal(url, encode=checkpoint_bytes)
    flow = flow_of(Config(storage=storage, journal=journal))
    flow.start()
    VALUES.update(run="v2", executions=[])
    server.halt()
    expected = TransientStorageError if down == "storage" else JournalError
    with pytest.raises(expected) as raised:
        flow.start(resume=True)
    assert names_the_server(str(raised.value), server) and "\n" not in str(raised.value)
    assert VALUES["executions"] == []
    server.restart()
    assert stored(storage, flow) == ["v1-extract", "v1-transform", "v1-load"]
    for opened in (storage, flow.task.queue[0].config.journal):
        if hasattr(opened, "close"):
            opened.close()


def test_storagesql_errors_from_a_stopped_server_are_one_line_naming_it(pg: Any) -> None:
    server, url = pg
    storage = StorageSQL(url)
    storage.post("orders-0-extract", "v1")
    server.halt()

    def in_transaction() -> None:
        with storage.transaction() as ops:
            ops.post("orders-1-transform", "v2")

    try:
        for operation in (
            lambda: storage.read_checkpoint("orders-0-extract"),
            lambda: storage.post("orders-0-extract", "v2"),
            lambda: storage.post_if("orders-0-extract", "v2", version=None),
            lambda: storage.list_keys("orders-"),
            lambda: storage.create_lease("orders-0-extract", owner="w1", ttl=30),
            lambda: storage.read_lease("orders-0-extract"),
            in_transaction,
        ):
            with pytest.raises(TransientStorageError) as raised:  # a StorageError the engine retries a commit after
                operation()
            assert names_the_server(str(raised.value), server) and "\n" not in str(raised.value)
            assert "cannot reach the server" in str(raised.value)
    finally:
        storage.close()


def test_storagesql_value_too_long_for_its_column_is_permanent_the_task_fails_at_once(pg: Any, tmp_path: Path) -> None:
    """A table made by hand with the checkpoint table's columns, `document` too short for a checkpoint:
    PostgreSQL refuses the write (SQLSTATE 22001), which no retry can fix."""
    server, url = pg
    from sqlalchemy import text

    from uow.sql_engine import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "CREATE TABLE short_checkpoint (key VARCHAR(512) PRIMARY KEY, document VARCHAR(40) NOT NULL, "
            "expires_at FLOAT, version VARCHAR(32) NOT NULL, updated_at TIMESTAMP WITH TIME ZONE NOT NULL)"
        ))  # fmt: skip
    engine.dispose()
    storage = StorageSQL(url, table="short_checkpoint")
    config = Config(storage=storage, journal=f"sqlite:///{tmp_path / 'journal.db'}")
    flow = flow_of(config)

    flow.start()

    tasks = flow.result_task()
    assert [task.status for task in tasks] == [FAILED, NOT_STARTED, NOT_STARTED]
    message = tasks[0].errors[-1].message
    key = storage.key(task=tasks[0])
    assert message.startswith(f"checkpoint of task '0-extract' could not be saved to key '{key}': StorageError: SQL storage ")
    assert names_the_server(message, server) and "\n" not in message
    assert "StringDataRightTruncation: value too long for type character varying(40)" in message
    assert VALUES["executions"] == ["extract"]
    assert outcomes(config.journal) == [("0-extract", "failed")]  # tried once: not transient
    storage.close()
    config.journal.close()


# -- S3 and GCS endpoints cut by a proxy ---------------------------------------------------------------


@pytest.fixture(params=["s3", "gcs"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A bucket on the local server, reached through a proxy the test can cut, and a storage on it."""
    from google.api_core.retry import Retry

    server = request.getfixturevalue("moto_server" if request.param == "s3" else "fake_gcs_server")
    proxy = TcpProxy(server.port)
    bucket = new_bucket_name(request.param)
    if request.param == "s3":
        from dotflow.storage.s3 import StorageS3

        s3_client(server.url).create_bucket(Bucket=bucket)
        storage: Any = StorageS3(bucket=bucket, client=s3_client(proxy.url))  # 5 tries, standard backoff
    else:
        from dotflow.storage.gcs import StorageGCS

        gcs_client(server.url).create_bucket(bucket)
        quick = Retry(initial=0.05, maximum=0.2, timeout=2)  # the default policy gives up after 60 s
        storage = StorageGCS(bucket=bucket, client=gcs_client(proxy.url), retry=quick)
    try:
        yield request.param, proxy, storage
    finally:
        proxy.close()


def test_an_object_store_cut_mid_run_keeps_the_previous_checkpoint(endpoint: Any, tmp_path: Path) -> None:
    name, proxy, storage = endpoint
    config = Config(storage=storage, journal=f"sqlite:///{tmp_path / 'journal.db'}")
    flow = flow_of(config)
    flow.start()
    VALUES.update(run="v2", executions=[])
    VALUES["during"]["transform"] = proxy.cut

    flow.start()

    tasks = flow.result_task()
    assert [task.status for task in tasks] == [COMPLETED, FAILED, NOT_STARTED]
    message = tasks[1].errors[-1].message
    key = storage.key(task=tasks[1])
    assert message.startswith(f"checkpoint of task '1-transform' could not be saved to key '{key}': StorageError: ")
    assert storage.bucket in message and "\n" not in message
    if name == "gcs":
        assert proxy.url in message
    assert VALUES["executions"] == ["extract", "transform"]
    proxy.restore()
    assert stored(storage, flow) == ["v2-extract", "v1-transform", "v1-load"]
    assert outcomes(config.journal)[3:] == [("0-extract", "committed"), ("1-transform", "failed")]
    assert set(verify(config.journal, storage).values()) == {"backed"}


def test_an_object_store_cut_during_resume_stops_the_run_before_any_step(endpoint: Any, tmp_path: Path) -> None:
    _, proxy, storage = endpoint
    flow = flow_of(Config(storage=storage, journal=f"sqlite:///{tmp_path / 'journal.db'}"))
    flow.start()
    VALUES.update(run="v2", executions=[])
    proxy.cut()
    with pytest.raises(StorageError) as raised:
        flow.start(resume=True)
    assert storage.bucket in str(raised.value) and "\n" not in str(raised.value)
    assert VALUES["executions"] == []
    proxy.restore()
    assert stored(storage, flow) == ["v1-extract", "v1-transform", "v1-load"]


# -- a storage unreachable when `dotflow start` begins: one line naming it, no step, seconds -------------


@pytest.mark.parametrize("backend", ["s3", "gcs", "sql", "journal"])
def test_dotflow_start_with_an_unreachable_storage_fails_before_any_step(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nothing listens there
    marker = tmp_path / "ran"
    monkeypatch.setenv("MARKER_FILE", str(marker))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    options = {
        "s3": ["--storage", "s3", "--bucket", "orders", "--endpoint-url", f"http://127.0.0.1:{port}"],
        "gcs": ["--storage", "gcs", "--bucket", "orders", "--project", "dotflow-tests"],
        "sql": ["--storage", "sql", "--storage-url", f"postgresql://dotflow@127.0.0.1:{port}/orders"],
        "journal": ["--storage", "file", "--path", str(tmp_path / "out"),
                    "--journal", f"postgresql://dotflow@127.0.0.1:{port}/journal"],
    }[backend]  # fmt: skip
    started = time.monotonic()
    status = main(["start", "--step", "tests.integration.fault_steps:touch_marker", *options])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"127.0.0.1:{port}" in lines[0] and lines[0].startswith("dotflow: error: ")
    assert not marker.exists()  # no step ran
    assert elapsed < 15, f"{elapsed:.1f} s"
