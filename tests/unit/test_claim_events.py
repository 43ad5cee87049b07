"""The journal records what happens to claims: a lease taken and released, an expired one taken over,
a renewal made late, a lease lost. Events go through the run (`RunPersistence.claim_event`), are queued
with the journal's other writes (no transaction of their own), and a journal that cannot record them
never fails or re-runs a step. Memory and file storage with injected clocks: no test waits for a lease."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from dotflow import Claim, Config, Context, DotFlow
from dotflow.core.types import TypeStatus
from dotflow.run.claims import LATE_RENEWAL, Claims
from dotflow.storage.file import StorageFile
from dotflow.storage.memory import StorageDefault
from dotflow.testing import ManualClock
from tests.claim_steps import DURING, RAN, first, second
from uow import ClaimEvent, Journal, JournalCapabilities, RunPersistence
from uow.journal_writer import JournalWriter
from uow.outcomes import (
    CLAIM_EXPIRED,
    CLAIM_LOST,
    CLAIM_RELEASED,
    CLAIM_RENEWED_LATE,
    CLAIM_TAKEN,
    CLAIM_TAKEN_OVER,
    COMMITTED,
)

RUNS: list[Any] = []  # the managers of the runs a test made


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> None:
    RAN.clear()
    RUNS.clear()
    DURING.clear()
    monkeypatch.setattr(Claims, "heartbeat_thread", False)  # renewals only when a test calls beat()


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Any:
    if request.param == "memory":
        return StorageDefault(clock=clock)
    return StorageFile(path=tmp_path / "store", clock=clock)


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    opened = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    yield opened
    opened.close()


def key(storage: Any, task_id: str) -> str:
    return f"wf-{task_id}.json" if isinstance(storage, StorageFile) else f"wf-{task_id}"


def run(storage: Any, journal: Any, clock: ManualClock, **options: Any) -> DotFlow:
    made = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="wf")
    made.task.add(step=first)
    made.task.add(step=second)
    options.setdefault("wait_timeout", 3600)
    RUNS.append(made.start(resume=True, claim=Claim(clock=clock, sleep=clock.advance, **options)))
    return made


def events(journal: Journal, **filters: Any) -> list[tuple[Any, ...]]:
    return [(c.task_id, c.event, c.epoch) for c in journal.claims(**filters)]


@pytest.fixture
def made_claims(monkeypatch: pytest.MonkeyPatch) -> list[Claims]:
    """Every `Claims` a run makes during the test: how a step reaches its own worker's claims."""
    made: list[Claims] = []
    original = Claims.__init__

    def keep(self: Claims, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Claims, "__init__", keep)
    return made


def take_over_and_commit(storage: Any, clock: ManualClock) -> None:
    """Another worker, once the first step's lease (ttl 30) has expired: takes it over, commits, releases."""
    clock.advance(31)
    seen = storage.read_lease("wf-0-first")
    taken = storage.replace_lease("wf-0-first", version=seen.version, owner="worker-b", epoch=2, ttl=30)
    storage.post("wf-0-first", Context(storage="winner-value"))
    storage.delete_lease("wf-0-first", version=taken.version)


def test_each_task_records_its_lease_taken_then_released(storage: Any, journal: Journal, clock: ManualClock) -> None:
    run(storage, journal, clock)
    run_id = RUNS[0].persistence.run_id
    recorded = journal.claims()
    assert events(journal) == [("0-first", CLAIM_TAKEN, 1), ("0-first", CLAIM_RELEASED, 1),
                               ("1-second", CLAIM_TAKEN, 1), ("1-second", CLAIM_RELEASED, 1)]  # fmt: skip
    assert {c.run_id for c in recorded} == {run_id} and {c.workflow_id for c in recorded} == {"wf"}
    assert [c.key for c in recorded[:2]] == [key(storage, "0-first")] * 2
    assert len({c.owner for c in recorded}) == 1 and recorded[0].owner.count(":") == 2
    assert all(c.previous_owner is None and c.late is None for c in recorded)
    assert [c.at for c in recorded] == sorted(c.at for c in recorded)
    assert events(journal, task_id="1-second") == [("1-second", CLAIM_TAKEN, 1), ("1-second", CLAIM_RELEASED, 1)]
    assert journal.count_claims(run_id=run_id) == 4 and journal.count_claims(event=CLAIM_TAKEN) == 2


