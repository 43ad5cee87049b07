"""resume=True in a NEW process skips the tasks an earlier process committed (1.0.1 cannot: D1)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here starts processes

ROOT = Path(__file__).resolve().parents[2]


def run_pipeline(tmp_path: Path, workflow_id: str, *extra: str) -> list[dict]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.integration.resumable_pipeline",
         str(tmp_path / "store"), workflow_id, str(tmp_path / "runs.log"), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs.log").read_text().split()


@pytest.mark.parametrize("mode", ["sequential", "sequential_group", "background"])
def test_second_process_skips_what_the_first_committed(tmp_path, mode):
    mode_args = ["--mode", mode]
    workflow_id = str(uuid.uuid4())

    first = run_pipeline(tmp_path, workflow_id, "--fail-at", "load", *mode_args)
    assert [t["status"] for t in first] == ["Completed", "Completed", "Failed"]
    assert runs(tmp_path) == ["extract", "transform", "load"]

    second = run_pipeline(tmp_path, workflow_id, *mode_args)
    assert runs(tmp_path) == ["extract", "transform", "load", "load"]  # only load ran again
    assert [t["restored"] for t in second] == [True, True, False]
    assert [t["status"] for t in second] == ["Completed"] * 3
    # values restored from the file round-trip exactly (Decimal, dict), so load computes the same total
    assert second[2]["value"] == "{'day': datetime.date(2026, 11, 27), 'total': Decimal('20.48')}"

    third = run_pipeline(tmp_path, workflow_id, *mode_args)
    assert [t["restored"] for t in third] == [True, True, True]
    assert runs(tmp_path) == ["extract", "transform", "load", "load"]
    assert third[2]["value"] == second[2]["value"]


def test_checkpoint_files_hold_one_value_each(tmp_path):
    workflow_id = str(uuid.uuid4())
    run_pipeline(tmp_path, workflow_id)
    run_pipeline(tmp_path, workflow_id)
    files = sorted(p.name for p in (tmp_path / "store" / "tasks").iterdir() if p.name != ".lock")
    assert files == [f"{workflow_id}-{i}-{name}.json" for i, name in enumerate(["extract", "transform", "load"])]
    body = json.loads((tmp_path / "store" / "tasks" / files[0]).read_text())
    assert isinstance(body, dict)  # one value, never an appended list (D4)
