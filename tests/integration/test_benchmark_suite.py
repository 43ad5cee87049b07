"""The performance suite runs end to end with tiny sizes, so it never rots (no timing is checked).

Our rows run everywhere. A peer's rows (dotflow 1.0.1, DBOS Transact: each in a venv of its own,
installed with pip on first use) run only where that peer can run: one tiny measurement of it first,
through the suite's own code, and the peer's test is skipped with the peer's error when that fails
(DBOS 3.4.0's own SQLite set-up fails on Python 3.13.0, for example). A failure of ours never skips.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import platform
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "benchmarks" / "suite.py"

OURS = "this project"
PEERS = {"dotflow-1.0.1": "dotflow 1.0.1", "dbos": "DBOS Transact"}
ROWS = [
    ("20 tasks, in memory", OURS),
    ("20 tasks, in memory", "dotflow 1.0.1"),
    ("10 tasks, StorageFile (durable)", OURS),
    ("10 tasks, StorageFile (no fsync)", "dotflow 1.0.1"),
    ("10 tasks, BatchStorage(StorageFile)", OURS),
    ("10 tasks, StorageFile (durable) + SQLite journal", OURS),
    ("10 x write + fsync + rename + folder fsync (the floor)", "-"),
    ("10 steps, `@DBOS.step` on its default SQLite", "DBOS Transact"),
    ("flat: 10 tasks, in memory", OURS),
    ("flat: 30 tasks, in memory", OURS),
]
ONE_WRITE = ("20 tasks, in memory", "10 tasks, StorageFile (durable)", "10 tasks, BatchStorage(StorageFile)",
             "10 tasks, StorageFile (durable) + SQLite journal")  # fmt: skip


def run_suite(results: Path, *flags: str) -> dict[tuple[str, str], list[str]]:
    """The suite's table, row by row: (workload, system) -> cells."""
    done = subprocess.run(
        [sys.executable, str(SUITE), "--tiny", "--results", str(results), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=1100,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    assert len(list(results.glob("*.suite.jsonl"))) == 1
    for row in cells:
        assert row[5] not in ("", "-"), row  # every row has a time per task
        assert "WRONG" not in row[-1], row
    return {(row[0], row[1]): row for row in cells}


def check_our_rows(by_row: dict[tuple[str, str], list[str]]) -> None:
    # the counts are facts, not timings: 1 write and 0 reads per task
    for label in ONE_WRITE:
        assert by_row[(label, OURS)][2:4] == ["1", "0"]
    # the larger flat size is compared with the runs of the smaller one made around it, wall and CPU
    flat_notes = by_row[("flat: 30 tasks, in memory", OURS)][-1]
    assert "vs 10 tasks (" in flat_notes and ", run CPU " in flat_notes and "ratio of the medians" in flat_notes, flat_notes


@pytest.mark.slow
def test_our_rows_run_without_any_peer(tmp_path: Path) -> None:
    by_row = run_suite(tmp_path, "--no-old", "--no-dbos")
    assert list(by_row) == [row for row in ROWS if row[1] not in PEERS.values()]
    check_our_rows(by_row)
    assert all(by_row[(label, OURS)][6] == "" for label in ONE_WRITE)  # no peer: no "ours / 1.0.1" ratio


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first run installs the peer into its own venv
@pytest.mark.parametrize("peer", list(PEERS))
def test_a_peers_rows_where_the_peer_runs(peer: str, tmp_path: Path) -> None:
    problem = peer_problem(peer)
    if problem is not None:
        pytest.skip(f"{PEERS[peer]} cannot run on Python {platform.python_version()} here: {problem}")
    without = "--no-dbos" if peer == "dotflow-1.0.1" else "--no-old"
    by_row = run_suite(tmp_path, without)
    assert list(by_row) == [row for row in ROWS if row[1] in (OURS, "-", PEERS[peer])]
    check_our_rows(by_row)
    if peer == "dotflow-1.0.1":
        assert by_row[("20 tasks, in memory", "dotflow 1.0.1")][2:4] == ["1", "1"]  # 1.0.1 reads back each write
        assert by_row[("20 tasks, in memory", OURS)][6] not in ("", "-")  # the "ours / 1.0.1" ratio
    else:
        assert by_row[("10 tasks, StorageFile (durable)", OURS)][8] not in ("", "-")  # the "ours / DBOS" ratio


def peer_problem(peer: str) -> str | None:
    """Why `peer` cannot run here (its venv cannot be installed, or one task of it fails), or None.

    Uses the suite's own functions: the same venv, the same worker command as the real run.
    """
    suite = _load_suite()
    try:
        if peer == "dbos":
            old, dbos = None, suite.ensure_venv(suite.DBOS_VENV, suite.DBOS_REQUIREMENT, "import dbos")
        else:
            probe = "import sys, dotflow; sys.exit(dotflow.__version__ != '1.0.1')"
            old, dbos = suite.ensure_venv(suite.OLD_VENV, "dotflow==1.0.1", probe), None
        row = next(row for row in suite.rows_for(1, 1, [1], old is not None, dbos is not None) if row.system == peer)
        suite.Runner(ROOT, old, dbos, 1).run(dataclasses.replace(row, tasks=1))
    except SystemExit as stop:  # the suite exits with the peer's error text: name its exception
        lines = [line.strip() for line in str(stop.code).splitlines() if line.strip()]
        errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception)\b.*:", line)]
        return (errors or lines or [f"exit status {stop.code}"])[-1]
    return None


def _load_suite() -> ModuleType:
    name = "benchmarks_suite_under_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SUITE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up while it runs
        spec.loader.exec_module(module)
    return sys.modules[name]
