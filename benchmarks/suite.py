"""The performance suite: this project vs dotflow 1.0.1, the fsync floor and DBOS Transact, one table.

Usage (from the repo root, with the project's venv):

    .venv/bin/python benchmarks/suite.py                 # 5 rounds, the sizes of issue 8
    .venv/bin/python benchmarks/suite.py --rounds 7 --flat 1000,10000
    .venv/bin/python benchmarks/suite.py --flat-only     # only the 1k / 10k / 100k rows
    .venv/bin/python benchmarks/suite.py --tiny          # tiny sizes, 1 round: checks that it runs

Every measurement runs in a process of its own (`perf_worker.py`, `dbos_worker.py`), so its peak RSS
is its own. A round runs every row once, in one order in odd rounds and the reverse in even ones;
the table shows medians over the rounds, and every ratio is the median of per-round ratios (each
pair ran in the same round, under the same machine load). The flat rows are paired tighter: each
larger size runs between `--flat-refs` runs of the smallest size just before it and as many just
after it, each a fresh process building and running its own workflow, and its per-round ratio
divides by the median of those 2 x `--flat-refs` neighbours (see `flat_ratio`); their workers run
with `--settle` (see perf_worker.py). dotflow 1.0.1 and DBOS Transact live in their own venvs
(`benchmarks/.venv-dotflow-1.0.1`, `benchmarks/.venv-dbos`), created on first use with pip. This project's `dotflow/` and `uow/` are copied to a temporary folder first, so editing
the work tree during a run cannot change what is measured. Raw JSON lines go to
`benchmarks/results/<stamp>.suite.jsonl`. Standard library only.

The file workloads run their tasks as `--file-slices` workflows (default 5: 1,000 tasks as 5
workflows of 200 on one storage), each between two slices of the floor measured in the same process,
so "ours / floor" pairs every workflow with the disk's speed at that moment (see perf_worker.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OLD_VENV = HERE / ".venv-dotflow-1.0.1"
DBOS_VENV = HERE / ".venv-dbos"
DBOS_REQUIREMENT = "dbos==3.4.0"


@dataclass(frozen=True)
class Row:
    """One line of the table: a workload run by one system."""

    name: str  # unique id, e.g. "mem-ours"
    workload: str  # perf_worker workload, or "dbos"
    system: str  # "ours", "dotflow-1.0.1", "floor", "dbos"
    tasks: int
    label: str
    pairs: dict[str, str] = field(default_factory=dict)  # ratio column -> name of the row to divide by
    flags: tuple[str, ...] = ()  # extra perf_worker arguments


def rows_for(mem: int, file: int, flat: list[int], with_old: bool, with_dbos: bool) -> list[Row]:
    file_pairs = {"floor": "floor"} | ({"dbos": "dbos"} if with_dbos else {})
    rows = [
        Row("mem-ours", "mem", "ours", mem, f"{mem:,} tasks, in memory", {"old": "mem-old"} if with_old else {}),
        Row("file-ours", "file", "ours", file, f"{file:,} tasks, StorageFile (durable)",
            file_pairs | ({"old": "file-old"} if with_old else {})),
        Row("batch-ours", "file_batch", "ours", file, f"{file:,} tasks, BatchStorage(StorageFile)",
            file_pairs | ({"old": "file-old"} if with_old else {}) | {"durable": "file-ours"}),
        Row("journal-ours", "file_journal", "ours", file, f"{file:,} tasks, StorageFile (durable) + SQLite journal",
            file_pairs | {"journal": "file-ours"}),
        Row("floor", "floor", "floor", file, f"{file:,} x write + fsync + rename + folder fsync (the floor)"),
    ]  # fmt: skip
    if with_old:
        rows.insert(1, Row("mem-old", "mem", "dotflow-1.0.1", mem, f"{mem:,} tasks, in memory"))
        rows.insert(3, Row("file-old", "file", "dotflow-1.0.1", file, f"{file:,} tasks, StorageFile (no fsync)"))
    if with_dbos:
        rows.append(Row("dbos", "dbos", "dbos", file, f"{file:,} steps, `@DBOS.step` on its default SQLite"))
    for size in flat:
        pairs = {"flat": f"flat-{flat[0]}"} if size != flat[0] else {}
        rows.append(Row(f"flat-{size}", "mem", "ours", size, f"flat: {size:,} tasks, in memory", pairs,
                        ("--settle",)))  # fmt: skip
    return rows


# The metrics a flat row compares with its reference runs: (key, label in the notes).
FLAT_METRICS = (
    ("build_us_per_task", "build"), ("run_us_per_task", "run"),
    ("build_cpu_us_per_task", "build CPU"), ("run_cpu_us_per_task", "run CPU"),
    ("run_cpu_outside_gc_us_per_task", "run CPU minus GC"),
)  # fmt: skip


SYSTEM_NAMES = {"ours": "this project", "dotflow-1.0.1": "dotflow 1.0.1", "floor": "-", "dbos": "DBOS Transact"}


# ------------------------------------------------------------------------------------------ venvs


def ensure_venv(venv: Path, requirement: str, probe: str) -> Path:
    """A venv at `venv` with `requirement` installed (created or repaired with pip); its python."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(python), "-I", "-c", probe], capture_output=True).returncode != 0:
        print(f"installing {requirement} into {venv} ...", file=sys.stderr)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"pip install {requirement} failed:\n{done.stdout}\n{done.stderr}")
    return python


