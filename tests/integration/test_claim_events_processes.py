"""Claim events from real processes land in the journal: children of `parallel` and `sequential_group`
tell theirs to the parent (no round trip), which queues them with the run's other journal writes; a
takeover of an expired lease in a child is recorded with the previous owner and how late it was; a
journal that cannot record claims in the parent fails no step; and two workers, one of them paused
(SIGSTOP) past its lease, leave the whole story in one shared journal. File, SQLite (the journal in
its own database, and in the storage's own), PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dotflow import Claim, Config, Context, DotFlow, action
from dotflow.core.types import TypeStatus
from dotflow.providers import StorageFile, StorageSQL
from dotflow.testing import ManualClock
from uow import Journal
from uow.outcomes import CLAIM_EXPIRED, CLAIM_LOST, CLAIM_RELEASED, CLAIM_TAKEN, CLAIM_TAKEN_OVER, COMMITTED

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@action
def work(initial_context: Context) -> str:
    return f"{initial_context.storage} by {os.getpid()}"


@pytest.fixture(params=["file", "sqlite", "sqlite-shared", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A storage (timed by `clock`, so a lease can be made to expire) and a journal beside it."""
    clock = ManualClock(time.time())
    name = request.param
    if name == "file":
        storage: Any = StorageFile(path=tmp_path / "store", clock=clock)
        journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    elif name == "sqlite":
        storage = StorageSQL(f"sqlite:///{tmp_path / 'checkpoints.db'}", clock=clock)
        journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    elif name == "sqlite-shared":  # each unit's entry is written in the storage's own transaction
        url = f"sqlite:///{tmp_path / 'both.db'}"
        storage = StorageSQL(url, clock=clock)
        journal = Journal(url)
        assert journal.shares(storage)
    else:
        url = request.getfixturevalue("schema_url_postgres")
        storage = StorageSQL(url, clock=clock)
        journal = Journal(url)
    yield {"storage": storage, "journal": journal, "clock": clock, "name": name}
    journal.close()
    if hasattr(storage, "close"):
        storage.close()


@pytest.fixture
def schema_url_postgres(postgres_url: str) -> str:
    from uow.journal_migrate import upgrade
    from uow.sql_engine import make_engine

    engine = make_engine(postgres_url)
    upgrade(engine)
    engine.dispose()
    return postgres_url


def key(storage: Any, task_id: str) -> str:
    return f"wf-{task_id}.json" if isinstance(storage, StorageFile) else f"wf-{task_id}"


def flow_of(place: dict[str, Any], tasks: int = 4) -> DotFlow:
    made = DotFlow(config=Config(storage=place["storage"], journal=place["journal"], max_workers=2), workflow_id="wf")
    for number in range(tasks):
        made.task.add(step=work, task_id=f"t{number}", initial_context=f"t{number}", group_name=f"g{number % 2}")
    return made


def stories(journal: Journal) -> dict[str | None, list[tuple[str, int]]]:
    found: dict[str | None, list[tuple[str, int]]] = {}
    for claim in journal.claims():
        found.setdefault(claim.task_id, []).append((claim.event, claim.epoch))
    return found


@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_each_childs_claims_land_in_the_parents_journal_once(place: dict[str, Any], mode: str) -> None:
    journal = place["journal"]
    manager = flow_of(place).start(resume=True, mode=mode, claim=Claim())
    assert [task.status for task in manager.tasks] == [TypeStatus.COMPLETED] * 4
    assert stories(journal) == {f"t{n}": [(CLAIM_TAKEN, 1), (CLAIM_RELEASED, 1)] for n in range(4)}
    claims = journal.claims()
    assert {c.run_id for c in claims} == {manager.persistence.run_id}
    # Taken and released in the children, each under its own owner id (a child may run several tasks).
    owners = {c.task_id: c.owner for c in claims if c.event == CLAIM_TAKEN}
    ran_in = {task.task_id: int(task.current_context.storage.split(" by ")[1]) for task in manager.tasks}
    assert all(int(owners[task].split(":")[1]) == pid != os.getpid() for task, pid in ran_in.items())
    assert [u.outcome for u in journal.units(run_id=manager.persistence.run_id)] == [COMMITTED] * 4


