"""Run tasks in child processes (modes sequential_group and parallel).

At most `Config.max_workers` children run at once (the CPU count by default; 1.0.1 forked one per
task). They are forked before the parent starts serving, and each asks the parent for the next batch
(one task in parallel mode, one group in sequential_group) whenever it has finished one, so a slow
task never holds up the others. A child that dies in the middle of a batch fails that batch's
unreported tasks and is replaced by a new child for the batches left. Tasks that run in the same
child share its memory (module globals, caches) one after the other, as in any process pool.

A child does no storage or journal I/O of its own: its storage is a `StorageRelay` and its journal a
`JournalRelay`, which forward each call over the child's pipe to the parent. The parent performs the
call on the real object and answers. So every storage (in memory too) sees each checkpoint written
once, in one place, and every unit of work is journaled once, by the parent. Claim events
(`record_claims`) are told, not asked: the child sends them and goes on without waiting, and the
parent queues them in the run's journal (through the run's `record_claims`) in the order they came,
after the child's journal calls that came before them.

The parent's loop reads every child's pipe; each storage or journal call is served on a thread pool,
so the commits of parallel tasks overlap on a slow store instead of queueing behind each other. A
task's final state arrives on the same pipe after its commit was answered, so a large result never
blocks a child (1.0.1 joined children before draining their queue).

A child whose parent dies exits promptly: it closes the pipe ends it inherited (so a pipe read gets
EOF) and, on Linux, asks the kernel to kill it when the parent goes (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
import threading
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, cast

from uow import Binding, ClaimEvent, JournalCapabilities, Lease, RunPersistence, StorageCapabilities, UnitOfWork, UnitSnapshot

from dotflow.abc.storage import Storage
from dotflow.run.lease_relay import RecordedTransaction, recording, run_recorded_transaction
from dotflow.core.context import Context
from dotflow.core.exception import TaskError, WorkerError
from dotflow.core.types import TypeStatus

__all__ = [
    "ClaimsJournalRelay",
    "JournalRelay",
    "LeaseTransactionRelay",
    "LeasingStorageRelay",
    "StorageRelay",
    "VersionedStorageRelay",
    "run_in_processes",
]

logger = logging.getLogger("dotflow")

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
        "lease_transaction": lambda p, kw: run_recorded_transaction(p, **kw),
    },
    "journal": {
        "prepare": lambda p, kw: p.prepare(**kw),  # a journal without intents: nothing to do
        "record": lambda p, kw: p.record(**kw),  # confirmed only once a buffering storage flushed
    },
}
# The calls a child tells without waiting for an answer, and how the parent performs each (on the
# run, with its binding of the real storage and journal). A failure is logged by the run.
TOLD: dict[str, dict[str, Callable[[RunPersistence, Binding, dict[str, Any]], None]]] = {
    "journal": {
        "record_claims": lambda run, p, kw: run.record_claims(p, **kw),
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

    def tell(self, target: str, index: int, method: str, kwargs: dict[str, Any]) -> None:
        """Send a call the parent performs without answering (see `TOLD`): no round trip."""
        with self._lock:
            self._connection.send(("tell", target, index, method, kwargs))

    def next_batch(self) -> int | None:
        """Ask the parent which batch to run next (None: none is left)."""
        with self._lock:
            self._connection.send(("next",))
            outcome, index = self._connection.recv()
        return cast("int | None", index)


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


class LeaseTransactionRelay(LeasingStorageRelay):
    """The relay of a storage whose transactions check leases (SQL, memory): a claimed commit's block
    is recorded here and run in one transaction in the parent (`dotflow.run.lease_relay`)."""

    def lease_transaction(self) -> AbstractContextManager[RecordedTransaction]:
        return recording(lambda operations: self._call("lease_transaction", operations=operations))


class JournalRelay:
    """Stands in for the journal inside a child: each unit is sent to the parent as a `UnitSnapshot`."""

    def __init__(self, pipe: _Pipe, index: int) -> None:
        self._pipe = pipe
        self._index = index

    def prepare(self, unit: UnitOfWork) -> None:
        self._pipe.call("journal", self._index, "prepare", {"unit": UnitSnapshot.of(unit)})

    def record(self, unit: UnitOfWork) -> None:
        self._pipe.call("journal", self._index, "record", {"unit": UnitSnapshot.of(unit)})


class ClaimsJournalRelay(JournalRelay):
    """The relay of a journal that records claims: events are told to the parent, never waited for."""

    def record_claims(self, events: list[ClaimEvent]) -> None:
        self._pipe.tell("journal", self._index, "record_claims", {"events": list(events)})


def _relay_journal(journal: Any, pipe: _Pipe, index: int) -> JournalRelay:
    return (ClaimsJournalRelay if JournalCapabilities.of(journal).claims else JournalRelay)(pipe, index)


def _relay_storage(storage: Storage, pipe: _Pipe, index: int) -> StorageRelay:
    can = StorageCapabilities.of(storage)
    if can.versions and can.leases:
        return (LeaseTransactionRelay if can.lease_transaction else LeasingStorageRelay)(storage, pipe, index)
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
    configs: list[Any]  # every Config of the run's tasks, in the same order in the parent and the children
    run: RunPersistence
    batch: list[Any] | None = None  # the batch it is running (None: between batches)
    taken: int = 0  # how many batches it took


def run_in_processes(
    batches: list[list[Any]],
    work: Callable[[list[Any], Callable[[Any], None]], None],
    run: RunPersistence,
    max_workers: int | None = None,
) -> list[Any]:
    """Run `work(batch, report)` for each batch in at most `max_workers` child processes; return the
    tasks that reported.

    `max_workers` None takes the smallest `Config.max_workers` of the batches' tasks. Each child
    asks the parent for the next batch when it has finished one, until none is left. Relayed
    storage and journal calls are served through `run`, the parent's persistence of the run.

    `work` runs the batch's tasks; it calls `report(task)` after each task it ran or restored.
    If a child ends in the middle of a batch (whatever its exit code), every task of that batch it
    did not report ends FAILED with a `WorkerError`; a new child takes its place for the batches
    left.
    """
    tasks = [task for batch in batches for task in batch]
    configs = distinct_configs(tasks)  # a task without config creates its own now, before any fork
    if max_workers is None:
        max_workers = min((config.max_workers for config in configs), default=1)
    pool = _WorkerPool(batches, work, run, configs, max_workers)
    pool.serve()
    return [task for task in tasks if task.task_id in pool.reported]


class _WorkerPool:
    """The parent's side: at most `limit` children, the batches not taken yet, the serving threads.

    Every child is forked while no serving thread of the pool runs: the first ones before serving
    starts, a replacement after the serving threads were stopped (see `_replace`).
    """

    def __init__(
        self,
        batches: list[list[Any]],
        work: Callable[[list[Any], Callable[[Any], None]], None],
        run: RunPersistence,
        configs: list[Any],
        limit: int,
    ) -> None:
        self.batches = batches
        self.work = work
        self.run = run
        self.configs = configs
        self.limit = max(1, limit)
        self.pending = deque(range(len(batches)))  # batches no child has taken yet
        self.workers: dict[Connection, _Worker] = {}  # the children whose pipe is open
        self.ended: list[_Worker] = []
        self.reported: set[str] = set()
        self.parent_pid = os.getpid()
        self._context = multiprocessing.get_context("fork")
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None

    def serve(self) -> None:
        """Start the children, then read every child's messages until all pipes close; calls run on
        the serving threads, batch hand-outs and state updates here."""
        for _ in range(min(self.limit, len(self.batches))):
            self._fork()
        try:
            while self.workers:
                for ready in wait(list(self.workers)):
                    self._receive(cast(Connection, ready))
        finally:  # (children still running only if serving failed: closing their pipe ends them)
            self._stop_serving_threads()
            for worker in list(self.workers.values()) + self.ended:
                worker.connection.close()
                worker.process.join()

    def _receive(self, connection: Connection) -> None:
        worker = self.workers[connection]
        try:
            message = connection.recv()
        except (EOFError, OSError):
            self._ended(worker)
            return
        kind = message[0]
        if kind == "next":  # the child finished its batch (or just started): hand it the next one
            worker.batch = None
            index = self.pending.popleft() if self.pending else None
            if index is not None:
                worker.batch = self.batches[index]
                worker.taken += 1
            self._send(worker, index)
        elif kind == "call":
            storage_pool, journal_pool = self._serving_threads()
            (journal_pool if message[1] == "journal" else storage_pool).submit(_answer, worker, *message[1:])
        elif kind == "tell":  # (on the journal's thread: after the child's journal calls before it)
            storage_pool, journal_pool = self._serving_threads()
            (journal_pool if message[1] == "journal" else storage_pool).submit(_perform_told, worker, *message[1:])
        elif kind == "task":
            _, task_id, state = message
            for task in worker.batch or ():
                if task.task_id == task_id:
                    apply_state(task, state)
                    self.reported.add(task_id)

    def _ended(self, worker: _Worker) -> None:
        """A child's pipe closed: fail what it left unfinished, and replace it if batches are left."""
        del self.workers[worker.connection]
        self.ended.append(worker)
        if worker.batch is not None:  # it died in the middle of a batch
            worker.process.join(timeout=5)  # it is exiting: its exit code goes into the error
            _fail_unreported(worker.batch, self.reported, worker.process.exitcode)
        if not self.pending:
            return
        if worker.taken:
            self._replace()
        elif not self.workers:  # the children died before taking anything: another would die the same way
            worker.process.join(timeout=5)
            why = f"no worker process was left to run it (the last one ended with exit code {worker.process.exitcode})"
            while self.pending:
                _fail_unreported(self.batches[self.pending.popleft()], self.reported, None, why)

    def _replace(self) -> None:
        """Fork a child in place of one that ended. The serving threads are stopped first (each
        finishes the call it serves), so no lock one of them holds is copied into the child held."""
        self._stop_serving_threads()
        self._fork()

    def _fork(self) -> None:
        parent_end, child_end = self._context.Pipe()
        inherited = list(self.workers) + [worker.connection for worker in self.ended] + [parent_end]
        process = self._context.Process(
            target=_child_main,
            args=(child_end, self.batches, self.configs, self.work, inherited, self.parent_pid),
            daemon=True,
        )
        process.start()
        child_end.close()
        self.workers[parent_end] = _Worker(process, parent_end, self.configs, self.run)

    def _serving_threads(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        # Journal calls get one thread of their own: a journal keeps a database connection per thread that
        # uses it, and its writes are serialised anyway; on the storage's pool they could hold more
        # connections than the journal's connection pool has, and wait for one until it times out.
        if self._pools is None:
            self._pools = (
                ThreadPoolExecutor(max_workers=min(MAX_SERVING_THREADS, self.limit), thread_name_prefix="dotflow-relay"),
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="dotflow-journal"),
            )
        return self._pools

    def _stop_serving_threads(self) -> None:
        pools, self._pools = self._pools, None
        for pool in pools or ():
            pool.shutdown(wait=True)

    def _send(self, worker: _Worker, payload: Any) -> None:
        try:
            worker.connection.send(("ok", payload))
        except OSError:
            pass  # the child is gone; its pipe's end is seen next


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


