"""Run tasks in child processes (modes sequential_group and parallel).

A child does no storage or journal I/O of its own: its storage is a `StorageRelay` and its journal a
`JournalRelay`, which forward each call over the child's pipe to the parent. The parent performs the
call on the real object and answers. So every storage (in memory too) sees each checkpoint written
once, in one place, and every unit of work is journaled once, by the parent.

The parent's loop reads every child's pipe; each storage or journal call is served on a thread pool,
so the commits of parallel tasks overlap on a slow store instead of queueing behind each other. A
task's final state arrives on the same pipe after its commit was answered, so a large result never
blocks a child (1.0.1 joined children before draining their queue).

A child whose parent dies exits promptly: it closes the pipe ends it inherited (so a pipe read gets
EOF) and, on Linux, asks the kernel to kill it when the parent goes (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, cast

from uow import Binding, Lease, RunPersistence, StorageCapabilities, UnitOfWork, UnitSnapshot

from dotflow.abc.storage import Storage
from dotflow.core.context import Context
from dotflow.core.exception import TaskError, WorkerError
from dotflow.core.types import TypeStatus

__all__ = ["JournalRelay", "LeasingStorageRelay", "StorageRelay", "VersionedStorageRelay", "run_in_processes"]

# Task attributes a child sends back to the parent once the task is over.
STATE_FIELDS = (
    "_status", "_current_context", "_previous_context", "_errors", "_duration",
    "retry_count", "restored", "_started_at", "_finished_at",
)  # fmt: skip
def _dotflow_storage(persistence: Binding) -> Storage:
    """The storage of a Config (always a dotflow `Storage`), for the calls only dotflow's ABC declares."""
    return cast(Storage, persistence.storage)


# The calls a child may relay, and how the parent performs each on the run's binding of the real
# storage and journal. A relay only offers post_if / delete_if for a storage with versions.
RELAYED: dict[str, dict[str, Callable[[Binding, dict[str, Any]], Any]]] = {
    "storage": {
        "post": lambda p, kw: p.storage.post(**kw),
        "get": lambda p, kw: p.storage.get(**kw),
        "read_checkpoint": lambda p, kw: p.read_checkpoint(**kw),
        "delete": lambda p, kw: p.delete(**kw),
        "delete_prefix": lambda p, kw: _dotflow_storage(p).delete_prefix(**kw),
        "list_keys": lambda p, kw: _dotflow_storage(p).list_keys(**kw),
        "clear": lambda p, kw: _dotflow_storage(p).clear(**kw),
        "post_if": lambda p, kw: p.post_if(**kw),
        "delete_if": lambda p, kw: p.delete_if(**kw),
        "flush": lambda p, kw: p.flush(),
        "create_lease": lambda p, kw: p.create_lease(**kw),
        "read_lease": lambda p, kw: p.read_lease(**kw),
        "replace_lease": lambda p, kw: p.replace_lease(**kw),
        "delete_lease": lambda p, kw: p.delete_lease(**kw),
    },
    "journal": {
        "prepare": lambda p, kw: p.prepare(**kw),  # a journal without intents: nothing to do
        "record": lambda p, kw: p.record(**kw),  # confirmed only once a buffering storage flushed
    },
}
MAX_SERVING_THREADS = 32
PIPE_ERRORS = (pickle.PicklingError, TypeError, AttributeError)


