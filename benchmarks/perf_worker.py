"""One measurement of the performance suite, in a process of its own; prints one JSON line.

Runs under this project, under dotflow 1.0.1 (its own venv) or, for `floor`, under any Python:

    python perf_worker.py mem        --tasks N   # N sequential tasks on StorageDefault
    python perf_worker.py file       --tasks N   # N sequential tasks on StorageFile
    python perf_worker.py file_batch --tasks N   # this project only: BatchStorage(StorageFile)
    python perf_worker.py file_journal --tasks N # this project only: StorageFile + the SQLite journal
    python perf_worker.py floor      --tasks N   # N x (write + fsync + rename + folder fsync) of a small file
    ... --slices K   # file workloads: run the N tasks as K workflows, the floor measured between them

Each step returns a small dict computed from its predecessor's (`{"n", "total", "payload"}`, 32-byte
payload). Logging is off in both libraries (`LogDefault(level="ERROR")`: 1.0.1 otherwise writes
every status change to stderr). Building the workflow (`DotFlow` + one `task.add` per task) and
running it (`start()`) are timed apart with `time.perf_counter`; the run's CPU time
(`time.process_time`, which other processes on a shared machine disturb far less) is reported too,
for building as well, with the run's share of it spent in the garbage collector (`gc.callbacks`), its
full collections and its page faults (`ru_minflt`). `--settle` (the flat rows use it, see suite.py)
first builds and runs a one-task workflow of its own (the process's first calls into the library),
then runs `gc.collect()` (what the imports left), and only then starts the clock: one-off costs of
the process, which would otherwise weigh on a small run's time per task, stay out of it. Storage calls are counted by
wrapping the storage's own methods (outermost call only). Peak RSS is `ru_maxrss` of this process,
which runs one workload once, so it is the workload's own peak. The file workloads also measure the
floor themselves, interleaved with the workflow and in the storage's own folder, with files named
like checkpoints (a folder of a thousand long names costs each write more than a fresh folder of
short ones, about 15% on this VM: a floor measured there would understate what any writer pays in the
storage's folder): with `--slices K` the N tasks
run as K workflows of N/K tasks on one storage, and a floor slice of N/(2K) writes runs before each
workflow and after the last (`floor_us_per_task`: each workflow is charged the mean of the slices on
either side, weighted by its tasks). A disk on a shared machine changes speed from one second to the
next, so the finer the interleaving, the fairer `ours_over_floor`; K=1 is one workflow between two
floor halves. `task_median_us` / `floor_median_us` are the medians of single tasks (from one step's
start to the next's) and single floor writes, which a few stalled fsyncs hardly move.
Build and run times are summed over the K workflows. `file_batch` times
its `close()` apart too (`close_us`, inside the run's time), counts the segments written
(`batches`), then, outside the timed region, reopens the folder (`reopen_us`: replaying every
segment to rebuild the index) and merges the segments into one (`compact_us`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid

PAYLOAD = "x" * 32


def rss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def expected_after(tasks: int) -> dict:
    return {"n": tasks, "total": tasks * (tasks + 1) // 2, "payload": PAYLOAD}


class Calls:
    """Counts the outermost storage calls (a backend's `get` may call its own `read_checkpoint`)."""

    def __init__(self) -> None:
        self.writes = 0
        self.reads = 0
        self._depth = 0

    def wrap(self, storage: object) -> None:
        for name, kind in (("post", "writes"), ("get", "reads"), ("read_checkpoint", "reads")):
            inner = getattr(storage, name, None)
            if inner is not None:
                setattr(storage, name, self._counted(inner, kind))

    def _counted(self, inner, kind: str):
        def method(*args, **kwargs):
            if self._depth == 0:
                setattr(self, kind, getattr(self, kind) + 1)
            self._depth += 1
            try:
                return inner(*args, **kwargs)
            finally:
                self._depth -= 1

        return method


class Collections:
    """CPU time spent in the cyclic garbage collector, and full collections, while `counting` is set
    (read through `gc.callbacks`; the collector itself is left as the library and Python set it)."""

    def __init__(self) -> None:
        self.counting = False
        self.cpu = 0.0
        self.full = 0
        self._began = 0.0
        gc.callbacks.append(self._event)

    def _event(self, phase: str, info: dict) -> None:
        if not self.counting:
            return
        if phase == "start":
            self._began = time.process_time()
            return
        self.cpu += time.process_time() - self._began
        self.full += info["generation"] == 2


def page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run_flow(kind: str, tasks: int, folder: str, slices: int = 1, settle: bool = False) -> dict:
    from dotflow import Config, DotFlow, action
    from dotflow.providers import LogDefault, StorageDefault, StorageFile

    try:
        import uow  # noqa: F401  (only this project ships it)

        lib = "ours"
    except ImportError:
        lib = "dotflow-1.0.1"

    with_floor = kind != "mem"

    @action
    def step(previous_context):
        if with_floor:  # (not in memory: the flat rows measure what a run keeps per task)
            marks.append(time.perf_counter())  # when each task's step starts (file workloads: per-task times)
        prev = previous_context.storage if isinstance(previous_context.storage, dict) else {"n": 0, "total": 0}
        n = prev["n"] + 1
        return {"n": n, "total": prev["total"] + n, "payload": PAYLOAD}

    marks: list[float] = []
    batch = None
    journal = None
    if kind == "mem":
        storage = StorageDefault()
    elif kind == "file":
        storage = StorageFile(path=folder)
    elif kind == "file_journal":
        storage = StorageFile(path=folder)
        journal = f"sqlite:///{os.path.join(folder, 'journal.db')}"  # the embedded default, as a user passes it
    elif kind == "file_batch":
        from dotflow.providers import BatchStorage

        batch = BatchStorage(StorageFile(path=folder))
        storage = batch
    else:
        raise SystemExit(f"unknown workload {kind!r}")
    calls = Calls()
    calls.wrap(storage)
    options = {} if journal is None else {"journal": journal}  # (1.0.1's Config has no journal)
    config = Config(storage=storage, log=LogDefault(level="ERROR"), **options)

    chunks = [tasks // slices + (1 if i < tasks % slices else 0) for i in range(slices)]
    floor_ops = max(1, tasks // (2 * slices))
    # The floor writes beside the checkpoints, in the same folder (BatchStorage's folder holds segments,
    # not per-key files: its floor gets a folder of its own).
    floor_folder = ""
    if with_floor:
        floor_folder = tempfile.mkdtemp(dir=folder) if batch is not None else os.path.join(folder, "tasks")
        os.makedirs(floor_folder, exist_ok=True)
    floor_runs = [run_floor(floor_ops, floor_folder)] if with_floor else []
    intervals: list[float] = []  # per task: from its step's start to the next one's (the last: to the run's end)
    if settle:
        # One-off costs of the process, paid before the clock starts: the first calls into the library
        # (0.1-1 ms here) and a collection of what the imports left (about 1 ms), which would otherwise
        # land in a small run and inflate its time per task. The measured workflow is still a new one.
        warm_up = DotFlow(config=Config(storage=StorageDefault(), log=LogDefault(level="ERROR")))
        warm_up.task.add(step=step)
        warm_up.start()
        del warm_up
        gc.collect()
    collections = Collections()
    rss_before = rss_kb()
    build = run = cpu = build_cpu = closing = 0.0
    faults = 0
    ok = True
    for size in chunks:
        build_cpu_begin = time.process_time()
        begin = time.perf_counter()
        marks.clear()
        flow = DotFlow(config=config, workflow_id=str(uuid.uuid4()))
        for _ in range(size):
            flow.task.add(step=step)
        built = time.perf_counter()
        cpu_begin = time.process_time()
        faults_begin = page_faults()
        collections.counting = True
        flow.start()
        ended = time.perf_counter()
        cpu += time.process_time() - cpu_begin
        collections.counting = False
        faults += page_faults() - faults_begin
        build_cpu += cpu_begin - build_cpu_begin
        ends = [*marks[1:], ended]
        intervals += [(end - start) * 1e6 for start, end in zip(marks, ends)]
        build += built - begin
        run += ended - built
        results = flow.result_storage()
        ok = ok and len(results) == size and results[-1] == expected_after(size)
        if with_floor:
            # The floor right after this workflow: with the slice before it, it pairs this workflow with
            # the disk's speed at the time (on a shared machine fsync latency moves from second to second).
            floor_runs.append(run_floor(floor_ops, floor_folder))
    if batch is not None:
        begin = time.perf_counter()
        batch.close()  # start() already flushed at workflow end; close() compacts only if worth it
        closing = time.perf_counter() - begin
        run += closing
    out = {
        "lib": lib,
        "build_us_per_task": build * 1e6 / tasks,
        "run_us_per_task": run * 1e6 / tasks,
        "run_cpu_us_per_task": cpu * 1e6 / tasks,
        "build_cpu_us_per_task": build_cpu * 1e6 / tasks,
        "run_gc_cpu_us_per_task": collections.cpu * 1e6 / tasks,
        "run_cpu_outside_gc_us_per_task": (cpu - collections.cpu) * 1e6 / tasks,
        "run_full_collections": collections.full,
        "run_page_faults_per_task": faults / tasks,
        "writes_per_task": calls.writes / tasks,
        "reads_per_task": calls.reads / tasks,
        "ok": ok,
        "rss_before_kb": rss_before,
        "slices": slices,
    }
    if with_floor:
        floors = [run["run_us_per_task"] for run in floor_runs]
        paired_floor = [(floors[i] + floors[i + 1]) / 2 for i in range(slices)]
        out["floor_us_per_task"] = sum(f * n for f, n in zip(paired_floor, chunks)) / tasks
        # Medians of single tasks and single floor writes: a few fsyncs that stall for milliseconds (this
        # VM's disk has a long tail) move the means above, but hardly these.
        out["task_median_us"] = statistics.median(intervals)
        out["floor_median_us"] = statistics.median(op for run in floor_runs for op in run["op_us"])
    if batch is not None:
        out["batches"] = batch.stats()["flushes"]
        out["close_us"] = closing * 1e6
        out.update(reopen_and_compact(folder))
    return out


def reopen_and_compact(folder: str) -> dict:
    """Outside the timed region: open the folder again (replay) and merge its segments into one."""
    from dotflow.providers import BatchStorage, StorageFile

    begin = time.perf_counter()
    batch = BatchStorage(StorageFile(path=folder))
    opened = time.perf_counter()
    batch.compact()
    compacted = time.perf_counter()
    batch.close()
    return {"reopen_us": (opened - begin) * 1e6, "compact_us": (compacted - opened) * 1e6}


def run_floor(tasks: int, folder: str) -> dict:
    """The cost of one durable small-file replace, done by hand: what a durable checkpoint cannot beat.

    The files are shaped like checkpoints, so the folder fills as a StorageFile folder does: names of
    the keys' shape (`<uuid>-<n>-step.json`, a fresh uuid per call) and temp files `.<name>.<12 hex>.tmp`
    (names made before the clock starts). Paired with a workflow, this runs in the storage's own folder.
    """
    data = (json.dumps({"value": PAYLOAD * 10}) + "\n").encode()  # about the size of one checkpoint
    run_id = uuid.uuid4()
    targets = [os.path.join(folder, f"{run_id}-{number}-step.json") for number in range(tasks)]
    temps = [os.path.join(folder, f".{run_id}-{number}-step.json.{os.urandom(6).hex()}.tmp") for number in range(tasks)]
    op_us = []
    begin = time.perf_counter()
    for target, tmp in zip(targets, temps):
        started = time.perf_counter()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        op_us.append((time.perf_counter() - started) * 1e6)
    ended = time.perf_counter()
    return {"lib": "floor", "run_us_per_task": (ended - begin) * 1e6 / tasks, "writes_per_task": 1.0,
            "reads_per_task": 0.0, "ok": all(map(os.path.exists, targets)), "op_us": op_us}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=["mem", "file", "file_batch", "file_journal", "floor"])
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--slices", type=int, default=1, help="file workloads: workflows the tasks are split into")
    parser.add_argument("--settle", action="store_true", help="a one-task workflow, then gc.collect(), before the clock")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="dotflow-perf-")
    os.environ["DOTFLOW_OUTPUT_PATH"] = folder  # whatever a library writes by default lands here
    try:
        if args.workload == "floor":
            metrics = run_floor(args.tasks, folder)
            metrics["floor_median_us"] = statistics.median(metrics.pop("op_us"))
        else:
            if not 1 <= args.slices <= args.tasks or (args.workload == "mem" and args.slices != 1):
                raise SystemExit(f"--slices: 1 to --tasks ({args.tasks}), and 1 for mem; not {args.slices}")
            metrics = run_flow(args.workload, args.tasks, folder, args.slices, args.settle)
            if "floor_us_per_task" in metrics:
                metrics["ours_over_floor"] = metrics["run_us_per_task"] / metrics["floor_us_per_task"]
                metrics["ours_over_floor_median"] = metrics["task_median_us"] / metrics["floor_median_us"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    metrics.update(workload=args.workload, tasks=args.tasks, peak_rss_kb=rss_kb(), python=platform.python_version())
    print(json.dumps(metrics), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
