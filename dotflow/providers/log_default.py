"""`LogDefault`: one line per task status change, on the console, in a file, or both (as in 1.0.1).

`LogDefault(level="INFO", output="console", path=".output/flow.log", format="simple")`:

- level: DEBUG, INFO, WARNING or ERROR (case-insensitive); lower events are dropped.
- output: "console" (standard error), "file" (appended to `path`, its folder created) or "both".
- path: the log file; the default is `flow.log` in DOTFLOW_OUTPUT_PATH (".output").
- format: "simple" or "json" (see `dotflow.abc.log`).

Each line reads `<time> - <LEVEL> [dotflow]: <message>`. Each instance has its own logger, which
does not propagate to the root logger, so a logging set-up elsewhere neither duplicates nor hides
these lines. To route task events through your own logging configuration instead, write a `Log`
subclass that sets `self._logger = logging.getLogger(...)`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dotflow.abc.log import LEVELS, Log
from dotflow.settings import Settings

__all__ = ["LogDefault"]

LINE_FORMAT = "%(asctime)s - %(levelname)s [%(name)s]: %(message)s"
OUTPUTS = ("console", "file", "both")
FORMATS = ("simple", "json")


class LogDefault(Log):
    def __init__(
        self,
        *args: Any,
        level: str = "INFO",
        output: str = "console",
        path: str | Path | None = None,
        format: str = "simple",
        **kwargs: Any,
    ) -> None:
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise ValueError(f"LogDefault level must be one of {', '.join(LEVELS)}, not {level!r}")
        if output not in OUTPUTS:
            raise ValueError(f"LogDefault output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        if format not in FORMATS:
            raise ValueError(f"LogDefault format must be one of {', '.join(FORMATS)}, not {format!r}")
        self._level = LEVELS[level.upper()]
        self._format = format
        self.output = output
        self.path = Path(path) if path is not None else Settings.START_PATH / "flow.log"
        # Not registered with logging.getLogger: it lives and dies with this provider.
        self._logger = logging.Logger("dotflow", self._level)
        self._logger.propagate = False
        formatter = logging.Formatter(LINE_FORMAT)
        handlers: list[logging.Handler] = []
        if output in ("file", "both"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(_AppendingFileHandler(self.path))
        if output in ("console", "both"):
            handlers.append(logging.StreamHandler())
        for handler in handlers:
            handler.setFormatter(formatter)
            self._logger.addHandler(handler)

    # Kept readable for code that inspected 1.0.1's provider.
    @property
    def level(self) -> int:
        return self._level

    @property
    def format(self) -> str:
        return self._format


class _AppendingFileHandler(logging.Handler):
    """Appends each line to the file, opening and closing it every time: no file stays open between
    events (a provider is never told when the workflow is done with it, so it could not close one)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(line + "\n")
        except Exception:
            self.handleError(record)
