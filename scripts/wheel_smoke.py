"""Smoke test of an installed wheel (run by scripts/wheel_smoke.sh, outside the checkout).

    python -I wheel_smoke.py

Checks that what it imports is the installed copy, then: a workflow on StorageFile with a SQLite
journal fails at its last step, a second run with resume=True skips the committed steps and
finishes; the journal's schema was created on first use without Alembic's command or alembic.ini;
`dotflow journal list`, `verify` and `upgrade` work; `uow` runs with `dotflow` unimportable. Prints
what it checked and exits non-zero at the first failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

WORKFLOW_ID = "wheel-smoke"
RAN: list[str] = []
FAIL = {"load": True}


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"wheel smoke FAILED: {what}")
    print(f"ok  {what}")


def installed_copy() -> None:
    import dotflow
    import uow
    from uow import journal_migrate

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for package in (dotflow, uow):
        where = Path(package.__file__ or "").resolve()
        check(where.is_relative_to(site), f"{package.__name__} is imported from the venv ({where})")
    check(journal_migrate.MIGRATIONS == site / "uow" / "migrations", f"migrations ship in the wheel ({journal_migrate.MIGRATIONS})")
    check(not any((site / name).exists() for name in ("migrations", "alembic.ini")), "no top-level migrations/ or alembic.ini")


def extras() -> None:
    import importlib

    for module in ("boto3", "google.cloud.storage", "sqlalchemy", "alembic", "rich", "psycopg"):
        importlib.import_module(module)
    from dotflow.providers import StorageGCS, StorageS3, StorageSQL

    check(all((StorageGCS, StorageS3, StorageSQL)), "the extras' providers import (s3, gcs, sql, postgres)")


def workflow(folder: Path) -> None:
    from dotflow import Config, DotFlow, action
    from dotflow.providers import LogDefault, StorageFile

    @action
    def extract():
        RAN.append("extract")
        return {"rows": [1, 2, 3]}

    @action
    def transform(previous_context):
        RAN.append("transform")
        return {"total": sum(previous_context.storage["rows"])}

    @action
    def load(previous_context):
        RAN.append("load")
        if FAIL["load"]:
            raise ConnectionError("warehouse unreachable (on purpose)")
        return {"loaded": previous_context.storage["total"]}

    journal = folder / "journal.db"
    check(not journal.exists(), "the journal's database does not exist before the first run")

    def run() -> list[str]:
        RAN.clear()
        log = LogDefault(output="file", path=folder / "flow.log")  # the task status lines, out of this report
        config = Config(storage=StorageFile(path=folder / "checkpoints"), journal=f"sqlite:///{journal}", log=log)
        flow = DotFlow(config=config, workflow_id=WORKFLOW_ID)
        flow.task.add(step=[extract, transform, load])
        flow.start(resume=True)
        return [str(task.status) for task in flow.result_task()]

    statuses = run()
    check(RAN == ["extract", "transform", "load"] and statuses[-1].lower().endswith("failed"),
          f"run 1 fails at load ({statuses})")  # fmt: skip
    FAIL["load"] = False
    statuses = run()
    check(RAN == ["load"], f"run 2 (resume) runs only load (ran: {RAN})")
    check(all(status.lower().endswith("completed") for status in statuses), f"run 2 completes ({statuses})")


def schema_without_alembic(folder: Path) -> None:
    import sqlite3

    from uow.journal_migrate import head_revision

    with sqlite3.connect(folder / "journal.db") as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    check(revision == head_revision(), f"the journal created its schema on first use, at head ({revision})")


def command_line(folder: Path) -> None:
    dotflow = Path(sys.executable).with_name("dotflow")
    url = f"sqlite:///{folder / 'journal.db'}"

    def run(*args: str, expect: int = 0) -> str:
        done = subprocess.run([str(dotflow), *args], capture_output=True, text=True, cwd=folder)
        if done.returncode != expect:
            check(False, f"dotflow {' '.join(args)} exits {expect}, not {done.returncode}: {done.stderr[-800:]}")
        return done.stdout

    units = json.loads(run("journal", "list", "--journal", url, "--workflow-id", WORKFLOW_ID, "--json"))
    outcomes = sorted(unit["outcome"] for unit in units)
    check(outcomes.count("committed") == 3 and "failed" in outcomes, f"journal list shows the units ({outcomes})")
    report = json.loads(run("journal", "verify", "--journal", url, "--storage", "file",
                            "--path", str(folder / "checkpoints"), "--json"))  # fmt: skip
    statuses = {finding["status"] for finding in report["findings"]}
    check(statuses == {"backed"} and len(report["findings"]) == 3, f"journal verify: every key backed ({statuses})")

    other = folder / "app.db"
    import sqlite3

    with sqlite3.connect(other) as connection:  # an application's database: refused until upgraded
        connection.execute("CREATE TABLE orders (id INTEGER)")
    connection.close()
    run("journal", "list", "--journal", f"sqlite:///{other}", expect=2)
    out = run("journal", "upgrade", "--journal", f"sqlite:///{other}")
    check("upgraded from an empty database" in out, f"journal upgrade creates the tables ({out.strip()})")
    run("journal", "list", "--journal", f"sqlite:///{other}")


UOW_ALONE = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "dotflow":
            raise ModuleNotFoundError(f"blocked: {name}", name=name)
sys.meta_path.insert(0, Refuse())
from uow import Journal, UnitOfWork
class Storage(dict):
    def post(self, key, context, ttl=None, fingerprint=None): self[key] = context
journal = Journal(sys.argv[1])
with UnitOfWork(Storage(), journal=journal, workflow_id="alone", task_id="0", attempt=1) as unit:
    unit.put("k", 1)
print([u.outcome for u in journal.units(workflow_id="alone")])
journal.close()
"""


def uow_alone(folder: Path) -> None:
    done = subprocess.run([sys.executable, "-I", "-c", UOW_ALONE, f"sqlite:///{folder / 'alone.db'}"],
                          capture_output=True, text=True, cwd=folder)  # fmt: skip
    check(done.returncode == 0 and done.stdout.strip() == "['committed']",
          f"uow.Journal works with dotflow blocked ({done.stdout.strip()}{done.stderr[-500:]})")  # fmt: skip


def main() -> None:
    installed_copy()
    extras()
    with tempfile.TemporaryDirectory(prefix="dotflow-wheel-smoke-") as name:
        folder = Path(name)
        os.chdir(folder)
        workflow(folder)
        schema_without_alembic(folder)
        command_line(folder)
        uow_alone(folder)
    print("wheel smoke passed")


if __name__ == "__main__":
    main()
