"""`LogOpenTelemetry`: task events as OpenTelemetry log records (extra `otel`).

`LogOpenTelemetry(service_name="dotflow", level="INFO", output="console", path=".output/flow.log",
format="simple")` as in dotflow 1.0.1: it makes an SDK `LoggerProvider` with the resource
`service.name`, sets it as the global one, and with `output` "console" or "both" prints each record
(the SDK's console exporter); "file" or "both" also appends the usual line to `path`. Pass
`logger_provider=` one with your own processors and exporters instead.

Each task event is one record on the logger "dotflow": body = the line `LogDefault` would write
(`format` "simple" or "json"), severity from the event (INFO, WARNING on a retry, ERROR on a failure),
attributes `dotflow.workflow_id`, `dotflow.task_id` and `dotflow.task.status`; inside a task's span
the record carries that span's trace context. Records are sent through the Logs API directly (the
SDK's `LoggingHandler` is deprecated).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dotflow.abc.log import LEVELS, Log
from dotflow.providers.log_default import FORMATS, LINE_FORMAT, OUTPUTS, _AppendingFileHandler
from dotflow.providers.otel_support import require_otel
from dotflow.settings import Settings

__all__ = ["LogOpenTelemetry"]


class LogOpenTelemetry(Log):
    def __init__(
        self,
        service_name: str = "dotflow",
        level: str = "INFO",
        output: str = "console",
        path: str | Path | None = None,
        format: str = "simple",
        *,
        logger_provider: Any = None,
    ) -> None:
        require_otel()
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter, SimpleLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise ValueError(f"LogOpenTelemetry level must be one of {', '.join(LEVELS)}, not {level!r}")
        if output not in OUTPUTS:
            raise ValueError(f"LogOpenTelemetry output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if format not in FORMATS:
            raise ValueError(f"LogOpenTelemetry format must be one of {', '.join(FORMATS)}, not {format!r}")
        if logger_provider is None:
            logger_provider = LoggerProvider(resource=Resource.create({"service.name": service_name}))
            set_logger_provider(logger_provider)
            if output in ("console", "both"):
                logger_provider.add_log_record_processor(SimpleLogRecordProcessor(ConsoleLogRecordExporter()))
        self.service_name = service_name
        self.logger_provider = logger_provider
        self.output = output
        self.path = Path(path) if path is not None else Settings.LOG_PATH
        self._level = LEVELS[level.upper()]
        self._format = format
        self._logger = logging.Logger("dotflow", self._level)
        self._logger.propagate = False
        self._logger.addHandler(_OtelHandler(logger_provider.get_logger("dotflow")))
        if output in ("file", "both"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file_handler = _AppendingFileHandler(self.path)
            file_handler.setFormatter(logging.Formatter(LINE_FORMAT))
            self._logger.addHandler(file_handler)

    def __repr__(self) -> str:
        return f"LogOpenTelemetry(service_name={self.service_name!r}, output={self.output!r})"

    def _log(self, level: int, **kwargs: Any) -> None:
        task = kwargs.get("task")
        extra = {} if task is None else {
            "dotflow.workflow_id": str(task.workflow_id),
            "dotflow.task_id": str(task.task_id),
            "dotflow.task.status": str(task.status),
        }  # fmt: skip
        if level < self._level:
            return
        message = self._format_json(level, **kwargs) if self._format == "json" else self._format_text(level, **kwargs)
        self._logger.log(level, message, extra={"dotflow_attributes": extra})

    def flush(self, timeout: float | None = None) -> bool:
        millis = 30_000 if timeout is None else int(timeout * 1000)
        return bool(self.logger_provider.force_flush(millis))


class _OtelHandler(logging.Handler):
    """Sends each stdlib record to an OpenTelemetry logger."""

    def __init__(self, otel_logger: Any) -> None:
        super().__init__()
        self._otel = otel_logger

    def emit(self, record: logging.LogRecord) -> None:
        from opentelemetry._logs import SeverityNumber

        try:
            severity = {
                logging.DEBUG: SeverityNumber.DEBUG,
                logging.INFO: SeverityNumber.INFO,
                logging.WARNING: SeverityNumber.WARN,
                logging.ERROR: SeverityNumber.ERROR,
            }.get(record.levelno, SeverityNumber.UNSPECIFIED)
            self._otel.emit(
                timestamp=int(record.created * 1e9),
                severity_number=severity,
                severity_text=record.levelname,
                body=record.getMessage(),
                attributes=getattr(record, "dotflow_attributes", None) or None,
            )
        except Exception:
            self.handleError(record)
