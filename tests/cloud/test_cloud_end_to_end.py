"""Workflows on S3 and GCS across processes: resume in a new process, and two runs racing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dotflow.core.types import TypeStatus

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def pipeline(cloud, tmp_path: Path, workflow_id: str, steps: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.cloud.cloud_pipeline", json.dumps(cloud.spec()), workflow_id,
            str(tmp_path / "runs.log"), str(steps), *extra]  # fmt: skip


def run(command: list[str]) -> list[dict]:
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def ran(tmp_path: Path) -> list[int]:
    return [int(line) for line in (tmp_path / "runs.log").read_text().split()]


@pytest.mark.parametrize("mode", ["sequential", "background"])
def test_a_new_process_resumes_after_a_failure_at_step_3(cloud, tmp_path, mode):
    first = run(pipeline(cloud, tmp_path, "e2e", 4, "--fail-at", "2", "--mode", mode))
    assert [t["status"] for t in first][:3] == [TypeStatus.COMPLETED, TypeStatus.COMPLETED, TypeStatus.FAILED]
    assert ran(tmp_path) == [0, 1, 2]
    storage = cloud.storage()
    assert storage.list_keys("e2e-") == ["e2e-link-0", "e2e-link-1"]  # the failure wrote nothing
    committed = [storage.get(f"e2e-link-{n}").storage for n in range(2)]

    second = run(pipeline(cloud, tmp_path, "e2e", 4, "--mode", mode))
    assert ran(tmp_path) == [0, 1, 2, 2, 3]  # steps 1-2 skipped, 3-4 ran
    assert [t["restored"] for t in second] == [True, True, False, False]
    assert [t["status"] for t in second] == [TypeStatus.COMPLETED] * 4
    assert [t["value"] for t in second[:2]] == committed
    assert second[2]["value"]["from"] == committed[1]["id"]  # step 3 continued from the stored step 2
    assert [storage.get(f"e2e-link-{n}").storage for n in range(4)] == [t["value"] for t in second]


def test_two_processes_on_one_workflow_leave_one_consistent_chain(cloud, tmp_path):
    steps = 20
    ready = tmp_path / "ready"
    ready.mkdir()
    command = pipeline(cloud, tmp_path, "chain", steps, "--ready", str(ready))
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = []
    for process in runs:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))

    storage = cloud.storage()
    stored = [storage.get(f"chain-link-{n}").storage for n in range(steps)]
    assert stored[0]["from"] is None
    for n in range(1, steps):
        assert stored[n]["from"] == stored[n - 1]["id"], f"link {n} was computed from another chain's link {n - 1}"
    for output in outputs:
        assert [t["status"] for t in output] == [TypeStatus.COMPLETED] * steps
        assert [t["value"] for t in output] == stored  # both runs end with the stored results
    ran_twice = len(ran(tmp_path)) - steps
    assert 0 <= ran_twice <= steps
