"""`TCPClient` and `TCPServer`: dotflow 1.0.1's interfaces of a TCP sender and an asyncio receiver."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

__all__ = ["TCPClient", "TCPServer"]


class TCPClient(ABC):
    def __init__(self, url: str) -> None:
        self.url = url
        self.context: Any = None

    @abstractmethod
    def sender(self, content: dict[str, Any]) -> None:
        """Send `content`."""


class TCPServer(ABC):
    def __init__(self, url: str, handler: Callable[..., Any]) -> None:
        self.url = url
        self.handler = handler
        self.context: Any = None

    @abstractmethod
    async def receiver(self) -> None:
        """Receive and hand each message to `self.handler`."""

    @abstractmethod
    async def run(self) -> None:
        """Serve until stopped."""