def test_a_workflow_claim_is_recorded_without_a_task(storage: Any, journal: Journal, clock: ManualClock) -> None:
    """Its release (after the commits are durable) is written with the run's end: another reader sees it."""
    run(storage, journal, clock, scope="workflow")
    reader = Journal(journal.url, read_only=True)
    try:
        assert events(reader) == [(None, CLAIM_TAKEN, 1), (None, CLAIM_RELEASED, 1)]
        assert {c.key for c in reader.claims()} == {"wf"}
    finally:
        reader.close()


@pytest.mark.parametrize("scope", ["task", "workflow"])
def test_a_background_run_records_its_claims_by_the_time_its_thread_ends(
    scope: str, storage: Any, journal: Journal, clock: ManualClock
) -> None:
    made = DotFlow(config=Config(storage=storage, journal=journal), workflow_id="wf")
    made.task.add(step=first)
    manager = made.start(resume=True, mode="background", claim=Claim(scope=scope, clock=clock, sleep=clock.advance))
    assert manager.thread is not None
    manager.thread.join(30)
    reader = Journal(journal.url, read_only=True)  # what is in the database, not in the journal's queue
    try:
        assert events(reader) == [("0-first" if scope == "task" else None, event, 1) for event in (CLAIM_TAKEN, CLAIM_RELEASED)]
    finally:
        reader.close()


def test_an_expired_lease_taken_over_records_whose_it_was_and_how_late(storage: Any, journal: Journal, clock: ManualClock) -> None:
    storage.create_lease(key(storage, "0-first"), owner="crashed-worker", ttl=5)  # a worker died holding it
    clock.advance(7.5)
    run(storage, journal, clock, ttl=30)
    expired, taken_over, released = journal.claims(task_id="0-first")
    assert (expired.event, expired.owner, expired.epoch, expired.previous_owner) == (CLAIM_EXPIRED, "crashed-worker", 1, None)
    assert expired.late == pytest.approx(2.5)
    assert (taken_over.event, taken_over.epoch, taken_over.previous_owner) == (CLAIM_TAKEN_OVER, 2, "crashed-worker")
    assert taken_over.late == pytest.approx(2.5) and taken_over.owner not in ("crashed-worker", "")
    assert (released.event, released.owner, released.epoch) == (CLAIM_RELEASED, taken_over.owner, 2)
    assert RAN == ["first", "second"]


def test_a_late_renewal_is_recorded_a_timely_one_is_not(
    storage: Any, journal: Journal, clock: ManualClock, made_claims: list[Claims]
) -> None:
    interval = 10.0

    def heartbeat(after: float) -> None:
        clock.advance(after)
        [made] = made_claims
        made.beat()

    # 10 s: due, on time; then 10 + 10 * LATE_RENEWAL + 1 s: more than half an interval after it was due.
    DURING.append(lambda: heartbeat(interval))
    DURING.append(lambda: heartbeat(interval * (1 + LATE_RENEWAL) + 1))
    run(storage, journal, clock, ttl=30, heartbeat=interval)
    late = [c for c in journal.claims() if c.event == CLAIM_RENEWED_LATE]
    assert [(c.task_id, c.epoch) for c in late] == [("0-first", 1)]
    assert late[0].late == pytest.approx(interval * LATE_RENEWAL + 1)
    assert events(journal, task_id="0-first") == [("0-first", CLAIM_TAKEN, 1), ("0-first", CLAIM_RENEWED_LATE, 1),
                                                  ("0-first", CLAIM_RELEASED, 1)]  # fmt: skip


