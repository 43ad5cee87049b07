"""`dotflow journal verify` never takes a lease record for a checkpoint, nor for a missing one.

A claimed run leaves no lease behind, so each storage here is also given the leases a crash or a
live worker leaves: one on a committed checkpoint, one on a task that never committed (its worker
died mid-step), a workflow's lease, and (file) a torn lease file. Verify, asked every way the
command line asks (by run, by workflow, the whole storage), reports each checkpoint and nothing
else: file and SQL through the command line, S3 and GCS (under a prefix) through `Journal.verify`.
The claim events the journal holds are not keys either."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dotflow import Claim, Config, DotFlow, action
from dotflow.cli import main
from dotflow.providers import StorageFile, StorageSQL
from dotflow.run.journal_config import checkpoint_bytes
from uow import LEASE_SUFFIX, Journal
from uow.outcomes import BACKED, CLAIM_RELEASED, CLAIM_TAKEN


@action
def step() -> int:
    return 1


def claimed_run(storage: Any, journal: Journal) -> str:
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="wf")
    flow.task.add(step=step)
    flow.task.add(step=step)
    manager = flow.start(resume=True, claim=Claim())
    assert [c.event for c in journal.claims()] == [CLAIM_TAKEN, CLAIM_RELEASED] * 2
    return str(manager.persistence.run_id)


def leave_leases(storage: Any, committed_key: str, never_committed_key: str) -> None:
    storage.create_lease(committed_key, owner="live-worker", ttl=600)
    storage.create_lease(never_committed_key, owner="dead-worker", ttl=600)
    storage.create_lease("wf", owner="whole-workflow", ttl=600)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    status = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert err == "" or status != 0, err
    return status, json.loads(out) if out else None


@pytest.mark.parametrize("backend", ["file", "sql"])
def test_verify_counts_no_lease_as_a_checkpoint_or_a_missing_one(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    journal = Journal(url, encode=checkpoint_bytes)
    if backend == "file":
        storage: Any = StorageFile(path=tmp_path / "store")
        keys = ["wf-0-step.json", "wf-1-step.json"]
        options = ["-o", "file", "-p", str(tmp_path / "store")]
    else:
        storage = StorageSQL(f"sqlite:///{tmp_path / 'checkpoints.db'}")
        keys = ["wf-0-step", "wf-1-step"]
        options = ["-o", "sql", "--storage-url", f"sqlite:///{tmp_path / 'checkpoints.db'}"]
    try:
        run_id = claimed_run(storage, journal)
        leave_leases(storage, keys[0], keys[0].replace("0-step", "2-never"))
    finally:
        journal.close()
    capsys.readouterr()  # (the run's log lines)
    if backend == "file":
        (tmp_path / "store" / "tasks" / f"wf-3-torn.json{LEASE_SUFFIX}").write_bytes(b'{"format": "dotflow-le')
    for asked in (["--run", run_id], ["--workflow-id", "wf"], options, [*options, "--workflow-id", "wf"]):
        status, report = cli(capsys, "journal", "verify", "--journal", url, *asked)
        assert status == 0, (asked, report)
        assert [(f["key"], f["status"]) for f in report["findings"]] == [(key, BACKED) for key in keys], asked
        assert report["checked"] == 2 and report["problems"] == 0 and report["unconfirmed"] == 0
    if backend == "sql":
        storage.close()


@pytest.mark.slow
def test_verify_on_object_stores_under_a_prefix_lists_no_lease(cloud: Any, tmp_path: Path) -> None:
    storage = cloud.storage(prefix="team/")
    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}", encode=checkpoint_bytes)
    try:
        claimed_run(storage, journal)
        leave_leases(storage, "wf-0-step", "wf-2-never")
        assert any(name.endswith(LEASE_SUFFIX) for name in cloud.names())  # they are there, under the prefix
        for prefix in ("", "wf-"):
            findings = journal.verify(storage, prefix=prefix)
            assert [(f.key, f.status) for f in findings] == [("wf-0-step", BACKED), ("wf-1-step", BACKED)], prefix
    finally:
        journal.close()
