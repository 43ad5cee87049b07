"""What claims cost, and what several workers do with them.

1. Per task, on the durable `StorageFile` (sequential tasks, fresh folder per run, `resume=True` in
   every run so that only the claim differs): no claim, `Claim(scope="task")` (one lease created,
   one deleted, the checkpoint read again under it, per task) and `Claim(scope="workflow")` (one
   lease per run). Rounds alternate the order; medians of per-round ratios (each pair ran under the
   same machine load). The workflow claim's cost is shown per run, at two workflow sizes, to show it
   is a constant. The target: scope="task" at most +40% per task. Then one lease created and deleted on a
   `StorageFile` alone, 2,000 times (no engine around it).
2. Workers: 1, 2 and 4 workers (processes) resume one workflow of independent tasks in `parallel`
   mode under `Claim(scope="task", on_held="skip")`, on PostgreSQL and on the local S3 server
   (started here); every step's executions are counted with an O_APPEND file: each must run once.
   The wall time is from the workers' common start to the last one's end.

`--journal`: part 1 with a SQLite journal (`Config(journal=...)`, a fresh file per run, opened
before the clock starts and closed after it stops), so that what the journal records of the
claims (docs/claims.md, "In the journal") is in the figures. Each round then also runs
`scope="task"` with the recording of claim events switched off (`RunPersistence.claim_event` made a
no-op for that run), to show what recording them adds per task. And the journal's side alone: what one
claim event costs, told to the run, queued and written in batches of 128 (a claimed task records two,
taken and released; the run writes them with its outcomes, 64 units to a batch), in wall and CPU time.

Usage: .venv/bin/python benchmarks/claims_cost.py [--tasks 200] [--rounds 9] [--workers-tasks 24] [--no-workers] [--journal]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from dotflow import Claim, Config, DotFlow, action
from dotflow.providers import StorageFile

ROOT = Path(__file__).resolve().parents[1]


@action
def step() -> int:
    return 1


JOURNAL = False  # --journal: every run keeps a SQLite journal


def one_run(tasks: int, claim: Claim | None, record_claims: bool = True) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `tasks` sequential tasks on a fresh durable StorageFile folder."""
    if not record_claims:
        from uow import RunPersistence

        recording = RunPersistence.claim_event
        RunPersistence.claim_event = lambda *args, **kwargs: None  # type: ignore[method-assign]
        try:
            return one_run(tasks, claim)
        finally:
            RunPersistence.claim_event = recording  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        journal = None
        if JOURNAL:
            from uow import Journal

            journal = Journal(f"sqlite:///{folder}/journal.db")  # created (migrated) before the clock starts
        flow = DotFlow(config=Config(storage=StorageFile(path=f"{folder}/store"), journal=journal), workflow_id="cost")
        for _ in range(tasks):
            flow.task.add(step=step)
        options: dict[str, Any] = {} if claim is None else {"claim": claim}
        started, cpu = time.perf_counter(), time.process_time()
        flow.start(resume=True, **options)
        took = time.perf_counter() - started, time.process_time() - cpu
        if journal is not None:
            journal.close()
        return took


def file_cost(tasks: int, rounds: int) -> dict[str, Any]:
    kinds = {"none": None, "task": Claim(scope="task"), "workflow": Claim(scope="workflow")}
    small = max(10, tasks // 4)
    if JOURNAL:
        kinds["task-unrecorded"] = kinds["task"]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in [*kinds, "none-small", "workflow-small"]}
    one_run(10, None)  # warm up imports and the file system
    for number in range(rounds):
        order = list(kinds) if number % 2 == 0 else list(reversed(kinds))
        for name in order:
            times[name].append(one_run(tasks, kinds[name], record_claims=name != "task-unrecorded"))
        for name, claim in (("none-small", None), ("workflow-small", kinds["workflow"])):
            times[name].append(one_run(small, claim))

    def overhead(name: str, which: int, base: str = "none") -> float:
        return statistics.median(run[which] / other[which] for run, other in zip(times[name], times[base])) - 1

    def added_ms(name: str, base: str) -> float:
        return statistics.median(run[0] - other[0] for run, other in zip(times[name], times[base])) * 1e3

    return {
        "tasks": tasks,
        "rounds": rounds,
        "us_per_task": {name: statistics.median(run[0] for run in times[name]) / tasks * 1e6 for name in kinds},
        "cpu_us_per_task": {name: statistics.median(run[1] for run in times[name]) / tasks * 1e6 for name in kinds},
        "overhead": {name: overhead(name, 0) for name in ("task", "workflow")},
        "cpu_overhead": {name: overhead(name, 1) for name in ("task", "workflow")},
        "workflow_ms_per_run": {tasks: added_ms("workflow", "none"), small: added_ms("workflow-small", "none-small")},
        "recording": None if not JOURNAL else {
            "overhead": overhead("task", 0, "task-unrecorded"),
            "cpu_overhead": overhead("task", 1, "task-unrecorded"),
            "us_per_task": statistics.median(a[0] - b[0] for a, b in zip(times["task"], times["task-unrecorded"])) / tasks * 1e6,
            "cpu_us_per_task": statistics.median(a[1] - b[1] for a, b in zip(times["task"], times["task-unrecorded"])) / tasks * 1e6,
        },
    }


