"""A timed-out step never keeps the process alive (1.0.1's worker thread held the exit until the step ended)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dotflow.providers import StorageFile

pytestmark = pytest.mark.slow  # starts a process

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, sys, time
from dotflow import Config, DotFlow, action
from dotflow.providers import StorageFile

@action(timeout=0.2)
def stuck():
    time.sleep(60)
    return "late"

@action
def after():
    return "after"

storage = StorageFile(path=sys.argv[1])
flow = DotFlow(config=Config(storage=storage), workflow_id="stuck")
flow.task.add(step=[stuck, after])
flow.start(keep_going=True)
print(json.dumps([task.status for task in flow.result_task()]))
"""


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_the_process_exits_promptly_after_a_step_times_out(tmp_path: Path, mode: str) -> None:
    script = SCRIPT.replace("keep_going=True", f"keep_going=True, mode={mode!r}")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["Failed", "Completed"]
    assert elapsed < 20, f"the process waited {elapsed:.1f} s for the timed-out step"
    assert StorageFile(path=tmp_path).list_keys() == ["stuck-1-after.json"]  # no late checkpoint
