"""What the SQLite journal costs per task on the durable StorageFile workload, side by side.

Each round runs the same workflow twice, back to back, in an order that alternates between rounds:
N sequential tasks on a fresh `StorageFile` folder, once without a journal and once with
`Config(journal="sqlite:///<fresh file>")` (created at the schema head before the clock starts, so
only recording is timed). It prints the median time per task of each, the overhead of the median,
and the median of the per-round overheads (each pair ran under the same machine load); the same
for CPU time (less disturbed by other work on the machine and by the disk than wall time); and
what the journal adds to one unit of work committed on the in-memory `StorageDefault`, where no
fsync drowns it (fresh journal file per 100 units, median of 20 rounds). The workflow runs record
their intents ahead and their outcomes in batches (one journal transaction per 64 tasks); the
units committed on their own take the per-unit path (one transaction each), so the last figure
is the cost of that path, not of a run's.

Usage: .venv/bin/python benchmarks/journal_cost.py [--tasks 50] [--rounds 15] [--json]
The cost target of the journal is at most +25% per task.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dotflow import Config, DotFlow, action
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.providers import StorageFile
from uow import Journal

__all__ = ["main"]


@action
def step(previous_context):  # type: ignore[no-untyped-def]
    return {"rows": list(range(20)), "from": str(previous_context.storage)[:20]}


def one_run(tasks: int, with_journal: bool) -> tuple[float, float]:
    """Seconds per task (wall, CPU) of one run of `tasks` sequential tasks on a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="dotflow-journal-bench-") as folder:
        journal = Journal(f"sqlite:///{folder}/journal.db", encode=checkpoint_bytes) if with_journal else None
        try:
            flow = DotFlow(config=Config(storage=StorageFile(path=Path(folder, "out")), journal=journal),
                           workflow_id="bench")  # fmt: skip
            flow.task.add(step=[step] * tasks)
            began, began_cpu = time.perf_counter(), time.process_time()
            flow.start()
            elapsed, cpu = time.perf_counter() - began, time.process_time() - began_cpu
            assert all(str(task.status) == "Completed" for task in flow.result_task())
            if journal is not None:
                assert len(journal.units(limit=None)) == tasks
        finally:
            if journal is not None:
                journal.close()
    return elapsed / tasks, cpu / tasks


def unit_cost_us(units: int = 100, rounds: int = 20) -> float:
    """Microseconds the journal adds to one unit of work on `StorageDefault` (median of `rounds`)."""
    from dotflow.core.context import Context
    from dotflow.providers import StorageDefault
    from uow import UnitOfWork

    value = Context(storage={"rows": list(range(20)), "from": "x" * 20})

    def commit_units(journal: Journal | None) -> float:
        storage = StorageDefault()
        began = time.perf_counter()
        for i in range(units):
            with UnitOfWork(storage, journal=journal, workflow_id="bench", task_id=f"{i}-step", attempt=1) as unit:
                unit.put(f"bench-{i}-step", value, fingerprint="f" * 64)
        if journal is not None:
            journal.flush()
        return (time.perf_counter() - began) / units

    added = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="dotflow-journal-bench-") as folder:
            journal = Journal(f"sqlite:///{folder}/journal.db", encode=checkpoint_bytes)
            try:
                plain = commit_units(None)
                added.append(commit_units(journal) - plain)
            finally:
                journal.close()
    return statistics.median(added) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    one_run(5, False), one_run(5, True)  # warm-up: imports, first file system touches
    plain: list[float] = []
    journalled: list[float] = []
    plain_cpu: list[float] = []
    journalled_cpu: list[float] = []
    for round_number in range(args.rounds):
        order = (False, True) if round_number % 2 == 0 else (True, False)
        for with_journal in order:
            wall, cpu = one_run(args.tasks, with_journal)
            (journalled if with_journal else plain).append(wall)
            (journalled_cpu if with_journal else plain_cpu).append(cpu)
    ratios = [j / p for j, p in zip(journalled, plain)]
    cpu_ratios = [j / p for j, p in zip(journalled_cpu, plain_cpu)]
    result = {
        "tasks": args.tasks,
        "rounds": args.rounds,
        "ms_per_task_without_journal": round(statistics.median(plain) * 1000, 3),
        "ms_per_task_with_journal": round(statistics.median(journalled) * 1000, 3),
        "overhead_of_medians_pct": round((statistics.median(journalled) / statistics.median(plain) - 1) * 100, 1),
        "median_paired_overhead_pct": round((statistics.median(ratios) - 1) * 100, 1),
        "paired_overhead_range_pct": [round((min(ratios) - 1) * 100, 1), round((max(ratios) - 1) * 100, 1)],
        "cpu_ms_per_task_without_journal": round(statistics.median(plain_cpu) * 1000, 3),
        "cpu_ms_per_task_with_journal": round(statistics.median(journalled_cpu) * 1000, 3),
        "cpu_median_paired_overhead_pct": round((statistics.median(cpu_ratios) - 1) * 100, 1),
        "us_added_per_unit_on_storage_default": round(unit_cost_us(), 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:32} {value}")
        print("target: journal overhead <= 25% per task", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
