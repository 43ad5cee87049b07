"""`TypeStatus`: the status of a task."""

from __future__ import annotations

__all__ = ["TypeStatus"]


class TypeStatus:
    NOT_STARTED = "Not started"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    PAUSED = "Paused"
    RETRY = "Retry"
    FAILED = "Failed"

    _SYMBOLS = {
        NOT_STARTED: "⚪",
        IN_PROGRESS: "🔵",
        COMPLETED: "✅",
        PAUSED: "◼️",
        RETRY: "❗",
        FAILED: "❌",
    }

    @classmethod
    def get_symbol(cls, value: str) -> str | None:
        """The emoji of a status; None for a value that is not a status (as in 1.0.1)."""
        return cls._SYMBOLS.get(value)
