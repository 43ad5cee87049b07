"""`basic_callback` (the default task and workflow callback) and `basic_function`: both do nothing."""

from __future__ import annotations

from typing import Any

__all__ = ["basic_callback", "basic_function"]


def basic_function(*args: Any, **kwargs: Any) -> None:
    """Accept any arguments and do nothing."""


def basic_callback(*args: Any, **kwargs: Any) -> None:
    """The default task and workflow callback: accepts any arguments and does nothing."""
