"""Faults at every step of a commit, on real file and SQLite storages and a real SQLite journal.

For each fault: the caller's error (type and message), what the storage and the journal hold
afterwards (the previous checkpoint intact or the new one whole, never a mix; where a mix is possible
the error and `verify` name it), and that the step did not run again because of it. The same faults
against PostgreSQL, S3 and GCS are in test_commit_faults_servers.py.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dotflow import Config
from dotflow.core.context import Context
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageDefault, StorageFile, StorageSQL
from dotflow.run.journal_config import checkpoint_bytes
from tests.integration.fault_support import VALUES, faulty, flow_of, outcomes, stored, verify
from uow import CommitError, Journal, JournalError, UnitOfWork

WRITES = {"post", "post_if", "tx.post", "tx.post_if"}
COMPLETED, FAILED, NOT_STARTED = TypeStatus.COMPLETED, TypeStatus.FAILED, TypeStatus.NOT_STARTED


@pytest.fixture(autouse=True)
def _fresh_values() -> None:
    VALUES.update(run="v1", executions=[], during={})


def make_backend(name: str, tmp_path: Path) -> Any:
    """A storage that fails on command, and the URL of its journal (the same database for sqlite-shared:
    the journal's entry is then written inside the storage's transaction)."""
    journal_url = f"sqlite:///{tmp_path / 'journal.db'}"
    if name == "memory":
        storage = faulty(StorageDefault)()
    elif name == "file":
        storage = faulty(StorageFile)(path=tmp_path / "out")
    elif name == "sqlite":
        storage = faulty(StorageSQL)(f"sqlite:///{tmp_path / 'checkpoints.db'}")
    else:
        journal_url = f"sqlite:///{tmp_path / 'shared.db'}"
        storage = faulty(StorageSQL)(journal_url)
    return SimpleNamespace(name=name, storage=storage, journal_url=journal_url)


@pytest.fixture(params=["file", "sqlite", "sqlite-shared"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return make_backend(request.param, tmp_path)


def refuse_writes_of(key: str, message: str = "connection reset by peer") -> Any:
    return lambda operation, written, count: ConnectionError(message) if operation in WRITES and written == key else None


# -- the storage fails before the first write ----------------------------------------------------------


def test_a_storage_that_refuses_a_write_keeps_the_previous_checkpoint_and_never_reruns_the_step(backend: Any) -> None:
    config = Config(storage=backend.storage, journal=backend.journal_url)
    flow = flow_of(config)
    flow.start()
    assert stored(backend.storage, flow) == ["v1-extract", "v1-transform", "v1-load"]
    key = backend.storage.key(task=flow.result_task()[1])
    backend.storage.faults.arm(refuse_writes_of(key))
    backend.storage.faults.calls.clear()
    VALUES.update(run="v2", executions=[])

    flow.start()

    tasks = flow.result_task()
    assert [task.status for task in tasks] == [COMPLETED, FAILED, NOT_STARTED]
    error = tasks[1].errors[-1]
    assert error.exception == "CheckpointNotSaved"
    assert error.message == (
        f"checkpoint of task '1-transform' could not be saved to key '{key}': ConnectionError: connection reset by peer"
    )
    assert tasks[1].current_context.storage is None  # a failed task has no result
    assert VALUES["executions"] == ["extract", "transform"]  # the step ran once; its commit alone was tried 3 times
    assert len([operation for operation, written in backend.storage.faults.calls if written == key]) == 3
    backend.storage.faults.disarm()
    assert stored(backend.storage, flow) == ["v2-extract", "v1-transform", "v1-load"]  # the previous one, intact
    journal = config.journal
    assert outcomes(journal)[3:] == [("0-extract", "committed")] + [("1-transform", "failed")] * 3
    assert set(verify(journal, backend.storage).values()) == {"backed"}


# -- a failure between the writes of a multi-key unit --------------------------------------------------


@pytest.fixture(params=["memory", "file", "sqlite", "sqlite-shared"])
def unit_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return make_backend(request.param, tmp_path)


def two_keys(storage: Any, journal: Journal, value: int) -> UnitOfWork:
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-pair", attempt=1)
    unit.put("wf-a", Context(storage=value))
    unit.put("wf-b", Context(storage=value))
    return unit


def values_of(storage: Any) -> list[Any]:
    return [None if (found := storage.read_checkpoint(key)) is None else found.context.storage for key in ("wf-a", "wf-b")]


def test_a_failure_between_the_writes_of_a_multi_key_unit_leaves_the_previous_checkpoints(unit_backend: Any) -> None:
    storage = unit_backend.storage
    journal = Journal(unit_backend.journal_url, encode=checkpoint_bytes)
    two_keys(storage, journal, 1).commit()
    storage.faults.arm(refuse_writes_of("wf-b", "network is unreachable"))

    with pytest.raises(CommitError) as raised:
        two_keys(storage, journal, 2).commit()

    transactional = unit_backend.name != "file"
    assert str(raised.value) == (
        "commit failed writing (transaction rolled back) 'wf-b'" if transactional
        else "commit failed writing 'wf-b' after writing ['wf-a']; all restored"
    )  # fmt: skip
    assert repr(raised.value.__cause__) == "ConnectionError('network is unreachable')"
    storage.faults.disarm()
    assert values_of(storage) == [1, 1]  # the previous pair, whole
    units = journal.units(oldest_first=True)
    assert [unit.outcome for unit in units] == ["committed", "failed"]
    assert units[1].error == f"CommitError: {raised.value}"
    assert verify(journal, storage) == {"wf-a": "backed", "wf-b": "backed"}
    journal.close()


def test_when_restoring_fails_too_the_mix_is_named_by_the_error_and_by_verify(tmp_path: Path) -> None:
    """Without a transaction (files; S3 and GCS alike) a multi-key unit is restored key by key: if the
    storage goes down for good after the first write, the restore fails too and the keys differ."""
    storage = faulty(StorageFile)(path=tmp_path / "out")
    journal = Journal(f"sqlite:///{tmp_path / 'j.db'}", encode=checkpoint_bytes)
    two_keys(storage, journal, 1).commit()
    down = {"since": None}

    def rule(operation: str, key: str | None, count: int) -> Exception | None:
        if operation in ("post", "delete") and down["since"] is not None:
            return ConnectionError("network is unreachable")
        if operation == "post" and key == "wf-a":
            down["since"] = key  # this write lands; every later one fails
        return None

    storage.faults.arm(rule)
    with pytest.raises(CommitError) as raised:
        two_keys(storage, journal, 2).commit()
    assert str(raised.value) == "commit failed writing 'wf-b' after writing ['wf-a']; not restored: ['wf-a']"
    assert raised.value.unrestored == ["wf-a"]
    storage.faults.disarm()
    assert values_of(storage) == [2, 1]
    failed = journal.units(oldest_first=True)[1]
    assert failed.outcome == "failed"
    findings = {finding.key: finding for finding in journal.verify(storage)}
    assert (findings["wf-a"].status, findings["wf-a"].unit_id) == ("unconfirmed", failed.id)
    assert findings["wf-b"].status == "backed"
    journal.close()


# -- the journal alone fails ---------------------------------------------------------------------------


@pytest.fixture
def first_run(tmp_path: Path) -> Any:
    """A file storage and a SQLite journal after one clean run (values v1), the journal closed."""
    storage = StorageFile(path=tmp_path / "out")
    path = tmp_path / "journal.db"
    config = Config(storage=storage, journal=f"sqlite:///{path}")
    flow = flow_of(config)
    flow.start()
    config.journal.close()
    VALUES.update(run="v2", executions=[])
    return SimpleNamespace(storage=storage, path=path, flow=flow)


def reader(path: Path) -> Journal:
    """Another connection to the journal: reads take no lock."""
    return Journal(f"sqlite:///{path}", encode=checkpoint_bytes)


@pytest.mark.parametrize("fault", ["read-only file", "locked by another connection"])
def test_a_journal_that_cannot_record_the_intent_fails_the_commit_with_nothing_written(
    first_run: Any, fault: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    holder = None
    if fault == "read-only file":  # (tests run as root, where file modes stop no write: SQLite's own read-only mode)
        journal = Journal(f"sqlite:///file:{first_run.path}?mode=ro&uri=true", encode=checkpoint_bytes)
        cause = "OperationalError: attempt to write a readonly database"
    else:
        monkeypatch.setattr("uow.sql_engine.time.sleep", lambda seconds: None)  # the pause between lock retries
        journal = Journal(f"sqlite:///{first_run.path}", encode=checkpoint_bytes, busy_timeout=0.05)
        holder = sqlite3.connect(first_run.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        cause = "another process holds its write lock"
    flow = flow_of(Config(storage=first_run.storage, journal=journal))
    try:
        with caplog.at_level(logging.WARNING, logger="uow"):
            flow.start()
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()

    tasks = flow.result_task()
    assert [task.status for task in tasks] == [FAILED, NOT_STARTED, NOT_STARTED]
    error = tasks[0].errors[-1]
    key = first_run.storage.key(task=tasks[0])
    assert error.exception == "CheckpointNotSaved"
    assert error.message.startswith(f"checkpoint of task '0-extract' could not be saved to key '{key}': JournalError: journal ")
    assert cause in error.message and "journal.db" in error.message
    assert "the journal could not record intents ahead" in caplog.text
    assert VALUES["executions"] == ["extract"]
    assert stored(first_run.storage, flow) == ["v1-extract", "v1-transform", "v1-load"]  # nothing written
    if fault == "read-only file":  # the run's end is still queued: closing says it cannot be written
        with pytest.raises(JournalError, match="readonly"):
            journal.close()
    else:
        journal.close()
    audit = reader(first_run.path)
    assert outcomes(audit) == [(task.task_id, "committed") for task in tasks]  # run 1's entries, nothing else
    assert set(verify(audit, first_run.storage).values()) == {"backed"}
    audit.close()


def test_a_journal_locked_after_the_storage_writes_leaves_them_unconfirmed_and_the_steps_done(
    first_run: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("uow.sql_engine.time.sleep", lambda seconds: None)
    journal = Journal(f"sqlite:///{first_run.path}", encode=checkpoint_bytes, busy_timeout=0.05)
    holder = sqlite3.connect(first_run.path, isolation_level=None)

    def lock_the_journal() -> None:  # after the run reserved its intents, before the outcomes are written
        holder.execute("BEGIN IMMEDIATE")

    VALUES["during"]["load"] = lock_the_journal
    config = Config(storage=first_run.storage, journal=journal)
    flow = flow_of(config)
    with caplog.at_level(logging.WARNING, logger="uow"):
        flow.start()  # no error reaches the caller: the checkpoints are saved

    assert [task.status for task in flow.result_task()] == [COMPLETED] * 3
    assert "the journal could not be flushed" in caplog.text and "another process holds its write lock" in caplog.text
    assert stored(first_run.storage, flow) == ["v2-extract", "v2-transform", "v2-load"]  # the new ones, whole
    audit = reader(first_run.path)
    assert sorted(outcomes(audit)[3:]) == [(task.task_id, "prepared") for task in flow.result_task()]
    assert set(verify(audit, first_run.storage).values()) == {"unconfirmed"}
    holder.execute("ROLLBACK")
    holder.close()
    journal.flush()  # the outcomes it kept are written once the lock is gone
    assert sorted(outcomes(audit)[3:]) == [(task.task_id, "committed") for task in flow.result_task()]
    assert set(verify(audit, first_run.storage).values()) == {"backed"}
    VALUES["during"].clear()
    flow.start(resume=True)
    assert VALUES["executions"] == ["extract", "transform", "load"]  # nothing ran again
    audit.close()
    journal.close()


# -- reads during resume -------------------------------------------------------------------------------


def test_a_read_that_fails_during_resume_stops_the_run_before_any_step(backend: Any) -> None:
    config = Config(storage=backend.storage, journal=backend.journal_url)
    flow = flow_of(config)
    flow.start()
    before = outcomes(config.journal)
    key = backend.storage.key(task=flow.result_task()[1])
    backend.storage.faults.arm(
        lambda operation, read, count: ConnectionError("connection reset by peer") if operation == "read_checkpoint" and read == key else None
    )
    VALUES.update(run="v2", executions=[])

    with pytest.raises(ConnectionError, match="^connection reset by peer$"):
        flow.start(resume=True)

    assert VALUES["executions"] == []
    backend.storage.faults.disarm()
    assert stored(backend.storage, flow) == ["v1-extract", "v1-transform", "v1-load"]
    assert outcomes(config.journal) == before  # no intent reserved, nothing recorded
