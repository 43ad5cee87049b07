"""TracerOpenTelemetry, MetricsOpenTelemetry and LogOpenTelemetry through Config and DotFlow, with the
SDK's in-memory exporters and readers (and a file exporter for child processes)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dotflow import Config, Context, DotFlow, action
from dotflow.core.exception import ModuleNotFound
from dotflow.providers import LogOpenTelemetry, MetricsOpenTelemetry, StorageFile, TracerOpenTelemetry
from tests.telemetry_files import SpanFile, read_rows

WF = str(uuid.UUID(int=99))


@action
def ok():
    return {"rows": [1, 2, 3]}


@action(retry=2, retry_delay=0)
def broken():
    raise RuntimeError("disk full")


def in_memory_tracer() -> tuple[TracerOpenTelemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracerOpenTelemetry(tracer_provider=provider), exporter


def test_spans_per_workflow_task_and_commit(tmp_path: Path) -> None:
    tracer, exporter = in_memory_tracer()
    flow = DotFlow(config=Config(storage=StorageFile(path=tmp_path), tracer=tracer), workflow_id=WF)
    flow.task.add(step=[ok, broken])
    flow.start(keep_going=True)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert sorted(spans) == sorted(["checkpoint.commit", f"workflow:{WF}", "task:0-ok", "task:1-broken"])
    workflow, task, failed, commit = (
        spans[f"workflow:{WF}"], spans["task:0-ok"], spans["task:1-broken"], spans["checkpoint.commit"]
    )  # fmt: skip
    assert dict(workflow.attributes) == {
        "dotflow.workflow_id": WF, "dotflow.mode": "sequential", "dotflow.tasks_count": "2",
        "dotflow.duration": workflow.attributes["dotflow.duration"],
    }  # fmt: skip
    assert workflow.status.status_code.name == "ERROR" and workflow.status.description == "workflow failed"
    assert task.parent.span_id == workflow.context.span_id == failed.parent.span_id
    assert task.context.trace_id == workflow.context.trace_id
    assert task.attributes["dotflow.task_id"] == "0-ok" and task.attributes["dotflow.task.status"] == "Completed"
    assert task.status.status_code.name == "OK"
    assert failed.attributes["dotflow.task.retry_count"] == 1
    assert [(e.name, dict(e.attributes)) for e in failed.events] == [
        ("exception", {"exception.type": "RuntimeError", "exception.message": "disk full"})
    ]
    assert commit.parent.span_id == task.context.span_id
    assert commit.attributes["dotflow.checkpoint.storage"] == "StorageFile"
    assert commit.attributes["dotflow.checkpoint.key"] == flow.task.config.storage.key(task=flow.result_task()[0])
    assert commit.attributes["dotflow.checkpoint.bytes"] > 20
    assert (commit.attributes["dotflow.checkpoint.outcome"], commit.attributes["dotflow.checkpoint.conflict"]) == (
        "committed", False
    )


def test_a_lost_commit_race_is_a_conflict_span(tmp_path: Path) -> None:
    storage = StorageFile(path=tmp_path)
    tracer, exporter = in_memory_tracer()

    keys: list[str] = []

    @action
    def racer():
        storage.post(key=keys[0], context=Context(storage="theirs"))  # another run commits first
        return "mine"

    flow = DotFlow(config=Config(storage=storage, tracer=tracer), workflow_id=WF)
    flow.task.add(step=racer)
    keys.append(storage.key(task=flow.task.queue[0]))
    flow.start(resume=True)
    assert flow.result_storage() == ["theirs"]
    commit = next(span for span in exporter.get_finished_spans() if span.name == "checkpoint.commit")
    assert commit.attributes["dotflow.checkpoint.outcome"] == "conflict"
    assert commit.attributes["dotflow.checkpoint.conflict"] is True


def test_memory_storage_commits_are_traced_without_a_size_for_values_it_cannot_encode() -> None:
    tracer, exporter = in_memory_tracer()

    @action
    def opaque():
        return object()

    flow = DotFlow(config=Config(tracer=tracer))
    flow.task.add(step=opaque)
    flow.start()
    commit = next(span for span in exporter.get_finished_spans() if span.name == "checkpoint.commit")
    assert "dotflow.checkpoint.bytes" not in commit.attributes
    assert commit.attributes["dotflow.checkpoint.outcome"] == "committed"


def test_the_default_construction_sets_the_global_provider() -> None:
    from opentelemetry import trace

    tracer = TracerOpenTelemetry(service_name="my-pipeline")
    assert tracer.tracer_provider.resource.attributes["service.name"] == "my-pipeline"
    assert isinstance(trace.get_tracer_provider(), TracerProvider)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_the_trace_continues_in_child_processes(tmp_path: Path, mode: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanFile(tmp_path / "spans.jsonl")))
    flow = DotFlow(
        config=Config(storage=StorageFile(path=tmp_path / "out"), tracer=TracerOpenTelemetry(tracer_provider=provider)),
        workflow_id=WF,
    )
    flow.task.add(step=ok, group_name="a").add(step=ok, group_name="b")
    flow.start(mode=mode)
    rows = {row["name"]: row for row in read_rows(tmp_path / "spans.jsonl") if row["name"] != "checkpoint.commit"}
    commits = [row for row in read_rows(tmp_path / "spans.jsonl") if row["name"] == "checkpoint.commit"]
    workflow = rows[f"workflow:{WF}"]
    for name in ("task:0-ok", "task:1-ok"):
        assert rows[name]["trace_id"] == workflow["trace_id"]
        assert rows[name]["parent_id"] == workflow["span_id"]
    assert sorted(c["parent_id"] for c in commits) == sorted(rows[n]["span_id"] for n in ("task:0-ok", "task:1-ok"))
    assert all(c["trace_id"] == workflow["trace_id"] for c in commits)


def metric_points(reader: InMemoryMetricReader) -> dict[tuple[str, tuple[Any, ...]], Any]:
    points: dict[tuple[str, tuple[Any, ...]], Any] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted(point.attributes.items())))
                    points[key] = getattr(point, "value", None) if hasattr(point, "value") else point.count
    return points


def test_metrics_names_and_counts() -> None:
    reader = InMemoryMetricReader()
    metrics = MetricsOpenTelemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    flow = DotFlow(config=Config(metrics=metrics))
    flow.task.add(step=[ok, broken])
    flow.start(keep_going=True)
    points = metric_points(reader)
    assert points[("dotflow_workflow_total", (("status", "started"),))] == 1
    assert points[("dotflow_workflow_total", (("status", "failed"),))] == 1
    assert points[("dotflow_workflow_duration_seconds", (("status", "failed"),))] == 1
    assert points[("dotflow_task_total", (("status", "completed"),))] == 1
    assert points[("dotflow_task_total", (("status", "failed"),))] == 1
    assert points[("dotflow_task_duration_seconds", (("status", "completed"),))] == 1
    assert points[("dotflow_task_retry_total", ())] == 1


@pytest.mark.slow
def test_parallel_mode_counts_the_workflow_in_the_parent() -> None:
    reader = InMemoryMetricReader()
    metrics = MetricsOpenTelemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    flow = DotFlow(config=Config(metrics=metrics))
    flow.task.add(step=[ok, ok])
    flow.start(mode="parallel")
    points = metric_points(reader)  # the parent's reader: task metrics were recorded (and flushed) in the children
    assert points[("dotflow_workflow_total", (("status", "completed"),))] == 1
    assert ("dotflow_task_total", (("status", "completed"),)) not in points
    assert [task.status for task in flow.result_task()] == ["Completed", "Completed"]


def test_log_records_per_task_event() -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    log = LogOpenTelemetry(logger_provider=provider)
    flow = DotFlow(config=Config(log=log), workflow_id=WF)
    flow.task.add(step=[ok, broken])
    flow.start(keep_going=True)
    records = [entry.log_record for entry in exporter.get_finished_logs()]
    statuses = [(r.severity_text, r.attributes["dotflow.task_id"], r.attributes["dotflow.task.status"]) for r in records]
    assert ("INFO", "0-ok", "Completed") in statuses
    assert ("WARNING", "1-broken", "Retry") in statuses
    assert ("ERROR", "1-broken", "Failed") in statuses
    failed = next(r for r in records if r.severity_text == "ERROR")
    assert failed.body.startswith(f"ID {WF} - 1-broken - Failed") and "RuntimeError: disk full" in failed.body
    assert all(r.attributes["dotflow.workflow_id"] == WF for r in records)


def test_log_json_format_and_file_output(tmp_path: Path) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    log = LogOpenTelemetry(logger_provider=provider, format="json", output="file", path=tmp_path / "flow.log", level="ERROR")
    flow = DotFlow(config=Config(log=log))
    flow.task.add(step=[ok, broken])
    flow.start(keep_going=True)
    bodies = [entry.log_record.body for entry in exporter.get_finished_logs()]
    assert len(bodies) == 1 and '"status":"Failed"' in bodies[0]
    assert (tmp_path / "flow.log").read_text().count("\n") == 1


@pytest.mark.parametrize(
    "make",
    [lambda: TracerOpenTelemetry(), lambda: MetricsOpenTelemetry(), lambda: LogOpenTelemetry()],
)
def test_without_the_sdk_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, make: Any) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    with pytest.raises(ModuleNotFound, match=r"dotflow-uow\[otel\]"):
        make()


def test_bad_log_options() -> None:
    with pytest.raises(ValueError, match="level"):
        LogOpenTelemetry(logger_provider=LoggerProvider(), level="LOUD")
