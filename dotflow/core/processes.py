"""Run tasks in child processes (modes sequential_group and parallel).

A child does no storage I/O of its own: its storage is a `StorageRelay` that forwards each call
over a pipe to the parent, which performs it on the real storage and answers. So every storage
(in memory too) sees each checkpoint written once, in one place, and nothing is re-written.
The parent serves those calls and collects each task's final state in one loop over the pipes,
so a large result never blocks a child (1.0.1 joined children before draining their queue).
"""

from __future__ import annotations

import multiprocessing
import pickle
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, cast

from dotflow.abc.storage import Storage
from dotflow.core.context import Context
from dotflow.core.exception import TaskError, WorkerError
from dotflow.core.types import TypeStatus

__all__ = ["StorageRelay", "run_in_processes"]

# Task attributes a child sends back to the parent once the task is over.
STATE_FIELDS = (
    "_status", "_current_context", "_previous_context", "_errors", "_duration",
    "retry_count", "restored", "started_at", "finished_at",
)  # fmt: skip
RELAYED_CALLS = ("post", "get", "read_checkpoint", "delete", "delete_prefix", "list_keys", "clear")


class StorageRelay(Storage):
    """Stands in for the real storage inside a child: `key` runs locally, I/O runs in the parent."""

    def __init__(self, storage: Storage, connection: Connection, index: int) -> None:
        self._storage = storage
        self._connection = connection
        self._index = index  # which of the batch's storages the parent should use

    def key(self, task: Any) -> str:
        return self._storage.key(task=task)

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            self._connection.send(("call", self._index, method, kwargs))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            value = kwargs.get("context")
            raise TypeError(
                f"value of key {kwargs.get('key')!r} ({type(getattr(value, 'storage', value)).__name__}) "
                f"cannot be sent from the worker process to the parent: {exc}"
            ) from exc
        outcome, payload = self._connection.recv()
        if outcome == "error":
            raise payload
        return payload

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self._call("post", key=key, context=context, ttl=ttl, fingerprint=fingerprint)

    def get(self, key: str) -> Context:
        return self._call("get", key=key)

    def read_checkpoint(self, key: str) -> Any:
        return self._call("read_checkpoint", key=key)

    def delete(self, key: str) -> bool:
        return self._call("delete", key=key)

    def delete_prefix(self, prefix: str) -> int:
        return self._call("delete_prefix", prefix=prefix)

    def list_keys(self, prefix: str = "") -> Any:
        return self._call("list_keys", prefix=prefix)

    def clear(self, workflow_id: str) -> None:
        self._call("clear", workflow_id=workflow_id)


def task_state(task: Any) -> dict[str, Any]:
    return {name: getattr(task, name) for name in STATE_FIELDS}


def apply_state(task: Any, state: dict[str, Any]) -> None:
    """Copy a child's task state without firing status hooks again (the child fired them)."""
    for name, value in state.items():
        setattr(task, name, value)


def distinct_configs(batch: list[Any]) -> list[Any]:
    """The batch's Config objects, each once, in task order (tasks usually share one)."""
    configs: dict[int, Any] = {}
    for task in batch:
        configs.setdefault(id(task.config), task.config)
    return list(configs.values())


def run_in_processes(
    batches: list[list[Any]],
    work: Callable[[list[Any], Callable[[Any], None]], None],
) -> list[Any]:
    """Run `work(batch, report)` in one child process per batch; return the tasks that reported.

    `work` runs the batch's tasks; it calls `report(task)` after each task it ran or restored.
    A task whose child died before reporting it ends FAILED with a `WorkerError`.
    """
    context = multiprocessing.get_context("fork")
    workers: dict[Connection, tuple[Any, list[Any], list[Any]]] = {}
    for batch in batches:
        configs = distinct_configs(batch)  # a task without config creates its own now, before the fork
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_child_main, args=(child_end, batch, work), daemon=True)
        process.start()
        child_end.close()
        workers[parent_end] = (process, batch, configs)

    reported: set[str] = set()
    finished: set[Connection] = set()
    while len(finished) < len(workers):
        for ready in wait([c for c in workers if c not in finished]):
            connection = cast(Connection, ready)
            _, batch, configs = workers[connection]
            if not _serve(connection, batch, configs, reported):
                finished.add(connection)

    for connection, (process, batch, _) in workers.items():
        process.join()
        connection.close()
        if process.exitcode != 0:
            _fail_unreported(batch, reported, process.exitcode)
    tasks = [task for batch in batches for task in batch]
    return [task for task in tasks if task.task_id in reported]


def _serve(connection: Connection, batch: list[Any], configs: list[Any], reported: set[str]) -> bool:
    """Handle one message from a child; False once the child is done or gone."""
    try:
        message = connection.recv()
    except (EOFError, OSError):
        return False
    kind = message[0]
    if kind == "call":
        _, index, method, kwargs = message
        storage = configs[index].storage
        if method not in RELAYED_CALLS:
            reply: tuple = ("error", WorkerError(f"storage method {method!r} cannot be relayed"))
        else:
            try:
                reply = ("ok", getattr(storage, method)(**kwargs))
            except Exception as exc:
                reply = ("error", _portable(exc))
        try:
            connection.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            connection.send(("error", WorkerError(f"storage {method} result cannot be sent to the worker: {exc}")))
        return True
    if kind == "task":
        _, task_id, state = message
        for task in batch:
            if task.task_id == task_id:
                apply_state(task, state)
                reported.add(task_id)
        return True
    return kind != "done"


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling, else a WorkerError carrying its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return WorkerError(f"{type(exc).__name__}: {exc}")


def _fail_unreported(batch: list[Any], reported: set[str], exitcode: int | None) -> None:
    for task in batch:
        if task.task_id in reported:
            continue
        error = WorkerError(f"worker process of task {task.task_id!r} ended (exit code {exitcode}) without reporting a result")
        task.errors = TaskError(error)
        task.status = TypeStatus.FAILED
        reported.add(task.task_id)


def _child_main(connection: Connection, batch: list[Any], work: Callable) -> None:
    for index, config in enumerate(distinct_configs(batch)):
        config.storage = StorageRelay(config.storage, connection, index)

    def report(task: Any) -> None:
        state = task_state(task)
        try:
            connection.send(("task", task.task_id, state))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            error = WorkerError(f"result of task {task.task_id!r} cannot be sent back to the parent process: {exc}")
            state["_current_context"] = Context(storage=None, task_id=task.task_id)
            if task.status != TypeStatus.FAILED:  # else its error already says why
                state["_errors"] = list(task.errors) + [TaskError(error)]
                state["_status"] = TypeStatus.FAILED
            connection.send(("task", task.task_id, state))

    try:
        work(batch, report)
        connection.send(("done",))
    except BaseException:
        traceback.print_exc()
        raise
    finally:
        connection.close()
