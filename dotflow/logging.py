"""`logger`: dotflow 1.0.1's module-level logger, named "dotflow", at INFO, printing to standard error.

Importing this module adds its one console handler to the "dotflow" logger (once, however often it
is imported), as 1.0.1 did. dotflow itself never imports it, so a program that configures logging its
own way gets no handler it did not ask for: the engine and the providers log to
`logging.getLogger("dotflow")`, which reaches your handlers through the root logger.
"""

from __future__ import annotations

import logging

from dotflow.settings import Settings

__all__ = ["logger"]

logger = logging.getLogger(Settings.LOG_PROFILE)
logger.setLevel(logging.INFO)

if not any(getattr(handler, "_dotflow_console", False) for handler in logger.handlers):
    _console = logging.StreamHandler()
    _console.setLevel(logging.INFO)
    _console.setFormatter(logging.Formatter(Settings.LOG_FORMAT))
    _console._dotflow_console = True  # type: ignore[attr-defined]
    logger.addHandler(_console)
