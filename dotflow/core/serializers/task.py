"""`SerializerTask`: a task's state as a pydantic model (what `Task.schema()` returns, as in 1.0.1).

`model_dump()` gives Python values (`workflow_id` a UUID, times as datetimes); `model_dump_json()`
and `Task.result()` give JSON. A context field is None when its storage is None; a list/tuple
storage becomes a dict keyed by each Context item's task_id ("ctx:<i>" if it has none; other items
"raw:<i>" with their JSON text); any other storage becomes its JSON text (`str()` if not JSON).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Optional, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from dotflow.core.context import Context

__all__ = ["SerializerTask", "SerializerTaskError", "serialize_context", "workflow_id_value"]

CONTEXT_FIELDS = ("current_context", "previous_context", "initial_context")
SIZE_EXCEEDED = {"message": "Context size exceeded"}


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(value)


def serialize_context(context: Any) -> Any:
    """The reported form of a Context (see the module docstring); None for anything else."""
    if not isinstance(context, Context) or context.storage is None:
        return None
    storage = context.storage
    if not isinstance(storage, (list, tuple)):
        return _json_text(storage)
    out: dict[str, Any] = {}
    for index, item in enumerate(storage):
        if isinstance(item, Context):
            key = item.task_id if item.task_id is not None else f"ctx:{index}"
            out[key] = serialize_context(item)
        else:
            out[f"raw:{index}"] = _json_text(item)
    return out


def workflow_id_value(value: Any) -> Any:
    """A workflow id as reported: a UUID when it is one (or a UUID string), else the name as given."""
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            return value
    return value


class SerializerTaskError(BaseModel):
    attempt: Optional[int] = Field(default=None)
    exception: str = Field(default="")
    traceback: str = Field(default="")
    message: str = Field(default="")


class SerializerTask(BaseModel):
    """Fields carry 1.0.1's aliases (`_status`, `_errors`, ...: the Task attributes they came from)."""

    model_config = ConfigDict(title="task")

    task_id: Optional[str] = Field(default=None)
    workflow_id: Optional[Union[UUID, str]] = Field(default=None)
    status: Optional[str] = Field(default=None, alias="_status")
    duration: Optional[float] = Field(default=None, alias="_duration")
    initial_context: Any = Field(default=None, alias="_initial_context")
    current_context: Any = Field(default=None, alias="_current_context")
    previous_context: Any = Field(default=None, alias="_previous_context")
    group_name: Optional[str] = Field(default=None)
    retry_count: int = Field(default=0)
    created_at: Optional[datetime] = Field(default=None)
    started_at: Optional[datetime] = Field(default=None)
    finished_at: Optional[datetime] = Field(default=None)
    errors: list[SerializerTaskError] = Field(default_factory=list, alias="_errors")
    max: Optional[int] = Field(default=None, exclude=True)

    @classmethod
    def from_task(cls, task: Any, max: Optional[int] = None) -> SerializerTask:
        return cls.model_validate(
            {
                "task_id": task.task_id,
                "workflow_id": task.workflow_id,
                "_status": task.status,
                "_duration": task.duration,
                "_initial_context": task.initial_context,
                "_current_context": task.current_context,
                "_previous_context": task.previous_context,
                "group_name": task.group_name,
                "retry_count": task.retry_count,
                "created_at": task.created_at,
                "started_at": task.started_at,
                "finished_at": task.finished_at,
                "_errors": task.errors,
                "max": max,
            }
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> Optional[str]:
        return self.task_id

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error(self) -> Optional[SerializerTaskError]:
        """The last error, if any."""
        return self.errors[-1] if self.errors else None

    @field_validator("workflow_id", mode="before")
    @classmethod
    def _workflow_id(cls, value: Any) -> Any:
        return workflow_id_value(value)

    @field_validator("initial_context", "current_context", "previous_context", mode="before")
    @classmethod
    def _context(cls, value: Any) -> Any:
        return serialize_context(value)

    @field_validator("errors", mode="before")
    @classmethod
    def _errors(cls, value: Any) -> Any:
        if not value:
            return []
        return [item if isinstance(item, (dict, SerializerTaskError)) else _error_fields(item) for item in value]

    def model_dump_json(self, **kwargs: Any) -> str:
        """JSON text (`json.dumps` of `model_dump(mode="json")`, as in 1.0.1). With `max` set it is shrunk
        to at most `max` characters where possible: the largest context fields first become
        {"message": "Context size exceeded"}, then the errors are dropped, then the context fields
        become null."""
        indent = kwargs.pop("indent", None)
        data = self.model_dump(mode="json", **kwargs)

        def text() -> str:
            return json.dumps(data, indent=indent)

        if self.max is None or len(text()) <= self.max:
            return text()
        present = [name for name in CONTEXT_FIELDS if data.get(name) is not None]
        for name in sorted(present, key=lambda name: len(json.dumps(data[name])), reverse=True):
            data[name] = dict(SIZE_EXCEEDED)
            if len(text()) <= self.max:
                return text()
        data["errors"] = []
        data["error"] = None
        if len(text()) > self.max:
            for name in CONTEXT_FIELDS:
                data[name] = None
        return text()


def _error_fields(error: Any) -> dict[str, Any]:
    return {name: getattr(error, name, None) for name in ("attempt", "exception", "traceback", "message")}