def test_a_renewal_after_the_lease_expired_is_late_too(storage: Any, journal: Journal, clock: ManualClock) -> None:
    run_persistence = RunPersistence("wf")
    claims = Claims(Claim(ttl=30, heartbeat=29, clock=clock, sleep=clock.advance), run=run_persistence)
    binding = run_persistence.persistence(storage, journal)
    holding = claims.acquire(binding, key(storage, "0-first"), what="task", task_id="0-first")
    assert holding is not None
    clock.advance(31)  # due at 29, two seconds late (not half an interval), but past the lease's expiry
    assert claims.beat() == 1
    holding.release()
    journal.flush()
    assert [(c.event, c.late) for c in journal.claims()] == [(CLAIM_TAKEN, None), (CLAIM_RENEWED_LATE, pytest.approx(2.0)),
                                                            (CLAIM_RELEASED, None)]  # fmt: skip


def test_a_lease_lost_to_another_worker_is_recorded_once(
    journal: Journal, clock: ManualClock, made_claims: list[Claims]
) -> None:
    """Memory: the paused worker's renewal finds the lease taken over (lost), and its commit is refused
    for the same reason: one "lost"; it then waits for the new holder, which committed, and adopts."""
    storage = StorageDefault(clock=clock)

    def paused_past_the_lease() -> None:
        take_over_and_commit(storage, clock)
        made_claims[0].beat()

    DURING.append(paused_past_the_lease)
    made = run(storage, journal, clock, ttl=30)
    assert made.result_storage() == ["winner-value", "winner-value+second"]
    assert events(journal, task_id="0-first") == [("0-first", CLAIM_TAKEN, 1), ("0-first", CLAIM_LOST, 1),
                                                  ("0-first", CLAIM_TAKEN, 1), ("0-first", CLAIM_RELEASED, 1)]  # fmt: skip


def test_a_commit_that_finds_the_lease_taken_records_it_lost(journal: Journal, clock: ManualClock) -> None:
    """No renewal noticed it: the commit's transaction (memory) is the one that finds the lease gone."""
    storage = StorageDefault(clock=clock)
    DURING.append(lambda: take_over_and_commit(storage, clock))
    run(storage, journal, clock, ttl=30)
    assert [e[1] for e in events(journal, task_id="0-first")] == [CLAIM_TAKEN, CLAIM_LOST, CLAIM_TAKEN, CLAIM_RELEASED]


