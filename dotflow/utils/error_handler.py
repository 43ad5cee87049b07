"""dotflow 1.0.1's error helpers: an exception's traceback, or its message, as text."""

from __future__ import annotations

import traceback

__all__ = ["message_error", "traceback_error"]


def traceback_error(error: BaseException) -> str:
    """The formatted traceback of `error` (its chain included), without the final newline."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()


def message_error(error: BaseException) -> str:
    """`str(error)`."""
    return str(error)
