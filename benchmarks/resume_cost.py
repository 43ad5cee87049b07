"""What verified resume costs: a resume that restores every task, with and without the check.

    .venv/bin/python benchmarks/resume_cost.py [--tasks 200] [--rounds 15] [--history 0] [--reruns 0]

One workflow of N tasks runs once on a durable StorageFile with a SQLite journal; then, in
interleaved rounds, `start(resume=True)` restores all N tasks with the journal check
(`verify_resume=True`, the default: one query for every key, then a SHA-256 of each restored
checkpoint's encoding) and without it (`verify_resume=False`). Prints the median per restored
task of each, and the median of the paired per-round overheads (wall time, and CPU time, which
other work on a shared machine disturbs less). `--history RUNS` first records RUNS
runs of other workflows (as many tasks each) in the same journal, as a journal in use for a while
holds them; `--reruns RUNS` first runs this same workflow RUNS more times, as a scheduled workflow
does, so each restored key was written by every one of those runs.
`--drop-key-index` measures without the write-key index of revision 0003 (the journal before it).
`--breakdown` also times, inside the checked resumes, the whole check and the journal's part of it
(`Journal.last_writes`), in microseconds per restored key (wall time, medians).
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
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


def flow(folder: Path, journal: Journal, tasks: int, workflow_id: str = "resume-cost") -> DotFlow:
    built = DotFlow(config=Config(storage=StorageFile(path=folder), journal=journal), workflow_id=workflow_id)
    for _ in range(tasks):
        built.task.add(step=step)
    return built


def timed_resume(folder: Path, journal: Journal, tasks: int, verify: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one resume that restores every task."""
    built = flow(folder, journal, tasks)
    gc.collect()  # each side starts with no garbage left by the other (a full collection costs milliseconds)
    began, began_cpu = time.perf_counter(), time.process_time()
    built.start(resume=True, verify_resume=verify)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    assert all(task.restored for task in built.result_task())
    return elapsed, cpu


class Breakdown:
    """Wall time spent in the check (`_verify_restored`) and in its journal query (`Journal.last_writes`)."""

    def __init__(self) -> None:
        import dotflow.run.resume as resume

        self.check: list[float] = []
        self.journal: list[float] = []
        self._timed(resume, "_verify_restored", self.check)
        self._timed(Journal, "last_writes", self.journal)

    @staticmethod
    def _timed(owner: object, name: str, into: list[float]) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - began)

        setattr(owner, name, timed)


def fill_journal(url: str, scratch: Path, tasks: int, history: int, reruns: int) -> None:
    """Record `history` runs of other workflows, then `reruns + 1` runs of the measured one."""
    logging.disable(logging.INFO)
    journal = Journal(url)
    for run in range(history):
        flow(scratch / "history", journal, tasks, workflow_id=f"history-{run}").start()
    for _ in range(reruns + 1):
        flow(scratch / "out", journal, tasks).start()
    journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--drop-key-index", action="store_true", help="as before revision 0003")
    parser.add_argument("--reruns", type=int, default=0, metavar="RUNS", help="earlier runs of the same workflow")
    parser.add_argument("--history", type=int, default=0, metavar="RUNS", help="runs of other workflows recorded first")
    parser.add_argument("--breakdown", action="store_true", help="time the check and its journal query inside the resumes")
    args = parser.parse_args()
    breakdown = Breakdown() if args.breakdown else None
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "out"
        url = f"sqlite:///{Path(scratch) / 'journal.db'}"
        # The journal is filled by another process, as earlier runs would have: the measuring process
        # starts with none of their objects in memory (a bigger heap makes every garbage collection slower).
        filler = multiprocessing.get_context("spawn").Process(
            target=fill_journal, args=(url, Path(scratch), args.tasks, args.history, args.reruns)
        )
        filler.start()
        filler.join()
        assert filler.exitcode == 0, "filling the journal failed"
        journal = Journal(url)
        if args.drop_key_index:
            with journal.engine.begin() as connection:
                connection.exec_driver_sql("DROP INDEX ix_dotflow_journal_write_key")
        checked, unchecked, overheads, cpu_overheads = [], [], [], []
        for index in range(args.rounds + 1):
            order = (True, False) if index % 2 else (False, True)
            times = {verify: timed_resume(folder, journal, args.tasks, verify) for verify in order}
            if index == 0:
                continue  # warm-up
            checked.append(times[True][0] / args.tasks)
            unchecked.append(times[False][0] / args.tasks)
            overheads.append(times[True][0] / times[False][0] - 1)
            cpu_overheads.append(times[True][1] / times[False][1] - 1)
        journal.close()
    print(f"{args.tasks} restored tasks, {args.rounds} rounds, {args.history * args.tasks} writes of other workflows "
          f"and {args.reruns} earlier runs of this one in the journal")
    print(f"per restored task, checked:   {statistics.median(checked) * 1e6:.1f} us")
    print(f"per restored task, unchecked: {statistics.median(unchecked) * 1e6:.1f} us")
    print(f"fastest resume, checked against unchecked: {min(checked) / min(unchecked) - 1:+.1%}")
    print(f"median paired overhead of the check: {statistics.median(overheads) * 100:+.1f}% wall, "
          f"{statistics.median(cpu_overheads) * 100:+.1f}% CPU")
    if breakdown is not None:
        per_key = {name: statistics.median(times) / args.tasks * 1e6 for name, times in
                   (("check", breakdown.check), ("journal", breakdown.journal))}  # fmt: skip
        print(f"inside a checked resume, per key: the check {per_key['check']:.1f} us, of which the journal's "
              f"query {per_key['journal']:.1f} us (it also writes what the journal had queued: the run's start)")


if __name__ == "__main__":
    main()
