"""Aggregate the JSON lines of workload.py (from both libraries) into one comparison table.

Usage: python compare.py RESULTS.jsonl [...] [--all]

For each (scenario, metric): the median over every round and repeat per library, and the ratio
ours / 1.0.1 of those medians. Timings also get the median of the per-round ratios (each round ran
both libraries back to back, so this pairs runs that saw the same machine load) and the min-max
range. Non-numeric metrics show the distinct values seen. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict

OURS, OLD = "ours", "dotflow-1.0.1"

# The rows shown by default, in this order; --all shows every metric.
DEFAULT_ROWS = [
    ("import", ["import_ms"]),
    ("seq_file", ["writes_per_task", "reads_per_task", "none_writes", "run_ms_per_task",
                  "files_on_disk", "bytes_on_disk", "result_ok"]),
    ("seq_mem", ["writes_per_task", "reads_per_task", "run_ms_per_task", "result_ok"]),
    ("resume_file", ["skipped", "executed", "writes_per_task", "reads_per_task", "other_key_calls",
                     "run_ms_per_task", "files_on_disk", "bytes_on_disk", "result_ok"]),
    ("resume_mem", ["skipped", "writes_per_task", "reads_per_task", "other_key_calls", "run_ms_per_task"]),
    ("fail_file", ["failed_status", "writes_on_failed_key", "none_writes_on_failed_key", "reads_on_failed_key",
                   "good_checkpoint_survived", "failed_key_reads_back_as", "rerun_ok_key_reads_back_as"]),
    ("fail_mem", ["failed_status", "writes_on_failed_key", "none_writes_on_failed_key", "reads_on_failed_key",
                  "good_checkpoint_survived", "failed_key_reads_back_as"]),
    ("parallel_file", ["writes_per_task", "writes_in_children", "reads_per_task", "run_ms_per_task",
                       "file_reads_back_as", "result_ok"]),
    ("parallel_mem", ["writes_per_task", "writes_in_children", "reads_per_task", "run_ms_per_task", "result_ok"]),
]  # fmt: skip


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_timing(metric: str) -> bool:
    return metric.endswith(("_ms", "_ms_per_task"))


def fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(ours: float, old: float) -> str:
    if old == 0:
        return "=" if ours == 0 else "n/a (1.0.1 is 0)"
    return f"{ours / old:.2f}"


def load(paths: list[str]) -> list[dict]:
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    sys.exit(f"{path}:{number}: not a JSON line ({exc})")
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--all", action="store_true", help="show every metric, not only the default rows")
    args = parser.parse_args()

    records = load(args.results)
    # values[(scenario, metric)][lib] -> list of (round, repeat, value)
    values: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    order: list[tuple[str, str]] = []
    runs: dict[str, set] = defaultdict(set)
    paths: dict[str, set] = defaultdict(set)
    for record in records:
        lib = record["lib"]
        runs[lib].add(record["round"])
        paths[lib].add(f"{record.get('dotflow_path')} (version {record.get('version')}, uow {record.get('uow')})")
        for metric, value in record["metrics"].items():
            key = (record["scenario"], metric)
            if key not in values:
                order.append(key)
            values[key][lib].append((record["round"], record.get("repeat", 0), value))

    missing = [lib for lib in (OURS, OLD) if lib not in runs]
    if missing:
        print(f"no results for {', '.join(missing)}", file=sys.stderr)
        return 1

    rows = order if args.all else [(s, m) for s, metrics in DEFAULT_ROWS for m in metrics if (s, m) in values]
    samples = {lib: len(values[("seq_file", "run_ms_per_task")].get(lib, [])) for lib in (OURS, OLD)}
    print(f"rounds: ours {len(runs[OURS])}, 1.0.1 {len(runs[OLD])}; "
          f"samples per timing row: ours {samples[OURS]}, 1.0.1 {samples[OLD]}")  # fmt: skip
    for lib in (OURS, OLD):
        print(f"{lib}: dotflow from {'; '.join(sorted(paths[lib]))}")
    broken = sorted({(r["lib"], r["scenario"]) for r in records
                     if r["metrics"].get("result_ok") is False or r["metrics"].get("all_completed") is False})  # fmt: skip
    for lib, scenario in broken:
        print(f"WARNING: {lib} {scenario}: some runs did not complete every task or got a wrong result")
    print()
    print(
        "| scenario | metric | ours | dotflow 1.0.1 | ours / 1.0.1 | paired ratio (median) | ours range | 1.0.1 range |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scenario, metric in rows:
        by_lib = values[(scenario, metric)]
        ours = [v for _, _, v in by_lib.get(OURS, [])]
        old = [v for _, _, v in by_lib.get(OLD, [])]
        if ours and old and all(map(is_number, ours + old)):
            mo, mb = statistics.median(ours), statistics.median(old)
            paired = ranges_o = ranges_b = ""
            if is_timing(metric):
                old_by_run = {(r, p): v for r, p, v in by_lib[OLD]}
                pairs = [v / old_by_run[(r, p)] for r, p, v in by_lib[OURS] if old_by_run.get((r, p))]
                paired = f"{statistics.median(pairs):.2f}" if pairs else ""
                ranges_o = f"{fmt(min(ours))}-{fmt(max(ours))}"
                ranges_b = f"{fmt(min(old))}-{fmt(max(old))}"
            print(
                f"| {scenario} | {metric} | {fmt(mo)} | {fmt(mb)} | {ratio(mo, mb)} | {paired} | {ranges_o} | {ranges_b} |"
            )
        else:
            seen_o = ", ".join(sorted({str(v) for v in ours})) or "-"
            seen_b = ", ".join(sorted({str(v) for v in old})) or "-"
            print(f"| {scenario} | {metric} | {seen_o} | {seen_b} | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
