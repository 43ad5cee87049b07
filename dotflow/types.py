from dotflow.core.types import TypeStatus, TypeStorage

__all__ = ["TypeStatus", "TypeStorage"]