class _Pipe:
    """A child's end of its pipe: one request and its answer at a time, whichever thread asks."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()

    def call(self, target: str, index: int, method: str, kwargs: dict[str, Any]) -> Any:
        with self._lock:
            try:
                self._connection.send(("call", target, index, method, kwargs))
            except PIPE_ERRORS as exc:
                value = kwargs.get("context")
                if isinstance(value, Context):
                    value = value.storage
                raise TypeError(
                    f"value of key {kwargs.get('key')!r} ({type(value).__name__}) "
                    f"cannot be sent from the worker process to the parent: {exc}"
                ) from exc
            outcome, payload = self._connection.recv()
        if outcome == "error":
            raise payload
        return payload


class StorageRelay(Storage):
    """Stands in for the real storage inside a child: `key` runs locally, I/O runs in the parent."""

    def __init__(self, storage: Storage, pipe: _Pipe, index: int) -> None:
        self._storage = storage
        self._pipe = pipe
        self._index = index  # which of the batch's configs the parent should use
        # A storage that buffers writes (BatchStorage) is flushed before a failure is reported; the
        # child asks the parent, which holds the buffer.
        self._flushes = StorageCapabilities.of(storage).flush

    def flush(self) -> None:
        if self._flushes:
            self._call("flush")

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self._pipe.call("storage", self._index, method, kwargs)

    def key(self, task: Any) -> str:
        return self._storage.key(task=task)

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self._call("post", key=key, context=context, ttl=ttl, fingerprint=fingerprint)

    def get(self, key: str) -> Context:
        return cast(Context, self._call("get", key=key))

    def read_checkpoint(self, key: str) -> Any:
        return self._call("read_checkpoint", key=key)

    def delete(self, key: str) -> bool:
        return bool(self._call("delete", key=key))

    def delete_prefix(self, prefix: str) -> int:
        return int(self._call("delete_prefix", prefix=prefix))

    def list_keys(self, prefix: str = "") -> Any:
        return self._call("list_keys", prefix=prefix)

    def clear(self, workflow_id: str) -> None:
        self._call("clear", workflow_id=workflow_id)


class VersionedStorageRelay(StorageRelay):
    """The relay of a storage with versions: conditional writes run in the parent too."""

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        return bool(self._call("post_if", key=key, context=context, version=version, ttl=ttl, fingerprint=fingerprint))

    def delete_if(self, key: str, *, version: str | None) -> bool:
        return bool(self._call("delete_if", key=key, version=version))


class LeasingStorageRelay(VersionedStorageRelay):
    """The relay of a storage with leases (claims): lease calls run in the parent too."""

    def create_lease(self, key: str, *, owner: str, ttl: float) -> Lease | None:
        return cast("Lease | None", self._call("create_lease", key=key, owner=owner, ttl=ttl))

    def read_lease(self, key: str) -> Lease | None:
        return cast("Lease | None", self._call("read_lease", key=key))

    def replace_lease(self, key: str, *, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        found = self._call("replace_lease", key=key, version=version, owner=owner, epoch=epoch, ttl=ttl)
        return cast("Lease | None", found)

    def delete_lease(self, key: str, *, version: str) -> bool:
        return bool(self._call("delete_lease", key=key, version=version))


class JournalRelay:
    """Stands in for the journal inside a child: each unit is sent to the parent as a `UnitSnapshot`."""

    def __init__(self, pipe: _Pipe, index: int) -> None:
        self._pipe = pipe
        self._index = index

    def prepare(self, unit: UnitOfWork) -> None:
        self._pipe.call("journal", self._index, "prepare", {"unit": UnitSnapshot.of(unit)})

    def record(self, unit: UnitOfWork) -> None:
        self._pipe.call("journal", self._index, "record", {"unit": UnitSnapshot.of(unit)})


def _relay_storage(storage: Storage, pipe: _Pipe, index: int) -> StorageRelay:
    can = StorageCapabilities.of(storage)
    if can.versions and can.leases:
        return LeasingStorageRelay(storage, pipe, index)
    return (VersionedStorageRelay if can.versions else StorageRelay)(storage, pipe, index)


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


@dataclass
class _Worker:
    process: Any
    connection: Connection
    batch: list[Any]
    configs: list[Any]
    run: RunPersistence
    done: bool = False  # the child said it finished its batch


def run_in_processes(
    batches: list[list[Any]],
    work: Callable[[list[Any], Callable[[Any], None]], None],
    run: RunPersistence,
) -> list[Any]:
    """Run `work(batch, report)` in one child process per batch; return the tasks that reported.

    Relayed storage and journal calls are served through `run`, the parent's persistence of the run.

    `work` runs the batch's tasks; it calls `report(task)` after each task it ran or restored.
    If a child ends without finishing its batch (whatever its exit code), every task it did not
    report ends FAILED with a `WorkerError`.
    """
    context = multiprocessing.get_context("fork")
    workers: list[_Worker] = []
    parent_pid = os.getpid()
    for batch in batches:
        configs = distinct_configs(batch)  # a task without config creates its own now, before the fork
        parent_end, child_end = context.Pipe()
        inherited = [worker.connection for worker in workers] + [parent_end]
        process = context.Process(
            target=_child_main, args=(child_end, batch, work, inherited, parent_pid), daemon=True
        )
        process.start()
        child_end.close()
        workers.append(_Worker(process, parent_end, batch, configs, run))

    reported: set[str] = set()
    _serve(workers, reported)

    for worker in workers:
        worker.process.join()
        worker.connection.close()
        if not worker.done:
            _fail_unreported(worker.batch, reported, worker.process.exitcode)
    tasks = [task for batch in batches for task in batch]
    return [task for task in tasks if task.task_id in reported]


def _serve(workers: list[_Worker], reported: set[str]) -> None:
    """Read every child's messages until all pipes close; calls run on a pool, state updates here."""
    by_connection = {worker.connection: worker for worker in workers}
    open_connections = set(by_connection)
    # Journal calls get one thread of their own: a journal keeps a database connection per thread that
    # uses it, and its writes are serialised anyway; on the storage's pool they could hold more
    # connections than the journal's connection pool has, and wait for one until it times out.
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_SERVING_THREADS, len(workers)))) as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="dotflow-journal") as journal_pool:  # fmt: skip
        while open_connections:
            for ready in wait(list(open_connections)):
                connection = cast(Connection, ready)
                worker = by_connection[connection]
                try:
                    message = connection.recv()
                except (EOFError, OSError):
                    open_connections.discard(connection)
                    continue
                kind = message[0]
                if kind == "call":
                    (journal_pool if message[1] == "journal" else pool).submit(_answer, worker, *message[1:])
                elif kind == "task":
                    _, task_id, state = message
                    for task in worker.batch:
                        if task.task_id == task_id:
                            apply_state(task, state)
                            reported.add(task_id)
                elif kind == "done":
                    worker.done = True