def _perform_told(worker: _Worker, target: str, index: int, method: str, kwargs: dict[str, Any]) -> None:
    """Perform one call a child told (no answer is sent); whatever fails is logged, never raised."""
    config = worker.configs[index]
    try:
        persistence = worker.run.persistence(config.storage, config.journal)
        perform = TOLD.get(target, {}).get(method)
        if perform is None:
            raise WorkerError(f"{target} method {method!r} cannot be told")
        perform(worker.run, persistence, kwargs)
    except Exception as error:
        logger.warning("a call a worker process told (%s %s) failed: %s", target, method, error)


def _portable(exc: Exception) -> Exception:
    """The exception itself if it survives pickling, else a WorkerError carrying its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return WorkerError(f"{type(exc).__name__}: {exc}")


def _fail_unreported(batch: list[Any], reported: set[str], exitcode: int | None, why: str | None = None) -> None:
    for task in batch:
        if task.task_id in reported:
            continue
        error = WorkerError(
            f"worker process of task {task.task_id!r} ended (exit code {exitcode}) without reporting a result"
            if why is None else f"task {task.task_id!r} did not run: {why}"
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
    batches: list[list[Any]],
    configs: list[Any],
    work: Callable[..., None],
    inherited: list[Connection],
    parent_pid: int,
) -> None:
    """A child: relays in place of every storage and journal, then batch after batch as the parent
    hands them out, until it has none left."""
    for end in inherited:  # parent ends of every pipe: holding them would hide the parent's death
        end.close()
    _die_with_parent(parent_pid)
    pipe = _Pipe(connection)
    for index, config in enumerate(configs):
        config.storage = _relay_storage(config.storage, pipe, index)
        if config.journal is not None:
            config.journal = _relay_journal(config.journal, pipe, index)

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
        while (chosen := pipe.next_batch()) is not None:
            work(batches[chosen], report)
        flush_providers(configs)
    except BaseException:
        traceback.print_exc()
        raise
    finally:
        connection.close()
