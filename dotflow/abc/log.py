from __future__ import annotations

from abc import ABC
from typing import Any

__all__ = ["Log"]


class Log(ABC):
    """Told about task status changes: info for progress, warning for retries, error for failures."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def info(self, **kwargs: Any) -> None:
        pass

    def warning(self, **kwargs: Any) -> None:
        pass

    def error(self, **kwargs: Any) -> None:
        pass

    def debug(self, **kwargs: Any) -> None:
        pass
