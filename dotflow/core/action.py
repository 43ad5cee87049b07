"""The `action` decorator: marks a function or class as a workflow step and carries its retry options.

A step receives, by parameter name only, `initial_context` and/or `previous_context` (each a
Context); every other parameter keeps its default. Its return value is wrapped in a Context
stamped with the task's ids. `async def` steps are run to completion.
"""

from __future__ import annotations

import inspect
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from typing import Any, Callable

from dotflow.core.context import Context, workflow_uuid

__all__ = ["ACTION_MODULE", "Action", "call_step", "injectable_names", "is_action", "takes_instance"]

INJECTABLE = ("initial_context", "previous_context")
# The `__module__` every @action product carries (1.0.1's marker; user code may check it too).
ACTION_MODULE = "dotflow.core.action"


def is_action(obj: Any) -> bool:
    """True for what `@action` or `@action(...)` produced (a step, or a step method of a class)."""
    return callable(obj) and getattr(obj, "__module__", None) == ACTION_MODULE


def injectable_names(func: Any) -> tuple[str, ...]:
    """The injectable parameters a step declares (read from its code object, as 1.0.1 does)."""
    code = getattr(func, "__code__", None)
    if code is None and type(func) is type:
        code = getattr(getattr(func, "__init__"), "__code__", None)
    if code is None:
        return ()
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return tuple(name for name in INJECTABLE if name in names)


def takes_instance(func: Any) -> bool:
    """For an @action method of a class step: does it expect the instance first (`def m(self, ...)`)?

    1.0.1 accepts both `def m(self, previous_context)` and `def m(previous_context)` inside a class;
    the instance is passed when the first positional parameter is not an injectable name.
    """
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    positional = code.co_varnames[: code.co_argcount]
    return bool(positional) and positional[0] not in INJECTABLE


def call_step(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    given: Mapping[str, Any],
    names: tuple[str, ...] | None = None,
    is_async: bool | None = None,
    *,
    as_context: bool = True,
) -> Any:
    """Call the step `func` with the contexts it asks for, awaiting it if it is a coroutine function.

    Each injectable parameter `func` names gets a fresh Context around `given[name]` (None when
    absent). Returns the step's value as a Context, stamped with the ids of `given["task"]` when
    there is one (what a step returns to the engine); with `as_context=False`, the value itself.
    `names` (its `injectable_names`) and `is_async` may be given when already known.
    """
    if names is None:
        names = injectable_names(func)
    contexts = {}
    for name in names:  # (a loop: a comprehension's frame costs more for one or two names)
        contexts[name] = Context(given.get(name))
    if inspect.iscoroutinefunction(func) if is_async is None else is_async:
        result = _run_coroutine(func(*args, **contexts))
    else:
        result = func(*args, **contexts)
    if not as_context:
        return result
    task = given.get("task")
    if task is None:
        return Context(storage=result)
    return Context(storage=result, task_id=task.task_id, workflow_id=workflow_uuid(task.workflow_id))


def _run_coroutine(coroutine: Any) -> Any:
    import asyncio  # here, not at module level: it is a third of the import time

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # A loop already runs in this thread: run ours in a worker thread and wait for it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _take_identity(wrapper: Any, func: Any) -> None:
    """Name, qualname, doc and `__wrapped__` of `func`; `__module__` stays ACTION_MODULE, the marker
    `is_action` checks (so functools.wraps, which copies it, is not used)."""
    wrapper.__name__ = getattr(func, "__name__", type(func).__name__)
    wrapper.__qualname__ = getattr(func, "__qualname__", wrapper.__name__)
    wrapper.__doc__ = getattr(func, "__doc__", None)
    wrapper.__wrapped__ = func


class Action:
    """`@action` or `@action(retry=3, timeout=10, retry_delay=1, backoff=True)`.

    retry: total attempts (at least 1). timeout: seconds per attempt (0 = none; a timed-out
    attempt is not retried). retry_delay: seconds before the next attempt. backoff: double the
    delay after each wait.
    """

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        task: Any = None,
        retry: int = 1,
        timeout: float = 0,
        retry_delay: float = 1,
        backoff: bool = False,
    ) -> None:
        self.func = func
        self.task = task
        self.retry = retry
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.backoff = backoff
        self.params = injectable_names(func) if func is not None else ()
        self._is_async = inspect.iscoroutinefunction(func) if func is not None else False
        if func is not None:
            _take_identity(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        func = self.func
        if func is not None:  # a step: called by the engine with its contexts and `task=`
            return call_step(func, args, kwargs, self.params, self._is_async)
        # `@action(...)`: we are the options; wrap the function now.
        (func,) = args
        return self._wrap(func)

    def _wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        names = injectable_names(func)  # resolved once here, not on every call
        is_async = inspect.iscoroutinefunction(func)

        def step(*args: Any, **kwargs: Any) -> Any:
            return call_step(func, args, kwargs, names, is_async)

        step.retry = self.retry  # type: ignore[attr-defined]
        step.timeout = self.timeout  # type: ignore[attr-defined]
        step.retry_delay = self.retry_delay  # type: ignore[attr-defined]
        step.backoff = self.backoff  # type: ignore[attr-defined]
        step.func = func  # type: ignore[attr-defined]
        step.params = names  # type: ignore[attr-defined]
        _take_identity(step, func)
        return step