def lease_ops_cost(pairs: int = 2000) -> dict[str, float]:
    """Microseconds (median of 3 runs) to create one lease on a StorageFile and to delete it, `pairs` times
    on fresh keys: what a claimed task's lease costs the storage, without the engine around it."""
    created, deleted = [], []
    with tempfile.TemporaryDirectory() as folder:
        storage = StorageFile(path=folder)
        for run in range(3):
            create_s = delete_s = 0.0
            for number in range(pairs):
                began = time.perf_counter()
                lease = storage.create_lease(f"cost-{run}-{number}", owner="host:1:abcdef012345", ttl=30.0)
                middle = time.perf_counter()
                assert lease is not None and storage.delete_lease(lease.key, version=lease.version)
                create_s, delete_s = create_s + middle - began, delete_s + time.perf_counter() - middle
            created.append(create_s / pairs * 1e6)
            deleted.append(delete_s / pairs * 1e6)
    return {"create_us": statistics.median(created), "delete_us": statistics.median(deleted)}


def event_cost(events: int = 20000, batch: int = 128) -> dict[str, float]:
    """Microseconds per claim event, told to a run, queued in a SQLite journal and written `batch` at a time."""
    from dotflow.providers import StorageDefault
    from uow import Journal, RunPersistence
    from uow.outcomes import CLAIM_RELEASED, CLAIM_TAKEN

    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(f"sqlite:///{folder}/journal.db")
        run = RunPersistence("cost", mode="sequential")
        binding = run.persistence(StorageDefault(), journal)
        owner = "host:12345:0123456789ab"
        started, cpu = time.perf_counter(), time.process_time()
        for number in range(events):
            task = f"{number // 2}-step"
            run.claim_event(binding, CLAIM_TAKEN if number % 2 == 0 else CLAIM_RELEASED, key=f"cost-{task}.json",
                            owner=owner, epoch=1, task_id=task)  # fmt: skip
            if number % batch == batch - 1:
                journal.flush()
        journal.flush()
        wall, cpu_time = time.perf_counter() - started, time.process_time() - cpu
        assert journal.count_claims() == events
        journal.close()
    return {"us_per_event": wall / events * 1e6, "cpu_us_per_event": cpu_time / events * 1e6}


# -- several workers -------------------------------------------------------------------------------