def _answer(worker: _Worker, target: str, index: int, method: str, kwargs: dict[str, Any]) -> None:
    """Perform one relayed call on the parent's real storage or journal and send the outcome back."""
    config = worker.configs[index]
    persistence = worker.run.persistence(config.storage, config.journal)
    call = RELAYED.get(target, {}).get(method)
    reply: tuple[str, Any]
    if call is None or (target == "journal" and persistence.journal is None):
        reply = ("error", WorkerError(f"{target} method {method!r} cannot be relayed"))
    else:
        try:
            reply = ("ok", call(persistence, kwargs))
        except Exception as exc:
            reply = ("error", _portable(exc))
    # One call per child is in flight at a time (the child waits for this answer), so no lock is needed.
    try:
        try:
            worker.connection.send(reply)
        except PIPE_ERRORS as exc:
            worker.connection.send(("error", WorkerError(f"{target} {method} result cannot be sent to the worker: {exc}")))
    except OSError:
        pass  # the child is gone; the main loop sees its pipe close


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
        error = WorkerError(
            f"worker process of task {task.task_id!r} ended (exit code {exitcode}) without reporting a result"
        )
        task.errors = TaskError(error)
        task.status = TypeStatus.FAILED
        reported.add(task.task_id)


def flush_providers(configs: list[Any], timeout: float = 30.0) -> None:
    """Let each telemetry and notification provider deliver what it holds: a child process ends with
    `os._exit`, which runs no exit handler and stops every thread."""
    for config in configs:
        for provider in (config.notify, config.log, config.tracer, config.metrics):
            try:
                provider.flush(timeout=timeout)
            except Exception:  # a provider's delivery problem never fails the tasks
                traceback.print_exc()


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies; exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _child_main(
    connection: Connection,
    batch: list[Any],
    work: Callable[..., None],
    inherited: list[Connection],
    parent_pid: int,
) -> None:
    for end in inherited:  # parent ends of every pipe: holding them would hide the parent's death
        end.close()
    _die_with_parent(parent_pid)
    pipe = _Pipe(connection)
    for index, config in enumerate(distinct_configs(batch)):
        config.storage = _relay_storage(config.storage, pipe, index)
        if config.journal is not None:
            config.journal = JournalRelay(pipe, index)

    def report(task: Any) -> None:
        state = task_state(task)
        try:
            connection.send(("task", task.task_id, state))
        except PIPE_ERRORS as exc:
            error = WorkerError(f"result of task {task.task_id!r} cannot be sent back to the parent process: {exc}")
            state["_current_context"] = Context(storage=None, task_id=task.task_id)
            if task.status != TypeStatus.FAILED:  # else its error already says why
                state["_errors"] = list(task.errors) + [TaskError(error)]
                state["_status"] = TypeStatus.FAILED
            connection.send(("task", task.task_id, state))

    try:
        work(batch, report)
        flush_providers(distinct_configs(batch))
        connection.send(("done",))
    except BaseException:
        traceback.print_exc()
        raise
    finally:
        connection.close()
