"""Commits units to a StorageFile with a SQLite journal until it is killed (test_journal_crash.py).

usage: python -m tests.integration.journal_crash_worker FOLDER
Prints "ready" once each of its ten keys has a committed unit, then keeps overwriting them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dotflow.core.context import Context
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.storage.file import StorageFile
from uow import Journal, UnitOfWork


def main(folder: Path) -> None:
    storage = StorageFile(path=folder / "out")
    journal = Journal(f"sqlite:///{folder / 'journal.db'}", encode=checkpoint_bytes)
    number = 0
    while True:
        unit = UnitOfWork(storage, journal=journal, workflow_id="crash", task_id=str(number % 10), attempt=1)
        unit.put(f"crash-{number % 10}.json", Context(storage={"n": number}), fingerprint="fp")
        unit.commit()
        if number == 9:  # every key written once: from now on verify always finds ten keys
            print("ready", flush=True)
        number += 1


if __name__ == "__main__":
    main(Path(sys.argv[1]))
