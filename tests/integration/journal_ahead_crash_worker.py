"""A journalled workflow on a StorageFile killed (SIGKILL, by itself) right after a storage write.

usage: python -m tests.integration.journal_ahead_crash_worker FOLDER TASKS KILL_AT BATCH
Runs TASKS sequential tasks with a SQLite journal that records their intents ahead and writes
outcomes BATCH at a time; the process kills itself just after the KILL_AT-th checkpoint is written,
before that unit's outcome (and any still queued) reaches the journal (test_journal_ahead.py).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from dotflow import Config, DotFlow, action
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.storage.file import StorageFile
from uow import Journal


@action
def step(previous_context):  # type: ignore[no-untyped-def]
    return {"rows": [1, 2, 3]}


class KilledAfterWrite(StorageFile):
    def __init__(self, kill_at: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kill_at = kill_at
        self.posts = 0

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        super().post(key, context, ttl, fingerprint)
        self.posts += 1
        if self.posts == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def main(folder: Path, tasks: int, kill_at: int, batch: int) -> None:
    journal = Journal(f"sqlite:///{folder / 'journal.db'}", encode=checkpoint_bytes, batch_outcomes=batch)
    storage = KilledAfterWrite(kill_at, path=folder / "out")
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="ahead")
    flow.task.add(step=[step] * tasks)
    flow.start()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