def test_claim_events_cost_no_journal_transaction_of_their_own(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claimed run writes its journal in as many transactions as the same run without a claim: the
    events ride with the outcomes (one batch here) and the run's end."""
    transactions: list[int] = []
    original = JournalWriter.run

    def counted(self: JournalWriter, batch: Any, **kwargs: Any) -> None:
        transactions.append(len(batch.claims))
        original(self, batch, **kwargs)

    monkeypatch.setattr(JournalWriter, "run", counted)
    costs = []
    for name, claim in (("plain", None), ("claimed", Claim(clock=clock, sleep=clock.advance))):
        journal = Journal(f"sqlite:///{tmp_path / name}.db")
        transactions.clear()
        made = DotFlow(config=Config(storage=StorageFile(path=tmp_path / name, clock=clock), journal=journal), workflow_id="wf")
        for _ in range(20):
            made.task.add(step=first)
        made.start(resume=True, **({} if claim is None else {"claim": claim}))
        costs.append((len(transactions), sum(transactions)))
        assert [u.outcome for u in journal.units()] == [COMMITTED] * 20
        journal.close()
    (plain, no_events), (claimed, events_written) = costs
    assert claimed == plain and no_events == 0 and events_written == 40


class Refusing(Journal):
    """A journal whose claim recording fails every time."""

    def record_claims(self, events: Any) -> None:
        raise RuntimeError("claims table is on fire")


def test_a_journal_that_cannot_record_a_claim_fails_and_reruns_nothing(
    storage: Any, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Refusing(f"sqlite:///{tmp_path / 'refusing.db'}")
    try:
        with caplog.at_level(logging.WARNING):
            made = run(storage, journal, clock)
        assert RAN == ["first", "second"]
        assert [task.status for task in made.task.queue] == [TypeStatus.COMPLETED] * 2
        assert made.result_storage() == ["first-value", "first-value+second"]
        assert "could not record 1 claim event(s): claims table is on fire" in caplog.text
        assert [u.outcome for u in journal.units()] == [COMMITTED, COMMITTED]  # the units are recorded as ever
        assert storage.read_lease(key(storage, "0-first")) is None  # released all the same
    finally:
        journal.close()


class OutcomesOnly:
    """A journal that records units and nothing more (no `record_claims`)."""

    def __init__(self) -> None:
        self.units: list[Any] = []

    def record(self, unit: Any) -> None:
        self.units.append(unit.state)


def test_a_journal_that_does_not_declare_claims_is_never_asked(storage: Any, clock: ManualClock) -> None:
    journal = OutcomesOnly()
    assert not JournalCapabilities.of(journal).claims
    run(storage, journal, clock)
    assert journal.units == [COMMITTED, COMMITTED] and RAN == ["first", "second"]


def test_a_claim_event_is_one_frozen_record() -> None:
    event = ClaimEvent("r", "wf", None, "wf", CLAIM_TAKEN, "host:1:abc", 1, 0.0)
    with pytest.raises(AttributeError):
        event.epoch = 2  # type: ignore[misc]
    assert (event.previous_owner, event.late) == (None, None)


def test_a_child_tells_its_claim_events_without_waiting_for_an_answer(tmp_path: Path) -> None:
    """The relay of a journal that records claims sends the events and returns: the parent never answers
    a told call (a round trip per event would add one per task to the claimed path)."""
    import multiprocessing
    import threading

    from dotflow.run.processes import ClaimsJournalRelay, JournalRelay, _Pipe, _relay_journal

    parent_end, child_end = multiprocessing.Pipe()
    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    try:
        relay = _relay_journal(journal, _Pipe(child_end), 0)
        assert isinstance(relay, ClaimsJournalRelay)
        assert type(_relay_journal(OutcomesOnly(), _Pipe(child_end), 0)) is JournalRelay  # declares nothing more
        event = ClaimEvent("r", "wf", "t0", "wf-t0", CLAIM_TAKEN, "host:1:abc", 1, 0.0)
        done = threading.Event()
        sender = threading.Thread(target=lambda: (relay.record_claims([event]), done.set()), daemon=True)
        sender.start()
        assert done.wait(10), "the child waited for an answer"
        assert parent_end.recv() == ("tell", "journal", 0, "record_claims", {"events": [event]})
        assert not parent_end.poll(0.05)  # one message, nothing else
    finally:
        journal.close()
        parent_end.close()
        child_end.close()


def test_a_journal_writes_its_claim_queue_itself_only_once_it_is_long(tmp_path: Path) -> None:
    """When nothing else writes (units written inside a SQL storage's own transactions), the queue is
    written by the event that fills it to CLAIMS_QUEUED; shorter, it waits for the next transaction."""
    from uow.journal import CLAIMS_QUEUED

    journal = Journal(f"sqlite:///{tmp_path / 'journal.db'}")
    reader = Journal(journal.url, read_only=True)
    try:
        event = ClaimEvent("r", "wf", "t", "wf-t", CLAIM_TAKEN, "me", 1, 0.0)
        journal.record_claims([event] * (CLAIMS_QUEUED - 1))
        assert reader.count_claims() == 0  # queued
        journal.record_claims([event])
        assert reader.count_claims() == CLAIMS_QUEUED
    finally:
        reader.close()
        journal.close()


class Unwritable(Journal):
    def _write(self, *entries: Any) -> None:
        raise RuntimeError("disk full")


def test_a_long_claim_queue_that_cannot_be_written_is_kept_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from uow.journal import CLAIMS_QUEUED

    journal = Unwritable(f"sqlite:///{tmp_path / 'journal.db'}")
    event = ClaimEvent("r", "wf", "t", "wf-t", CLAIM_TAKEN, "me", 1, 0.0)
    with caplog.at_level(logging.WARNING):
        journal.record_claims([event] * CLAIMS_QUEUED)  # does not raise
    assert f"{CLAIMS_QUEUED} queued claim event(s) could not be written yet: disk full" in caplog.text
    assert len(journal._claims) == CLAIMS_QUEUED  # still queued, for the next transaction
    journal._claims.clear()
    journal.close()
