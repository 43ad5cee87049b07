"""The crash trials (tests/crash_trials.py) in CI: 20 trials per backend, each killing a workflow with
SIGKILL one or two times (at a random moment, or inside a commit) and resuming it in a new process.

Fewer tasks per trial than the script's default (10 instead of 100) keep the six backends at about two
minutes on two cores; `python -m tests.crash_trials` runs the full size.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.crash_trials import BACKENDS

pytestmark = pytest.mark.slow  # every trial forks workers; PostgreSQL, moto and fake-gcs-server run as processes

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", BACKENDS)
def test_20_crash_trials_lose_nothing_tear_nothing_and_rerun_no_committed_step(backend: str) -> None:
    # The harness runs in a process of its own: it forks the workers, and this one has threads.
    command = [sys.executable, "-m", "tests.crash_trials", "--backends", backend,
               "--trials", "20", "--tasks", "10", "--max-kills", "2", "--seed", "17"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=560)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-5000:]
    row = [cell.strip() for cell in done.stdout.strip().splitlines()[-1].strip("|").split("|")]
    name, trials, kills, re_executed, _, lost, torn, results, findings = row
    assert (name, trials, re_executed, lost, torn, results) == (backend, "20", "0", "0", "0", "ok")
    assert int(kills) >= 20
    classes = {entry.rsplit(" ", 1)[0] for entry in findings.split(", ")}
    assert classes <= {"backed", "unconfirmed"}  # what docs/journal.md says a crash may leave
