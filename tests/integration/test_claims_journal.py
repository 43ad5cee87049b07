"""Claims with a journal: a claimed commit on StorageSQL writes the checkpoint, its journal entry and the
lease's release in one transaction; `verify` never takes a lease for a checkpoint; a task adopted under a
claim leaves no unit behind (its reserved intent is released)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dotflow import Claim, Config, Context, DotFlow, action
from dotflow.providers import StorageFile, StorageSQL
from uow import Journal

RAN: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


@action
def one() -> int:
    RAN.append("one")
    return 1


@action
def two(previous_context: Context) -> int:
    RAN.append("two")
    return previous_context.storage + 1


def run(storage: object, journal: Journal, claim: Claim) -> DotFlow:
    flow = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="wf")
    flow.task.add(step=one)
    flow.task.add(step=two)
    flow.start(resume=True, claim=claim)
    return flow


@pytest.mark.parametrize("scope", ["task", "workflow"])
def test_a_claimed_run_on_sql_journals_each_commit_once_and_verifies_clean(schema_url: str, scope: str) -> None:
    storage = StorageSQL(schema_url)
    journal = Journal(schema_url)
    try:
        assert journal.shares(storage)  # the entry is written in the commit's transaction, with the lease check
        flow = run(storage, journal, Claim(scope=scope))
        assert flow.result_storage() == [1, 2] and RAN == ["one", "two"]
        storage.create_lease("wf-0-one", owner="someone", ttl=30)  # a live lease left in the table
        journal.flush()
        assert [(u.task_id, u.outcome) for u in journal.units(oldest_first=True)] == [("0-one", "committed"), ("1-two", "committed")]
        assert {f.key: f.status for f in journal.verify(storage)} == {"wf-0-one": "backed", "wf-1-two": "backed"}
        again = run(storage, journal, Claim(scope=scope, on_held="skip"))
        assert [task.restored for task in again.task.queue] == [True, True] and RAN == ["one", "two"]
    finally:
        journal.close()
        storage.close()


def test_a_task_adopted_under_its_claim_leaves_no_unit(tmp_path: Path) -> None:
    """The run planned to commit task one (its checkpoint was absent), then found it committed under
    the lease: it adopts it, and the intent reserved for it is released, not left unconfirmed."""
    storage = StorageFile(path=tmp_path / "store")
    journal = Journal(f"sqlite:///{tmp_path}/journal.db")
    create = storage.create_lease

    def commit_first(key: str, **kwargs: object) -> object:
        if key == "wf-0-one.json" and storage.read_checkpoint(key) is None:
            storage.post(key, Context(storage=10))  # another worker's commit, just before the lease
        return create(key, **kwargs)  # type: ignore[arg-type]

    storage.create_lease = commit_first  # type: ignore[method-assign]
    try:
        flow = run(storage, journal, Claim())
        assert flow.result_storage() == [10, 11] and RAN == ["two"]
        journal.flush()
        assert [(u.task_id, u.outcome) for u in journal.units(oldest_first=True)] == [("1-two", "committed")]
    finally:
        journal.close()
