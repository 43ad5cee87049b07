"""TracerSentry and LogSentry through Config and DotFlow, with a transport that captures what is sent."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk

from dotflow import Config, DotFlow, action
from dotflow.core.exception import ModuleNotFound
from dotflow.providers import LogSentry, TracerSentry
from tests.telemetry_files import SentryFile, read_rows

DSN = "http://publickey-secret@127.0.0.1:9/1"
WF = str(uuid.UUID(int=5))


@action
def ok():
    return 1


@action(retry=2, retry_delay=0)
def broken():
    raise RuntimeError("disk full")


@pytest.fixture
def captured(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sentry.jsonl"
    yield path
    sentry_sdk.flush()
    sentry_sdk.init(release="test", default_integrations=False)  # no DSN: a disabled client from now on


def options(path: Path) -> dict[str, Any]:
    return {"transport": SentryFile(path), "default_integrations": False, "release": "test"}  # (no git lookup)


def test_log_sentry_captures_failures_with_breadcrumbs(captured: Path) -> None:
    log = LogSentry(dsn=DSN, environment="test", **options(captured))
    flow = DotFlow(config=Config(log=log), workflow_id=WF)
    flow.task.add(step=[ok, broken])
    flow.start(keep_going=True)
    sentry_sdk.flush()
    events = [row["payload"] for row in read_rows(captured) if row["type"] == "event"]
    assert len(events) == 1
    event = events[0]
    assert event["message"] == "Task 1-broken failed: disk full" and event["level"] == "error"
    assert event["environment"] == "test"
    extra = event["extra"]
    assert (extra["workflow_id"], extra["task_id"], extra["exception"], extra["attempt"]) == (WF, "1-broken", "RuntimeError", None)
    assert "RuntimeError: disk full" in extra["traceback"]
    crumbs = [(c["message"], c["level"]) for c in event["breadcrumbs"]["values"] if c["category"] == "dotflow"]
    assert ("task:0-ok Completed", "info") in crumbs and ("task:1-broken Retry", "warning") in crumbs
    assert "secret" not in repr(log)


def test_tracer_sentry_sends_a_transaction_with_task_spans(captured: Path) -> None:
    tracer = TracerSentry(dsn=DSN, **options(captured))
    flow = DotFlow(config=Config(tracer=tracer), workflow_id=WF)
    flow.task.add(step=[ok, broken])
    flow.start(keep_going=True)
    sentry_sdk.flush()
    transactions = [row["payload"] for row in read_rows(captured) if row["type"] == "transaction"]
    assert len(transactions) == 1
    transaction = transactions[0]
    assert transaction["transaction"] == f"workflow:{WF}"
    assert transaction["contexts"]["trace"]["op"] == "workflow"
    assert transaction["contexts"]["trace"]["status"] == "internal_error"
    assert transaction["tags"]["dotflow.mode"] == "sequential" and transaction["tags"]["dotflow.tasks_count"] == "2"
    spans = {span["description"]: span for span in transaction["spans"]}
    assert set(spans) == {"task:0-ok", "task:1-broken"}
    assert spans["task:0-ok"]["tags"]["dotflow.task.status"] == "Completed" and spans["task:0-ok"]["status"] == "ok"
    assert spans["task:1-broken"]["status"] == "internal_error"
    assert spans["task:1-broken"]["data"]["dotflow.task.exception"] == "RuntimeError"
    assert spans["task:1-broken"]["data"]["dotflow.task.retry_count"] == 1


@pytest.mark.slow
def test_parallel_mode_sends_the_transaction_and_the_childrens_events(captured: Path) -> None:
    log = LogSentry(dsn=DSN, traces_sample_rate=1.0, **options(captured))
    tracer = TracerSentry()  # uses the SDK LogSentry initialised
    flow = DotFlow(config=Config(log=log, tracer=tracer), workflow_id=WF)
    flow.task.add(step=[ok, broken])
    flow.start(mode="parallel")
    sentry_sdk.flush()
    rows = read_rows(captured)
    events = [row["payload"]["message"] for row in rows if row["type"] == "event"]
    assert events == ["Task 1-broken failed: disk full"]  # sent from the child, flushed before it exited
    transactions = [row["payload"] for row in rows if row["type"] == "transaction"]
    assert [t["transaction"] for t in transactions] == [f"workflow:{WF}"]
    assert transactions[0]["contexts"]["trace"]["status"] == "internal_error"


@pytest.mark.parametrize("make", [lambda: TracerSentry(), lambda: LogSentry(dsn=DSN)])
def test_without_the_sdk_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    with pytest.raises(ModuleNotFound, match=r"dotflow-uow\[sentry\]"):
        make()
