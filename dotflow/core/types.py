"""String-constant types of the public API (plain classes, not Enums, as in dotflow 1.0.1)."""

from __future__ import annotations

__all__ = [
    "TypeExecution",
    "TypeInputChange",
    "TypeOverlap",
    "TypeStatus",
    "TypeStorage",
    "VALID_POLICIES",
    "WorkflowStatus",
]


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
    def get_symbol(cls, value: str) -> str:
        return cls._SYMBOLS.get(value, "")


class WorkflowStatus:
    NEW = "New"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    FAILED = "Failed"


class TypeExecution:
    SEQUENTIAL = "sequential"
    BACKGROUND = "background"
    PARALLEL = "parallel"


class TypeInputChange:
    REUSE = "reuse"
    RESET = "reset"
    RAISE = "raise"


VALID_POLICIES = (TypeInputChange.REUSE, TypeInputChange.RESET, TypeInputChange.RAISE)


class TypeOverlap:
    SKIP = "skip"
    QUEUE = "queue"
    PARALLEL = "parallel"


class TypeStorage:
    DEFAULT = "default"
    FILE = "file"
    S3 = "s3"
    GCS = "gcs"
