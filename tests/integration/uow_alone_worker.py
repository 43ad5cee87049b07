"""Uses `uow` with `dotflow` made unimportable (test_uow_without_dotflow.py); prints one JSON line.

usage: python uow_alone_worker.py FOLDER

A meta-path finder placed first refuses every `dotflow` module, so any import of it on the way
(the journal, its migrations' env.py, the upgrade command's code path) fails loudly.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
from pathlib import Path
from typing import Any


class RefuseDotflow(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "dotflow" or fullname.startswith("dotflow."):
            raise ModuleNotFoundError(f"dotflow is blocked in this process (imported: {fullname})", name=fullname)
        return None


sys.meta_path.insert(0, RefuseDotflow())


class DictStorage:
    """The smallest storage a unit of work and `Journal.verify` need."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[Any, str | None]] = {}

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.values[key] = (context, fingerprint)

    def get(self, key: str) -> Any:
        return self.values.get(key, (None, None))[0]

    def read_checkpoint(self, key: str) -> Any:
        if key not in self.values:
            return None
        context, fingerprint = self.values[key]
        return type("Stored", (), {"context": context, "fingerprint": fingerprint})()

    def list_keys(self, prefix: str = "") -> list[str]:
        return [key for key in self.values if key.startswith(prefix)]


def encode(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def main(folder: Path) -> None:
    from uow import Journal, UnitOfWork
    from uow.journal_migrate import current_revision, head_revision, upgrade
    from uow.sql_engine import make_engine

    storage = DictStorage()
    journal = Journal(f"sqlite:///{folder / 'journal.db'}", encode=encode)  # a new file: schema created here
    try:
        with UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0", attempt=1) as unit:
            unit.put("wf-0", {"rows": 3}, fingerprint="fp-0")
        try:
            with UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="1", attempt=1):
                raise RuntimeError("step failed")
        except RuntimeError:
            pass
        units = journal.units(workflow_id="wf", oldest_first=True)
        entry = journal.unit(unit.id)
        findings = journal.verify(storage)
    finally:
        journal.close()

    # `dotflow journal upgrade` runs this on a database that has no tables yet
    engine = make_engine(f"sqlite:///{folder / 'upgraded.db'}")
    try:
        engine.connect().close()  # the file now exists, so it is upgraded, not created
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()

    print(json.dumps({
        "outcomes": [(u.task_id, u.outcome) for u in units],
        "writes": [(w.key, w.operation, w.fingerprint) for w in (entry.writes if entry else ())],
        "verify": [(f.key, f.status) for f in findings],
        "upgrade": [before, after, head_revision()],
        "dotflow_loaded": sorted(name for name in sys.modules if name.split(".")[0] == "dotflow"),
    }))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
