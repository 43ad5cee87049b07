"""`WorkflowStatus`: the status of a workflow, as reported to the server provider."""

from __future__ import annotations

__all__ = ["WorkflowStatus"]


class WorkflowStatus:
    NEW = "New"
    IN_PROGRESS = "In progress"
    COMPLETED = "Completed"
    FAILED = "Failed"
