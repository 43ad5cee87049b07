"""`isolated_copy`: the copy the memory storage keeps, so later changes to a value never reach it.

Everything `copy.deepcopy` can copy is deep-copied (plain data by hand, see `dotflow.values.plain_copy`,
where a sub-container referenced twice becomes two copies, as in a JSON round trip). What it cannot copy (a generator, a lock, an
open file, a socket, a memoryview, a database connection, or an object holding one) is kept as the
same object, since dotflow 1.0.1 hands any value on; the lists, tuples, dicts, sets and Contexts
around such an object are still copied, so only that object itself is shared. A value nested too
deeply to copy is kept as it is.
"""

from __future__ import annotations

import copy
from typing import Any

from dotflow.core.context import Context
from dotflow.values.plain_copy import NotPlain, copy_plain

__all__ = ["isolated_copy"]


def isolated_copy(value: Any) -> Any:
    try:
        return copy_plain(value)  # plain data, by hand: most values, several times faster
    except NotPlain:
        pass
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - any failure to copy means "keep what cannot be copied"
        pass
    try:
        return _PartialCopier().copy(value)
    except RecursionError:
        return value


class _PartialCopier:
    """Rebuilds containers node by node; each other object is deep-copied on its own, or kept."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}  # id(original container) -> its copy (shared references, cycles)

    def copy(self, node: Any) -> Any:
        kind = type(node)
        if id(node) in self.memo:
            return self.memo[id(node)]
        if kind is list:
            items: list[Any] = []
            self.memo[id(node)] = items
            items.extend(self.copy(item) for item in node)
            return items
        if kind is dict:
            mapping: dict[Any, Any] = {}
            self.memo[id(node)] = mapping
            for key, item in node.items():
                mapping[self.copy(key)] = self.copy(item)
            return mapping
        if kind in (tuple, set, frozenset):
            rebuilt = kind(self.copy(item) for item in node)
            self.memo[id(node)] = rebuilt
            return rebuilt
        if kind is Context:
            context = Context(task_id=node.task_id, workflow_id=node.workflow_id)
            context.time = node.time
            self.memo[id(node)] = context
            context.storage = self.copy(node.storage)
            return context
        try:
            return copy.deepcopy(node)
        except Exception:  # noqa: BLE001
            return node
