"""Pydantic models of a task and a workflow (`Task.schema()`, `TaskBuilder.schema()`), as in 1.0.1.

The models live in `dotflow.core.serializers.task`, `.workflow` and `.transport`. pydantic is
imported only when one of them is first used, so `import dotflow` does not pay for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["SerializerTask", "SerializerTaskError", "SerializerTransport", "SerializerWorkflow"]

_HOME = {
    "SerializerTask": "dotflow.core.serializers.task",
    "SerializerTaskError": "dotflow.core.serializers.task",
    "SerializerWorkflow": "dotflow.core.serializers.workflow",
    "SerializerTransport": "dotflow.core.serializers.transport",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'dotflow.core.serializers' has no attribute {name!r}")
