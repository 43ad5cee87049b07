"""`TypeExecution`: execution modes (as in 1.0.1, "sequential_group" has no constant)."""

from __future__ import annotations

__all__ = ["TypeExecution"]


class TypeExecution:
    SEQUENTIAL = "sequential"
    BACKGROUND = "background"
    PARALLEL = "parallel"