def run_workers(spec: dict[str, Any], count: int, folder: Path) -> dict[str, Any]:
    counts = folder / f"counts-{uuid.uuid4().hex[:6]}"
    ready = folder / f"ready-{uuid.uuid4().hex[:6]}"
    ready.mkdir()
    spec = {**spec, "workflow": f"bench-{uuid.uuid4().hex[:8]}", "counts": str(counts), "ready_dir": str(ready), "peers": count}
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    workers = [
        subprocess.Popen([sys.executable, "-m", "tests.integration.claims_worker", json.dumps(spec)], cwd=ROOT,
                         env={**env, "WORKER_NAME": f"w{n}"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(count)
    ]  # fmt: skip
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        if worker.returncode != 0:
            raise RuntimeError(f"a worker failed:\n{err[-2000:]}")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    ran = Counter(line.split()[0] for line in counts.read_text().splitlines())
    return {
        "workers": count,
        "seconds": max(output["seconds"] for output in outputs),
        "executions": sum(ran.values()),
        "each_once": sorted(ran) == sorted(f"t{n}" for n in range(spec["tasks"])) and set(ran.values()) == {1},
    }


def workers_table(tasks: int, step_seconds: float, max_workers: int | None) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    from tests.postgres_server import PostgresServer
    from tests.servers import new_bucket_name, s3_client, start_moto
    from uow.journal_migrate import upgrade
    from uow.sql_engine import make_engine

    rows = []
    common: dict[str, Any] = {"tasks": tasks, "mode": "parallel", "ttl": 30, "on_held": "skip", "step_seconds": step_seconds}
    if max_workers is not None:
        common["max_workers"] = max_workers
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        postgres = PostgresServer()
        moto = start_moto()
        try:
            for backend in ("postgres", "s3"):
                for count in (1, 2, 4):
                    if backend == "postgres":
                        url = postgres.new_database()
                        engine = make_engine(url)
                        upgrade(engine)
                        engine.dispose()
                        spec = {**common, "backend": "postgres", "where": url}
                    else:
                        bucket = new_bucket_name("bench")
                        s3_client(moto.url).create_bucket(Bucket=bucket)
                        spec = {**common, "backend": "s3", "where": moto.url, "bucket": bucket}
                    rows.append({"backend": backend, **run_workers(spec, count, folder)})
        finally:
            moto.stop()
            postgres.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--workers-tasks", type=int, default=24)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    parser.add_argument("--max-workers", type=int, default=None,
                        help="Config(max_workers=N) for each worker (bounded parallel mode, once the Config has it)")  # fmt: skip
    parser.add_argument("--no-workers", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--journal", action="store_true", help="keep a SQLite journal in every run of part 1")
    args = parser.parse_args(argv)
    global JOURNAL
    JOURNAL = args.journal
    cost = file_cost(args.tasks, args.rounds)
    cost["lease_ops"] = lease_ops_cost()
    events = event_cost() if args.journal else None
    rows = [] if args.no_workers else workers_table(args.workers_tasks, args.step_seconds, args.max_workers)
    if args.json:
        print(json.dumps({"file": cost, "events": events, "workers": rows}))
        return 0
    journal = " with a SQLite journal" if args.journal else ""
    print(f"durable StorageFile{journal}, {cost['tasks']} sequential tasks, median of {cost['rounds']} rounds")
    print("| claim | us per task | overhead | CPU us per task | CPU overhead |")
    print("|---|---:|---:|---:|---:|")
    for name in ("none", "task", "workflow"):
        overhead = "" if name == "none" else f"{cost['overhead'][name] * 100:+.1f}%"
        cpu = "" if name == "none" else f"{cost['cpu_overhead'][name] * 100:+.1f}%"
        print(f"| {name} | {cost['us_per_task'][name]:.0f} | {overhead} | {cost['cpu_us_per_task'][name]:.0f} | {cpu} |")
    print("(overheads: medians of per-round ratios; each round ran the three back to back)")
    print("scope=workflow, added per run: " + ", ".join(f"{ms:.2f} ms at {n} tasks" for n, ms in cost["workflow_ms_per_run"].items()))
    print(f"one lease on StorageFile, alone: create {cost['lease_ops']['create_us']:.1f} us, delete "
          f"{cost['lease_ops']['delete_us']:.1f} us (median of 3 runs of 2,000)")
    recording = cost["recording"]
    if recording is not None:
        print(f"recording the claim events (scope=task, on vs off): {recording['overhead'] * 100:+.1f}% per task "
              f"({recording['us_per_task']:+.0f} us), CPU {recording['cpu_overhead'] * 100:+.1f}% "
              f"({recording['cpu_us_per_task']:+.0f} us)")
    if events is not None:
        print(f"claim events in the journal: {events['us_per_event']:.1f} us per event ({events['cpu_us_per_event']:.1f} us "
              "CPU), queued and written 128 to a transaction; a claimed task records two")
    if rows:
        print(f"\n{args.workers_tasks} independent tasks ({args.step_seconds}s each), parallel mode, Claim(on_held='skip')")
        print("| backend | workers | seconds | executions | each step once |")
        print("|---|---:|---:|---:|---|")
        for row in rows:
            print(f"| {row['backend']} | {row['workers']} | {row['seconds']:.2f} | {row['executions']} | {row['each_once']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