def snapshot_ours(target: Path) -> None:
    for package in ("dotflow", "uow", "migrations"):  # (the journal creates its database from migrations/)
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))


# ---------------------------------------------------------------------------------------- running


class Runner:
    def __init__(self, ours_src: Path, old_python: Path | None, dbos_python: Path | None, file_slices: int) -> None:
        self.ours_src = ours_src
        self.file_slices = file_slices
        self.old_python = old_python
        self.dbos_python = dbos_python

    def command(self, row: Row) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WORKFLOW_ID")}
        if row.system == "dbos":
            assert self.dbos_python is not None
            return [str(self.dbos_python), "-I", str(HERE / "dbos_worker.py"), "--tasks", str(row.tasks)], env
        worker = [str(HERE / "perf_worker.py"), row.workload, "--tasks", str(row.tasks), *row.flags]
        if row.workload.startswith("file"):
            worker += ["--slices", str(min(self.file_slices, row.tasks))]
        if row.system == "dotflow-1.0.1":
            assert self.old_python is not None
            return [str(self.old_python), "-I", *worker], env
        env["PYTHONPATH"] = str(self.ours_src)
        return [sys.executable, "-s", *worker], env

    def run(self, row: Row) -> dict:
        command, env = self.command(row)
        done = subprocess.run(command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{row.name} failed (exit {done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            sys.exit(f"{row.name} printed no result:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return json.loads(lines[-1])


# ------------------------------------------------------------------------------------------- table


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def median_of(results: list[dict], metric: str) -> float | None:
    values = [r[metric] for r in results if r.get(metric) is not None]
    return statistics.median(values) if values else None


def paired(results: dict[str, list[dict]], name: str, other: str, metric: str = "run_us_per_task") -> float | None:
    """Median over rounds of this row's metric divided by the other row's, round by round."""
    mine = {r["round"]: r[metric] for r in results.get(name, [])}
    theirs = {r["round"]: r[metric] for r in results.get(other, [])}
    ratios = [mine[k] / theirs[k] for k in mine if theirs.get(k)]
    return statistics.median(ratios) if ratios else None


def flat_ratio(results: dict[str, list[dict]], name: str, metric: str) -> tuple[float, float, float] | None:
    """(median, lowest, highest) over rounds of this row's metric divided by the median of the same
    metric in the reference runs made just before and just after it (`reference` in its result)."""
    ratios = [r[metric] / r["reference"][metric] for r in results.get(name, [])
              if r.get(metric) is not None and r["reference"].get(metric)]  # fmt: skip
    return (statistics.median(ratios), min(ratios), max(ratios)) if ratios else None


def medians_ratio(results: dict[str, list[dict]], name: str, other: str, metric: str) -> float | None:
    """This row's median over all its runs divided by the other row's (a second view, unpaired)."""
    mine, theirs = median_of(results.get(name, []), metric), median_of(results.get(other, []), metric)
    return mine / theirs if mine is not None and theirs else None


def flat_notes(results: dict[str, list[dict]], row: Row) -> list[str]:
    notes = []
    if "flat" in row.pairs:
        parts = []
        for metric, label in FLAT_METRICS:
            got = flat_ratio(results, row.name, metric)
            if got is not None:
                parts.append(f"{label} {fmt(got[0])}x ({fmt(got[1])}-{fmt(got[2])})")
        unpaired = [medians_ratio(results, row.name, row.pairs["flat"], metric) for metric, _ in FLAT_METRICS[:2]]
        notes.append(f"vs {row.pairs['flat'].split('-')[1]} tasks (median of per-round ratios, lowest-highest): "
                     + ", ".join(parts)
                     + f"; ratio of the medians of all runs: build {fmt(unpaired[0])}x, run {fmt(unpaired[1])}x")  # fmt: skip
    got = results.get(row.name, [])
    gc_cpu = median_of(got, "run_gc_cpu_us_per_task")
    if gc_cpu is not None:
        full = median_of(got, "run_full_collections")
        notes.append(f"run: GC {fmt(gc_cpu)} us/task ({fmt(full)} full collections), "
                     f"{fmt(median_of(got, 'run_page_faults_per_task'))} page faults/task")  # fmt: skip
    growth = [(r["peak_rss_kb"] - r["rss_before_kb"]) * 1024 / r["tasks"] for r in got if "rss_before_kb" in r]
    if growth:
        notes.append(f"RSS growth {statistics.median(growth):,.0f} B/task")
    return notes


def floor_ratio(results: dict[str, list[dict]], row: Row) -> str:
    """Ours / floor, paired within each run (the worker measures the floor around its workflow)."""
    inside = [r["ours_over_floor"] for r in results.get(row.name, []) if "ours_over_floor" in r]
    if inside:
        return fmt(statistics.median(inside))
    return fmt(paired(results, row.name, row.pairs["floor"]))


def table(rows: list[Row], results: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| workload | system | writes / task | reads / task | build us/task | run us/task | ours / 1.0.1 "
        "| ours / floor | ours / DBOS | run CPU us/task | ours / 1.0.1 (CPU) | peak RSS (MB) | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        got = results.get(row.name, [])
        notes = []
        if row.system == "dotflow-1.0.1" and row.workload == "file":
            notes.append("no fsync, not atomic")
        if row.system == "ours" and row.workload == "file":
            notes.append("temp file, fsync, rename, folder fsync")
        if "durable" in row.pairs:
            speedup = paired(results, row.pairs["durable"], row.name)
            batches = median_of(got, "batches")
            notes.append(f"{fmt(speedup)}x the throughput of per-task durable commits")
            if batches is not None:
                notes.append(f"{fmt(batches)} segments fsync'd (default max_batch=100), no per-key file")
            closing = median_of(got, "close_us")
            if closing is not None:
                notes.append(f"close() {fmt(closing)} us (in the run's time)")
            compact = median_of(got, "compact_us")
            if compact is not None:
                notes.append(f"then, untimed: reopen {fmt(median_of(got, 'reopen_us'))} us, compact {fmt(compact)} us")
        medians = [r["ours_over_floor_median"] for r in got if "ours_over_floor_median" in r]
        if medians and row.system == "ours" and "durable" not in row.pairs:
            notes.append(f"median task / median floor write {fmt(statistics.median(medians))}x")
        if "journal" in row.pairs:
            cost = paired(results, row.name, row.pairs["journal"])
            notes.append(f"{fmt(cost)}x the time per task without the journal (issue 7: at most 1.25x)")
        if row.name.startswith("flat-"):
            notes.extend(flat_notes(results, row))
        if any(r.get("ok") is False for r in got):
            notes.append("**WRONG RESULT in some run**")
        rss = median_of(got, "peak_rss_kb")
        cells = [
            row.label,
            SYSTEM_NAMES[row.system],
            fmt(median_of(got, "writes_per_task")),
            fmt(median_of(got, "reads_per_task")),
            fmt(median_of(got, "build_us_per_task")),
            fmt(median_of(got, "run_us_per_task")),
            fmt(paired(results, row.name, row.pairs["old"])) if "old" in row.pairs else "",
            floor_ratio(results, row) if "floor" in row.pairs else "",
            fmt(paired(results, row.name, row.pairs["dbos"])) if "dbos" in row.pairs else "",
            fmt(median_of(got, "run_cpu_us_per_task")),
            fmt(paired(results, row.name, row.pairs["old"], "run_cpu_us_per_task")) if "old" in row.pairs else "",
            fmt(rss / 1024) if rss is not None else "-",
            "; ".join(notes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"--flat wants positive task counts separated by commas, not {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mem-tasks", type=int, default=2000)
    parser.add_argument("--file-tasks", type=int, default=1000)
    parser.add_argument("--flat", type=parse_sizes, default=[1000, 10000, 100000])
    parser.add_argument(
        "--file-slices", type=int, default=5, help="file workloads: workflows the tasks are split into, "
        "each between two slices of the floor (see perf_worker.py)"
    )  # fmt: skip
    parser.add_argument("--flat-refs", type=int, default=3,
                        help="runs of the smallest flat size just before and just after each larger one")  # fmt: skip
    parser.add_argument("--no-old", action="store_true", help="skip dotflow 1.0.1")
    parser.add_argument("--no-dbos", action="store_true", help="skip DBOS Transact")
    parser.add_argument("--flat-only", action="store_true", help="only the flat rows (implies --no-old --no-dbos)")
    parser.add_argument("--tiny", action="store_true", help="1 round, tiny sizes (a smoke test)")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="folder for the raw JSON lines")
    args = parser.parse_args(argv)
    if args.tiny:
        args.rounds, args.mem_tasks, args.file_tasks, args.flat, args.flat_refs = 1, 20, 10, [10, 30], 1
    if args.flat_refs < 1:
        parser.error("--flat-refs must be at least 1")

    if args.flat_only:
        args.no_old = args.no_dbos = True
    old_python = None if args.no_old else ensure_venv(
        OLD_VENV, "dotflow==1.0.1", "import sys, dotflow; sys.exit(dotflow.__version__ != '1.0.1')"
    )  # fmt: skip
    dbos_python = None if args.no_dbos else ensure_venv(DBOS_VENV, DBOS_REQUIREMENT, "import dbos")
    rows = rows_for(args.mem_tasks, args.file_tasks, args.flat, old_python is not None, dbos_python is not None)
    if args.flat_only:
        rows = [row for row in rows if row.name.startswith("flat-")]

    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    raw = args.results / f"{stamp}.suite.jsonl"
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="dotflow-suite-ours-") as ours_src:
        snapshot_ours(Path(ours_src))
        runner = Runner(Path(ours_src), old_python, dbos_python, args.file_slices)
        with open(raw, "w", encoding="utf-8") as out:
            def measure(row: Row, number: int, **extra: object) -> dict:
                result = runner.run(row) | {"round": number, "row": row.name, **extra}
                results.setdefault(row.name, []).append(result)
                out.write(json.dumps(result) + "\n")
                return result

            reference = next((row for row in rows if row.name == f"flat-{args.flat[0]}"), None)
            for number in range(1, args.rounds + 1):
                for row in rows if number % 2 else reversed(rows):
                    if row is reference:
                        continue  # it runs around each larger flat size instead
                    if "flat" not in row.pairs or reference is None:
                        measure(row, number)
                        continue
                    around = [measure(reference, number, around=row.name) for _ in range(args.flat_refs)]
                    result = runner.run(row) | {"round": number, "row": row.name}
                    around += [measure(reference, number, around=row.name) for _ in range(args.flat_refs)]
                    result["reference"] = {
                        metric: statistics.median(r[metric] for r in around)
                        for metric, _ in FLAT_METRICS
                        if all(r.get(metric) is not None for r in around)
                    }
                    results.setdefault(row.name, []).append(result)
                    out.write(json.dumps(result) + "\n")
                if reference is not None and len(args.flat) == 1:
                    measure(reference, number)  # a single flat size: no pair, just its row
                print(f"round {number}/{args.rounds} done", file=sys.stderr)

    print(f"Command: `{' '.join(['benchmarks/suite.py', *(argv if argv is not None else sys.argv[1:])])}`; "
          f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}; rounds: {args.rounds}; raw: {raw.relative_to(ROOT) if raw.is_relative_to(ROOT) else raw}")  # fmt: skip
    print()
    for line in table(rows, results):
        print(line)
    wrong = [name for name, got in results.items() if any(r.get("ok") is False for r in got)]
    if wrong:
        print(f"\nWARNING: wrong results in {', '.join(wrong)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
