"""`uow` runs with `dotflow` unimportable: the journal creates its schema, records, answers queries
and verifies, and the migrations upgrade a database (the code path of `dotflow journal upgrade`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("uow_alone_worker.py")


@pytest.mark.slow
def test_the_journal_and_its_migrations_never_import_dotflow(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["outcomes"] == [["0", "committed"], ["1", "failed"]]
    assert report["writes"] == [["wf-0", "put", "fp-0"]]
    assert report["verify"] == [["wf-0", "backed"]]
    before, after, head = report["upgrade"]
    assert before is None and after == head
    assert report["dotflow_loaded"] == []
