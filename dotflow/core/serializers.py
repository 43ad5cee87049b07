"""The JSON-friendly result shapes of `Task.result()` and `TaskBuilder.result()` (as in 1.0.1).

A context field is null when its storage is None; a list/tuple storage becomes an object keyed by
each Context item's task_id (other items by "raw:<i>"); anything else becomes its JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from dotflow.core.context import Context

__all__ = ["SerializerTask", "SerializerWorkflow"]

CONTEXT_FIELDS = ("initial_context", "current_context", "previous_context")
SIZE_EXCEEDED = {"message": "Context size exceeded"}


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return json.dumps(str(value))


def serialize_context(context: Any) -> Any:
    if not isinstance(context, Context) or context.storage is None:
        return None
    storage = context.storage
    if isinstance(storage, (list, tuple)):
        out: dict[str, Any] = {}
        for index, item in enumerate(storage):
            if isinstance(item, Context):
                key = item.task_id if item.task_id is not None else f"ctx:{index}"
                out[key] = serialize_context(item)
            else:
                out[f"raw:{index}"] = _json_text(item)
        return out
    return _json_text(storage)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class SerializerTask:
    def __init__(self, task: Any, max: int | None = None) -> None:
        self.task = task
        self.max = max

    def model_dump(self) -> dict[str, Any]:
        task = self.task
        errors = [error.as_dict() for error in task.errors]
        data = {
            "task_id": task.task_id,
            "workflow_id": str(task.workflow_id) if task.workflow_id is not None else None,
            "status": task.status,
            "duration": task.duration,
            "initial_context": serialize_context(task.initial_context),
            "current_context": serialize_context(task.current_context),
            "previous_context": serialize_context(task.previous_context),
            "group_name": task.group_name,
            "retry_count": task.retry_count,
            "created_at": _iso(task.created_at),
            "started_at": _iso(task.started_at),
            "finished_at": _iso(task.finished_at),
            "errors": errors,
            "id": task.task_id,
            "error": errors[-1] if errors else None,
        }
        return self._fit(data, self.max) if self.max is not None else data

    def model_dump_json(self) -> str:
        return json.dumps(self.model_dump())

    @staticmethod
    def _fit(data: dict[str, Any], limit: int) -> dict[str, Any]:
        """Shrink `data` until its JSON is at most `limit` characters, dropping the biggest parts first."""

        def size() -> int:
            return len(json.dumps(data))

        by_size = sorted(CONTEXT_FIELDS, key=lambda name: len(json.dumps(data[name])), reverse=True)
        for name in by_size:
            if size() <= limit:
                return data
            if data[name] is not None:
                data[name] = dict(SIZE_EXCEEDED)
        if size() > limit:
            data["errors"] = []
            data["error"] = None
        if size() > limit:
            for name in CONTEXT_FIELDS:
                data[name] = None
        return data


class SerializerWorkflow:
    def __init__(self, builder: Any) -> None:
        self.builder = builder

    def model_dump(self) -> dict[str, Any]:
        workflow_id = self.builder.workflow_id
        workflow_id = str(workflow_id) if workflow_id is not None else None
        return {
            "workflow_id": workflow_id,
            "workflow_name": self.builder.workflow_name,
            "tasks": [SerializerTask(task).model_dump() for task in self.builder.queue],
            "id": workflow_id,
            "name": self.builder.workflow_name,
        }

    def model_dump_json(self) -> str:
        return json.dumps(self.model_dump())
