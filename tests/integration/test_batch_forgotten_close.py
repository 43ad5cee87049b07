"""A BatchStorage the program drops without close(): its acknowledged commits are durable by the time
the interpreter exits (a real process, which exits normally)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dotflow.providers import BatchStorage, StorageFile

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

PROGRAM = """
import gc, sys
from dotflow import Context
from dotflow.providers import BatchStorage, StorageFile
from uow import UnitOfWork

def commit_ten(path):
    storage = BatchStorage(StorageFile(path=path), max_batch=1000, max_delay=None)  # never closed
    states = []
    for number in range(10):
        with UnitOfWork(storage) as unit:
            unit.put(f"k{number}.json", Context(storage=number))
        states.append(unit.state)
    return states

print(",".join(commit_ten(sys.argv[1])))
gc.collect()  # the storage is unreachable now: collected, unless something keeps it until it is flushed
"""


def test_units_committed_through_a_storage_never_closed_are_durable_after_a_normal_exit(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [",".join(["committed"] * 10)]
    with BatchStorage(StorageFile(path=tmp_path), max_delay=None) as storage:
        assert [storage.get(f"k{number}.json").storage for number in range(10)] == list(range(10))
