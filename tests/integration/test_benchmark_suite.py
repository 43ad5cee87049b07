"""The performance suite runs end to end with tiny sizes, so it never rots (no timing is checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ROWS = [
    ("20 tasks, in memory", "this project"),
    ("20 tasks, in memory", "dotflow 1.0.1"),
    ("10 tasks, StorageFile (durable)", "this project"),
    ("10 tasks, StorageFile (no fsync)", "dotflow 1.0.1"),
    ("10 tasks, BatchStorage(StorageFile)", "this project"),
    ("10 tasks, StorageFile (durable) + SQLite journal", "this project"),
    ("10 x write + fsync + rename + folder fsync (the floor)", "-"),
    ("10 steps, `@DBOS.step` on its default SQLite", "DBOS Transact"),
    ("flat: 10 tasks, in memory", "this project"),
    ("flat: 30 tasks, in memory", "this project"),
]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first run installs dotflow 1.0.1 and DBOS into their own venvs
def test_the_suite_runs_and_reports_every_row(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--tiny", "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=1100,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    assert [(row[0], row[1]) for row in cells] == ROWS
    for row in cells:
        assert row[5] not in ("", "-"), row  # every row has a time per task
        assert "WRONG" not in row[-1], row
    by_row = {(row[0], row[1]): row for row in cells}
    # the counts are facts, not timings: 1 write and 0 reads per task here, 1 + 1 in dotflow 1.0.1
    for label in ("20 tasks, in memory", "10 tasks, StorageFile (durable)", "10 tasks, BatchStorage(StorageFile)",
                  "10 tasks, StorageFile (durable) + SQLite journal"):  # fmt: skip
        assert by_row[(label, "this project")][2:4] == ["1", "0"]
    assert by_row[("20 tasks, in memory", "dotflow 1.0.1")][2:4] == ["1", "1"]
    # the larger flat size is compared with the runs of the smaller one made around it, wall and CPU
    flat_notes = by_row[("flat: 30 tasks, in memory", "this project")][-1]
    assert "vs 10 tasks (" in flat_notes and ", run CPU " in flat_notes and "ratio of the medians" in flat_notes, flat_notes
    assert len(list(tmp_path.glob("*.suite.jsonl"))) == 1
