"""StorageFile under kill -9: a reader only ever sees a whole checkpoint, old or new, never a torn one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dotflow.storage.file import StorageFile

pytestmark = pytest.mark.slow  # starts and kills writer processes

WRITER = """
import sys
from dotflow import Context
from dotflow.storage.file import StorageFile

storage = StorageFile(path=sys.argv[1])
print("ready", flush=True)
n = int(sys.argv[2])
while True:
    n += 1
    # about 1 MB per write, so a kill often lands mid-write
    storage.post(key="wf-task", context=Context(storage={"n": n, "blob": "x" * 1_000_000, "tail": n}))
"""


def test_kill_during_writes_never_leaves_a_torn_checkpoint(tmp_path: Path):
    key_file = tmp_path / "tasks" / "wf-task"
    seen: list[int] = []
    for round_ in range(30):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(round_ * 1_000_000)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while round_ == 0 and not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # the first round lets one write land, so every later read must find one
        time.sleep(0.02 + 0.007 * round_)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
        writer.stdout.close()

        # A torn file would read as missing (or fail to decode): both are failures here.
        value = StorageFile(path=tmp_path).get(key="wf-task").storage
        assert value is not None, f"round {round_}: the checkpoint was lost"
        assert value["n"] == value["tail"]
        assert len(value["blob"]) == 1_000_000
        seen.append(value["n"])
    assert seen == sorted(seen)  # never went back to an older value
    # temp files of killed writes are never mistaken for keys
    assert StorageFile(path=tmp_path).list_keys() == ["wf-task"]
