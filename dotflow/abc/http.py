"""`HTTPRequest`: dotflow 1.0.1's interface of an HTTP client bound to one URL."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

__all__ = ["HTTPRequest"]


class HTTPRequest(ABC):
    def __init__(self, url: str, context: Callable[..., Any]) -> None:
        self.url = url
        self.context = context

    @abstractmethod
    def request(self, method: str, body: dict[str, Any], params: dict[str, Any], headers: dict[str, Any]) -> None:
        """Send one request to `self.url`."""
