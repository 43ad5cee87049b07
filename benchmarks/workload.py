"""One benchmark workload that runs unchanged on this project and on the published dotflow 1.0.1.

It uses only the public API the two share (`Config`, `DotFlow`, `action`, `StorageFile`,
`StorageDefault`), counts every storage call through a subclass of the storage, times `start()`
with `time.perf_counter`, and prints one JSON line per measurement to stdout:

    {"lib": "ours"|"dotflow-1.0.1", "version": "1.0.1", "uow": true|false, "round": R,
     "scenario": "...", "metrics": {...}}

Both libraries report `__version__ == "1.0.1"`; they are told apart by whether `uow` is importable.

Usage: python workload.py [--tasks N] [--parallel-tasks P] [--round R]

Scenarios (each on a fresh temporary folder or a fresh in-memory storage):
  seq_file / seq_mem        N tasks, sequential, all succeed (StorageFile / StorageDefault)
  resume_file / resume_mem  a second DotFlow with the same workflow id, start(resume=True)
  fail_file / fail_mem      a task that succeeded once, then raises on every attempt (retry=1) when
                            the same DotFlow is started again after adding a task (same task ids, and
                            so the same checkpoint key, in both libraries)
  parallel_file / parallel_mem  P tasks, mode="parallel"; calls from every process are counted via
                            an O_APPEND log file, since 1.0.1's children write on their own
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

# Anything a library writes to its default output folder lands in a throwaway folder.
_SCRATCH = tempfile.mkdtemp(prefix="dotflow-bench-scratch-")
_MAIN_PID = os.getpid()
atexit.register(lambda: os.getpid() == _MAIN_PID and shutil.rmtree(_SCRATCH, ignore_errors=True))
os.environ["DOTFLOW_OUTPUT_PATH"] = _SCRATCH
os.environ.pop("WORKFLOW_ID", None)

_IMPORT_BEGIN = time.perf_counter()
import dotflow
from dotflow import Config, DotFlow, action
from dotflow.providers import StorageDefault, StorageFile

try:
    import uow  # noqa: F401  (only this project ships it)

    HAS_UOW = True
except ImportError:
    HAS_UOW = False

IMPORT_SECONDS = time.perf_counter() - _IMPORT_BEGIN
LIB = "ours" if HAS_UOW else "dotflow-1.0.1"
FP_MARK = "_input_fp"  # 1.0.1's fingerprint key is "<wf>-_input_fp"


# ----------------------------------------------------------------------------------- counting storage

_depth = threading.local()


class Counter:
    """Storage calls seen by a counting storage: in memory, or appended to a log file shared by all
    processes (one `os.write` per line on an O_APPEND descriptor, so lines from forks never mix)."""

    def __init__(self, log_path: str | None = None) -> None:
        self.events: list[dict] = []
        self.log_path = log_path
        self.paused = False

    def record(self, op: str, key: object, value_is_none: bool | None) -> None:
        event = {"pid": os.getpid(), "op": op, "key": str(key), "none": value_is_none}
        if self.log_path is None:
            self.events.append(event)
            return
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(event) + "\n").encode())
        finally:
            os.close(fd)

    def all_events(self) -> list[dict]:
        if self.log_path is None:
            return list(self.events)
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def reset(self) -> None:
        self.events.clear()
        if self.log_path is not None and os.path.exists(self.log_path):
            os.unlink(self.log_path)


def _key_of(args: tuple, kwargs: dict) -> object:
    return kwargs.get("key", args[0] if args else None)


def _wrap(base: type, name: str, op: str):
    """A method that records one event, then calls the base method. Only the outermost storage call
    of a thread is recorded, so a backend whose `get` calls its own `read_checkpoint` counts once."""
    inner = getattr(base, name)

    def method(self, *args, **kwargs):
        depth = getattr(_depth, "value", 0)
        if depth == 0 and not self.counter.paused:
            value_is_none = None
            if op == "post":
                context = kwargs.get("context", args[1] if len(args) > 1 else None)
                value_is_none = getattr(context, "storage", None) is None
            self.counter.record(op, _key_of(args, kwargs), value_is_none)
        _depth.value = depth + 1
        try:
            return inner(self, *args, **kwargs)
        finally:
            _depth.value = depth

    method.__name__ = name
    return method


def counting(base: type) -> type:
    """A subclass of `base` that counts post / get (and read_checkpoint, where the base has it)."""
    methods = {"post": _wrap(base, "post", "post"), "get": _wrap(base, "get", "get")}
    if hasattr(base, "read_checkpoint"):  # only this project's storages have it
        methods["read_checkpoint"] = _wrap(base, "read_checkpoint", "read_checkpoint")
    for name in ("delete", "delete_prefix", "clear"):
        if hasattr(base, name):
            methods[name] = _wrap(base, name, name)
    return type(f"Counting{base.__name__}", (base,), methods)


CountingFile = counting(StorageFile)
CountingDefault = counting(StorageDefault)


def make_storage(kind: str, folder: str | None, counter: Counter):
    storage = CountingFile(path=folder) if kind == "file" else CountingDefault()
    storage.counter = counter
    return storage


def summarize(events: list[dict], tasks: int, parent_pid: int | None = None) -> dict:
    """Per-task figures for the checkpoint keys, plus the calls on other keys (1.0.1's fingerprint)."""
    task_events = [e for e in events if FP_MARK not in e["key"]]
    other = [e for e in events if FP_MARK in e["key"]]
    writes = [e for e in task_events if e["op"] == "post"]
    reads = [e for e in task_events if e["op"] in ("get", "read_checkpoint")]
    out = {
        "writes_per_task": len(writes) / tasks,
        "reads_per_task": len(reads) / tasks,
        "writes_total": len(writes),
        "reads_total": len(reads),
        "none_writes": sum(1 for e in writes if e["none"]),
        "other_key_calls": len(other),
        "deletes": sum(1 for e in task_events if e["op"] in ("delete", "delete_prefix", "clear")),
    }
    if parent_pid is not None:
        out["writes_in_children"] = sum(1 for e in writes if e["pid"] != parent_pid)
        out["reads_in_children"] = sum(1 for e in reads if e["pid"] != parent_pid)
    return out


def disk_usage(folder: str) -> dict:
    files = [p for p in Path(folder, "tasks").iterdir() if p.is_file()]
    return {"files_on_disk": len(files), "bytes_on_disk": sum(p.stat().st_size for p in files)}


# ------------------------------------------------------------------------------------------ the steps

EXECUTED = [0]
FAIL = [False]
PAYLOAD = "x" * 32


def next_value(previous: object) -> dict:
    prev = previous if isinstance(previous, dict) else {"n": 0, "total": 0}
    n = prev["n"] + 1
    return {"n": n, "total": prev["total"] + n, "payload": PAYLOAD}


def expected_after(tasks: int) -> dict:
    return {"n": tasks, "total": tasks * (tasks + 1) // 2, "payload": PAYLOAD}


@action
def step(previous_context):
    EXECUTED[0] += 1
    return next_value(previous_context.storage)


@action(retry=1)
def flaky(previous_context):
    EXECUTED[0] += 1
    if FAIL[0]:
        raise RuntimeError("flaky step fails on every attempt")
    return {"flaky": "good checkpoint"}


@action
def tail(previous_context):
    EXECUTED[0] += 1
    return {"tail": True}


# ---------------------------------------------------------------------------------------- scenarios


def new_flow(storage, workflow_id: str):
    return DotFlow(config=Config(storage=storage), workflow_id=workflow_id)


def timed_start(flow, **kwargs) -> float:
    begin = time.perf_counter()
    flow.start(**kwargs)
    return time.perf_counter() - begin


def status_of(task) -> str:
    return str(task.status)


def scenario_sequential(kind: str, tasks: int, emit) -> None:
    """seq_<kind> then resume_<kind> on the same storage and workflow id."""
    folder = tempfile.mkdtemp(prefix="dotflow-bench-") if kind == "file" else None
    try:
        counter = Counter()
        workflow_id = str(uuid.uuid4())
        storage = make_storage(kind, folder, counter)

        flow = new_flow(storage, workflow_id)
        flow.task.add(step=[step] * tasks)
        EXECUTED[0] = 0
        seconds = timed_start(flow)
        metrics = summarize(counter.all_events(), tasks)
        metrics.update(
            run_ms_per_task=seconds * 1000 / tasks,
            executed=EXECUTED[0],
            all_completed=all(status_of(t) == "Completed" for t in flow.result_task()),
            result_ok=flow.result_storage()[-1] == expected_after(tasks),
        )
        if folder:
            metrics.update(disk_usage(folder))
        emit(f"seq_{kind}", metrics)

        # Second run: a new DotFlow (as a new process would build), same workflow id, resume=True.
        counter.reset()
        if kind == "file":
            storage = make_storage(kind, folder, counter)  # a new instance on the same folder
        flow = new_flow(storage, workflow_id)
        flow.task.add(step=[step] * tasks)
        EXECUTED[0] = 0
        seconds = timed_start(flow, resume=True)
        metrics = summarize(counter.all_events(), tasks)
        metrics.update(
            run_ms_per_task=seconds * 1000 / tasks,
            executed=EXECUTED[0],
            skipped=tasks - EXECUTED[0],
            all_completed=all(status_of(t) == "Completed" for t in flow.result_task()),
            result_ok=flow.result_storage()[-1] == expected_after(tasks),
        )
        if folder:
            metrics.update(disk_usage(folder))
        emit(f"resume_{kind}", metrics)
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"list[{len(value)}]"
    return type(value).__name__


def scenario_failure(kind: str, emit) -> None:
    """[step, flaky] succeed; then flaky raises on every attempt (retry=1) in a re-run of the same
    tasks (started again after adding `tail`, which re-runs every queued task with unchanged task
    ids in both libraries), so the failing attempt targets the key holding flaky's good checkpoint."""
    folder = tempfile.mkdtemp(prefix="dotflow-bench-") if kind == "file" else None
    try:
        counter = Counter()
        storage = make_storage(kind, folder, counter)
        flow = new_flow(storage, str(uuid.uuid4()))
        flow.task.add(step=[step, flaky])
        FAIL[0] = False
        flow.start()
        flaky_task = flow.result_task()[1]
        key = storage.key(task=flaky_task)
        good_before = status_of(flaky_task) == "Completed"

        counter.reset()
        FAIL[0] = True
        flow.task.add(step=tail)
        EXECUTED[0] = 0
        flow.start()
        events = counter.all_events()
        on_key = [e for e in events if e["key"] == key]
        writes_on_key = [e for e in on_key if e["op"] == "post"]

        counter.paused = True
        stored = storage.get(key=key).storage
        first_stored = storage.get(key=storage.key(task=flow.result_task()[0])).storage
        counter.paused = False
        metrics = summarize(events, EXECUTED[0])  # per task executed in the failing run
        metrics.update(
            first_run_completed=good_before,
            failed_status=status_of(flaky_task),
            writes_on_failed_key=len(writes_on_key),
            none_writes_on_failed_key=sum(1 for e in writes_on_key if e["none"]),
            reads_on_failed_key=sum(1 for e in on_key if e["op"] in ("get", "read_checkpoint")),
            good_checkpoint_survived=stored == {"flaky": "good checkpoint"},
            failed_key_reads_back_as=_describe(stored),
            rerun_ok_key_reads_back_as=_describe(first_stored),
            executed=EXECUTED[0],
        )
        if folder:
            metrics.update(disk_usage(folder))
        emit(f"fail_{kind}", metrics)
    finally:
        FAIL[0] = False
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def scenario_parallel(kind: str, tasks: int, emit) -> None:
    """`tasks` independent tasks in mode="parallel"; every process appends its calls to one log."""
    folder = tempfile.mkdtemp(prefix="dotflow-bench-")
    try:
        counter = Counter(log_path=os.path.join(folder, "calls.log"))
        storage = make_storage(kind, folder if kind == "file" else None, counter)
        flow = new_flow(storage, str(uuid.uuid4()))
        flow.task.add(step=[step] * tasks)
        seconds = timed_start(flow, mode="parallel")
        metrics = summarize(counter.all_events(), tasks, parent_pid=os.getpid())
        metrics.update(
            run_ms_per_task=seconds * 1000 / tasks,
            all_completed=all(status_of(t) == "Completed" for t in flow.result_task()),
            result_ok=all(value == expected_after(1) for value in flow.result_storage()),
        )
        if kind == "file":
            metrics.update(disk_usage(folder))
            counter.paused = True
            metrics["file_reads_back_as"] = _describe(storage.get(key=storage.key(task=flow.result_task()[0])).storage)
            counter.paused = False
        emit(f"parallel_{kind}", metrics)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--parallel-tasks", type=int, default=4)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="run every scenario this many times")
    parser.add_argument("--skip-parallel", action="store_true")
    args = parser.parse_args()

    header = {
        "lib": LIB,
        "version": getattr(dotflow, "__version__", "?"),
        "uow": HAS_UOW,
        "round": args.round,
        "python": platform.python_version(),
        "dotflow_path": os.path.dirname(dotflow.__file__),
    }

    def emit(scenario: str, metrics: dict) -> None:
        print(json.dumps({**header, "scenario": scenario, "metrics": metrics}), flush=True)

    emit("import", {"import_ms": IMPORT_SECONDS * 1000})
    for repeat in range(args.repeats):
        header["repeat"] = repeat
        for kind in ("file", "mem"):
            scenario_sequential(kind, args.tasks, emit)
        for kind in ("file", "mem"):
            scenario_failure(kind, emit)
        if not args.skip_parallel:
            for kind in ("file", "mem"):
                scenario_parallel(kind, args.parallel_tasks, emit)


if __name__ == "__main__":
    sys.exit(main())
