"""What verified resume costs: a resume that restores every task, with and without the check.

    .venv/bin/python benchmarks/resume_cost.py [--tasks 200] [--rounds 15]

One workflow of N tasks runs once on a durable StorageFile with a SQLite journal; then, in
interleaved rounds, `start(resume=True)` restores all N tasks with the journal check
(`verify_resume=True`, the default: one query for every key, then a SHA-256 of each restored
checkpoint's encoding) and without it (`verify_resume=False`). Prints the median per restored
task of each, and the median of the paired per-round overheads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dotflow import Config, DotFlow, action
from dotflow.providers import StorageFile
from uow import Journal


@action
def step(previous_context):  # type: ignore[no-untyped-def]
    return {"rows": [{"sku": "tea", "qty": 3, "price": "4.20"}] * 20}


def flow(folder: Path, journal: Journal, tasks: int) -> DotFlow:
    built = DotFlow(config=Config(storage=StorageFile(path=folder), journal=journal), workflow_id="resume-cost")
    for _ in range(tasks):
        built.task.add(step=step)
    return built


def timed_resume(folder: Path, journal: Journal, tasks: int, verify: bool) -> float:
    built = flow(folder, journal, tasks)
    began = time.perf_counter()
    built.start(resume=True, verify_resume=verify)
    elapsed = time.perf_counter() - began
    assert all(task.restored for task in built.result_task())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "out"
        journal = Journal(f"sqlite:///{Path(scratch) / 'journal.db'}")
        flow(folder, journal, args.tasks).start()
        checked, unchecked, overheads = [], [], []
        for index in range(args.rounds + 1):
            order = (True, False) if index % 2 else (False, True)
            times = {verify: timed_resume(folder, journal, args.tasks, verify) for verify in order}
            if index == 0:
                continue  # warm-up
            checked.append(times[True] / args.tasks)
            unchecked.append(times[False] / args.tasks)
            overheads.append(times[True] / times[False] - 1)
        journal.close()
    print(f"{args.tasks} restored tasks, {args.rounds} rounds")
    print(f"per restored task, checked:   {statistics.median(checked) * 1e6:.1f} us")
    print(f"per restored task, unchecked: {statistics.median(unchecked) * 1e6:.1f} us")
    print(f"median paired overhead of the check: {statistics.median(overheads) * 100:+.1f}%")


if __name__ == "__main__":
    main()
