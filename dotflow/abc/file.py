"""`FileClient`: dotflow 1.0.1's interface of a file client (class methods `write` and `read`)."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["FileClient"]


class FileClient(ABC):
    @classmethod
    @abstractmethod
    def write(cls, path: str, content: str, mode: str, encoding: str) -> None:
        """Write `content` to `path`."""

    @classmethod
    @abstractmethod
    def read(cls, path: str) -> str:
        """The content of `path`."""
