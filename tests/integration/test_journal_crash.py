"""kill -9 at random points of a stream of commits: `verify` classifies every key, and never finds a
committed entry that points at a value that was not written."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dotflow.run.journal_config import checkpoint_bytes
from dotflow.storage.file import StorageFile
from uow import Journal
from uow.journal import BACKED, UNCONFIRMED

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_kill_9_during_commits_leaves_only_backed_or_unconfirmed_keys(tmp_path: Path) -> None:
    chooser = random.Random(7)
    for _ in range(6):
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.journal_crash_worker", str(tmp_path)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            time.sleep(chooser.uniform(0.05, 0.4))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            if worker.stdout is not None:
                worker.stdout.close()
        journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}", encode=checkpoint_bytes)
        try:
            findings = journal.verify(StorageFile(path=tmp_path / "out"))
            committed = len(journal.units(outcome="committed", limit=None))
        finally:
            journal.close()
        assert committed > 0
        assert len(findings) == 10
        assert {f.status for f in findings} <= {BACKED, UNCONFIRMED}, [f for f in findings if f.status not in (BACKED, UNCONFIRMED)]
