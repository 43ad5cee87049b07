"""OpenTelemetry exporters and a Sentry transport that append what they get to a JSON-lines file, so a
test sees what child processes exported too (an in-memory exporter's copy in a child is lost)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from sentry_sdk.transport import Transport


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as file:  # one write per batch: lines from processes never interleave
        file.write("".join(json.dumps(row, default=str) + "\n" for row in rows))


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class SpanFile(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rows = []
        for span in spans:
            context = span.get_span_context()
            rows.append({
                "name": span.name,
                "trace_id": context.trace_id,
                "span_id": context.span_id,
                "parent_id": span.parent.span_id if span.parent is not None else None,
                "attributes": dict(span.attributes or {}),
                "status": span.status.status_code.name,
            })  # fmt: skip
        _append(self.path, rows)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class SentryFile(Transport):
    """Captures every envelope item (events, transactions) in the file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def capture_envelope(self, envelope: Any) -> None:
        rows = []
        for item in envelope.items:
            payload = item.payload.json if item.payload.json is not None else {}
            rows.append({"type": item.type, "payload": payload})
        _append(self.path, rows)
