"""Storages that fail on command, a workflow that counts its executions, and what a journal says.

`faulty(cls)` subclasses a real storage class: every I/O method it has (and the writes of its
transactions) first asks `storage.faults`, which raises the error a test armed for that operation and
key. Only the methods the real class has are wrapped, so the subclass declares the same abilities.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from dotflow import Config, DotFlow, action
from dotflow.core.context import Context
from uow import Journal

__all__ = ["Faults", "VALUES", "faulty", "flow_of", "outcomes", "stored", "verify"]

WRAPPED = ("post", "post_if", "get", "read_checkpoint", "delete", "delete_if")


class Faults:
    """Which call fails: `arm(rule)` where `rule(operation, key, count)` returns an exception to
    raise (or None); `count` is how many calls of that operation came before. `calls` lists them all."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self._rule: Callable[[str, str | None, int], BaseException | None] | None = None

    def arm(self, rule: Callable[[str, str | None, int], BaseException | None]) -> None:
        self._rule = rule

    def disarm(self) -> None:
        self._rule = None

    def check(self, operation: str, key: str | None) -> None:
        count = sum(1 for done, _ in self.calls if done == operation)
        self.calls.append((operation, key))
        error = self._rule(operation, key, count) if self._rule is not None else None
        if error is not None:
            raise error


def _wrap(name: str) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.faults.check(name, kwargs.get("key", args[0] if args else None))
        return getattr(super(type(self), self), name)(*args, **kwargs)

    method.__name__ = name
    return method


class _FaultyTransaction:
    """A storage transaction whose writes ask the storage's `faults` first (as `tx.post`, ...)."""

    def __init__(self, transaction: Any, faults: Faults) -> None:
        self._transaction = transaction
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._transaction, name)
        if name not in ("post", "post_if", "delete", "delete_if"):
            return target

        def write(*args: Any, **kwargs: Any) -> Any:
            self._faults.check(f"tx.{name}", kwargs.get("key", args[0] if args else None))
            return target(*args, **kwargs)

        return write


def faulty(cls: type) -> type:
    """A subclass of storage class `cls` whose I/O can be made to fail (see the module docstring)."""
    namespace: dict[str, Any] = {name: _wrap(name) for name in WRAPPED if hasattr(cls, name)}
    if hasattr(cls, "transaction"):

        @contextlib.contextmanager
        def transaction(self: Any) -> Iterator[Any]:
            with super(type(self), self).transaction() as inner:
                yield _FaultyTransaction(inner, self.faults)

        namespace["transaction"] = transaction
    subclass = type(f"Faulty{cls.__name__}", (cls,), namespace)

    original_init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        self.faults = Faults()
        original_init(self, *args, **kwargs)

    subclass.__init__ = __init__  # type: ignore[misc]
    return subclass


# -- a three-task workflow whose values change from run to run ---------------------------------------

VALUES: dict[str, Any] = {"run": "v1", "executions": [], "during": {}}


def _step(name: str) -> Any:
    def step() -> Any:
        VALUES["executions"].append(name)
        hook = VALUES["during"].get(name)
        if hook is not None:
            hook()
        return f"{VALUES['run']}-{name}"

    step.__name__ = name
    return action(step, retry=2)  # a broken engine would run a step again after a failed commit


extract, transform, load = _step("extract"), _step("transform"), _step("load")


def flow_of(config: Config, workflow_id: str = "orders") -> DotFlow:
    flow = DotFlow(config=config, workflow_id=workflow_id)
    for step in (extract, transform, load):
        flow.task.add(step=step)
    return flow


def stored(storage: Any, flow: DotFlow) -> list[Any]:
    """What the storage holds for each task of `flow` (None: absent)."""
    found = []
    for task in flow.result_task():
        checkpoint = storage.read_checkpoint(storage.key(task=task))
        found.append(None if checkpoint is None else checkpoint.context.storage)
    return found


def outcomes(journal: Journal, workflow_id: str = "orders") -> list[tuple[str | None, str]]:
    """(task id, outcome) of every journal entry of the workflow, oldest first."""
    return [(unit.task_id, unit.outcome) for unit in journal.units(workflow_id=workflow_id, oldest_first=True)]


def verify(journal: Journal, storage: Any) -> dict[str, str]:
    return {finding.key: finding.status for finding in journal.verify(storage)}


def context_of(value: Any) -> Context:
    return Context(storage=value)
