"""`TypeOverlap`: what a scheduler does when a run is due while the previous one still runs."""

from __future__ import annotations

__all__ = ["TypeOverlap"]


class TypeOverlap:
    SKIP = "skip"
    QUEUE = "queue"
    PARALLEL = "parallel"