def test_a_takeover_in_a_child_is_recorded_with_the_previous_owner(place: dict[str, Any]) -> None:
    storage, clock, journal = place["storage"], place["clock"], place["journal"]
    storage.create_lease(key(storage, "t1"), owner="crashed:7:abc", ttl=5)  # a worker died holding it
    clock.advance(8)  # (the storage's clock: the lease is 3 s past its expiry)
    manager = flow_of(place).start(resume=True, mode="parallel", claim=Claim())
    assert [task.status for task in manager.tasks] == [TypeStatus.COMPLETED] * 4
    assert stories(journal)["t1"] == [(CLAIM_EXPIRED, 1), (CLAIM_TAKEN_OVER, 2), (CLAIM_RELEASED, 2)]
    expired, taken_over, _ = journal.claims(task_id="t1")
    assert expired.owner == "crashed:7:abc" and taken_over.previous_owner == "crashed:7:abc"
    assert expired.late == pytest.approx(3.0, abs=0.01) and taken_over.late == expired.late
    assert int(taken_over.owner.split(":")[1]) != os.getpid()  # taken over in a child


class Refusing(Journal):
    def record_claims(self, events: Any) -> None:
        raise RuntimeError("no room for claims")


def test_a_parent_journal_that_refuses_claims_fails_no_childs_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Refusing(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        place = {"storage": StorageFile(path=tmp_path / "store"), "journal": journal}
        with caplog.at_level(logging.WARNING):
            manager = flow_of(place).start(resume=True, mode="parallel", claim=Claim())
        assert [task.status for task in manager.tasks] == [TypeStatus.COMPLETED] * 4
        assert [u.outcome for u in journal.units()] == [COMMITTED] * 4
        assert "could not record 1 claim event(s): no room for claims" in caplog.text
        assert journal.claims() == []
    finally:
        journal.close()


# -- two workers, one paused past its lease ------------------------------------------------------------


def start_worker(spec: dict[str, Any], name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.claims_worker", json.dumps(spec)], cwd=ROOT,
        env={**os.environ, "WORKER_NAME": name}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def outcome(worker: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("backend", ["file", "sqlite"])
def test_a_paused_worker_and_the_one_that_took_over_tell_one_journal_the_whole_story(backend: str, tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    where = str(tmp_path / "store") if backend == "file" else f"sqlite:///{tmp_path / 'checkpoints.db'}"
    journal_url = f"sqlite:///{tmp_path / 'journal.db'}"
    Journal(journal_url).close()  # created once, before two processes race to create it
    spec = {
        "backend": backend, "where": where, "workflow": f"wf-{uuid.uuid4().hex[:8]}", "tasks": 1, "mode": "sequential",
        "ttl": 2.5, "on_held": "wait", "step_seconds": 1.0, "counts": str(counts), "journal": journal_url,
    }  # fmt: skip
    paused = start_worker(spec, "paused")
    try:
        deadline = time.monotonic() + 60
        while not counts.exists() and time.monotonic() < deadline:  # its step has started
            time.sleep(0.01)
        os.kill(paused.pid, signal.SIGSTOP)  # its heartbeat stops too: its lease runs out
        winner = outcome(start_worker({**spec, "step_seconds": 0.0}, "winner"))
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    late = outcome(paused)
    assert Counter(line.split()[0] for line in counts.read_text().splitlines()) == Counter({"t0": 2})
    journal = Journal(journal_url, read_only=True)
    try:
        by_run = {run_id: [(c.event, c.epoch) for c in journal.claims(run_id=run_id)]
                  for run_id in (late["run_id"], winner["run_id"])}  # fmt: skip
        owners = {c.owner for c in journal.claims(run_id=late["run_id"])}
    finally:
        journal.close()
    # The winner found the paused worker's lease expired, took it over (epoch 2), committed, released it.
    assert by_run[winner["run_id"]] == [(CLAIM_EXPIRED, 1), (CLAIM_TAKEN_OVER, 2), (CLAIM_RELEASED, 2)]
    # The paused worker took epoch 1; once awake, its lease was gone: lost (by its renewal or its
    # commit), then (SQL) it waited for the lease again and adopted the winner's checkpoint.
    story = by_run[late["run_id"]]
    assert story[0] == (CLAIM_TAKEN, 1) and story[1] == (CLAIM_LOST, 1) and story.count((CLAIM_LOST, 1)) == 1
    assert story[2:] in ([], [(CLAIM_TAKEN, 1), (CLAIM_RELEASED, 1)])
    assert len(owners) == 1 and late["tasks"][0]["restored"]
