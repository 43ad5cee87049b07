"""`Module`: import an object from a "package.module:attr" or "package.module.attr" string."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from dotflow.core.exception import ImportModuleError

__all__ = ["Module"]


class Module:
    def __new__(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return cls._import(value)

    @staticmethod
    def _import(path: str) -> Any:
        if ":" in path:
            module_name, _, attr = path.partition(":")
        else:
            module_name, _, attr = path.rpartition(".")
        if not module_name or not attr:
            raise ImportModuleError(module=path)
        try:
            obj: Any = import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ImportModuleError(module=path) from exc
        return obj
