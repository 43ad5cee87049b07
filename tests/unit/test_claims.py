"""Claims in one process: `Claim` checks its arguments, a run takes, renews and releases leases, and
each `on_held` policy, takeover, re-read and lost lease behave as documented. Memory and file storage
(and SQLite for the commit that shares the lease's transaction), with injected clocks: no test
waits for a lease to expire."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dotflow import Claim, Config, Context, DotFlow
from dotflow.core.exception import ClaimHeldError
from dotflow.core.types import TypeStatus
from dotflow.run.claims import Claims
from dotflow.storage.file import StorageFile
from dotflow.storage.memory import StorageDefault
from dotflow.testing import ManualClock
from tests.claim_steps import DURING, RAN, first, second
from tests.support import MinimalStorage
from uow import Persistence


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> None:
    RAN.clear()
    DURING.clear()
    # A fake clock pauses a worker by jumping ahead; no thread may renew behind the test's back.
    monkeypatch.setattr(Claims, "heartbeat_thread", False)


def flow(storage: Any, workflow_id: str = "wf") -> DotFlow:
    made = DotFlow(config=Config(storage=storage), workflow_id=workflow_id)
    made.task.add(step=first)
    made.task.add(step=second)
    return made


def key(storage: Any, task_id: str) -> str:
    return f"wf-{task_id}.json" if isinstance(storage, StorageFile) else f"wf-{task_id}"


def claim(clock: ManualClock, **options: Any) -> Claim:
    """A claim timed by `clock`, whose waits move `clock` instead of sleeping (never forever: a
    broken guard fails the test instead of hanging it)."""
    options.setdefault("wait_timeout", 3600)
    return Claim(clock=clock, sleep=clock.advance, **options)


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Any, clock: ManualClock) -> Any:
    if request.param == "memory":
        return StorageDefault(clock=clock)
    return StorageFile(path=tmp_path, clock=clock)


# -- Claim --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"scope": "step"}, ValueError, "scope"),
        ({"on_held": "queue"}, ValueError, "on_held"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": -5}, ValueError, "ttl"),
        ({"ttl": float("nan")}, ValueError, "ttl"),
        ({"ttl": True}, ValueError, "ttl"),
        ({"ttl": "30"}, ValueError, "ttl"),
        ({"heartbeat": 0}, ValueError, "heartbeat"),
        ({"ttl": 10, "heartbeat": 10}, ValueError, "shorter than ttl"),
        ({"wait_timeout": -1}, ValueError, "wait_timeout"),
        ({"clock": 3}, TypeError, "callables"),
    ],
)
def test_a_claim_refuses_bad_arguments_with_one_clear_error(options: dict[str, Any], error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        Claim(**options)


def test_a_claim_has_the_documented_defaults() -> None:
    made = Claim()
    assert (made.scope, made.ttl, made.heartbeat, made.on_held, made.wait_timeout) == ("task", 30.0, None, "wait", None)
    assert made.interval == 10.0
    assert Claim(ttl=9, heartbeat=2).interval == 2.0
    assert Claim(wait_timeout=0).wait_timeout == 0.0


def test_a_claim_needs_resume_and_a_storage_with_leases(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="resume=True"):
        flow(StorageDefault()).start(claim=Claim())
    with pytest.raises(TypeError, match="dotflow.Claim"):
        flow(StorageDefault()).start(resume=True, claim={"scope": "task"})
    with pytest.raises(TypeError, match="MinimalStorage cannot"):
        flow(MinimalStorage()).start(resume=True, claim=Claim())
    assert RAN == []


# -- the happy path -----------------------------------------------------------------------------


def test_each_step_runs_once_and_no_lease_is_left(storage: Any, clock: ManualClock) -> None:
    flow(storage).start(resume=True, claim=claim(clock))
    assert RAN == ["first", "second"]
    assert storage.read_lease(key(storage, "0-first")) is None
    assert storage.read_lease(key(storage, "1-second")) is None
    again = flow(storage)
    again.start(resume=True, claim=claim(clock))
    assert RAN == ["first", "second"]
    assert [task.restored for task in again.task.queue] == [True, True]
    assert again.result_storage() == ["first-value", "first-value+second"]


def test_without_a_claim_nothing_is_written_but_the_checkpoints(storage: Any) -> None:
    flow(storage).start(resume=True)
    assert sorted(storage.list_keys()) == [key(storage, "0-first"), key(storage, "1-second")]
    assert storage.read_lease(key(storage, "0-first")) is None
    if isinstance(storage, StorageFile):
        assert sorted(p.name for p in storage.path.iterdir() if not p.name.startswith(".")) == sorted(storage.list_keys())


def test_the_lease_is_held_while_the_step_runs(storage: Any, clock: ManualClock) -> None:
    seen: list[Any] = []
    DURING.append(lambda: seen.append(storage.read_lease(key(storage, "0-first"))))
    flow(storage).start(resume=True, claim=claim(clock, ttl=20))
    (lease,) = seen
    assert lease is not None and lease.epoch == 1 and not lease.expired
    assert lease.owner.split(":")[1].isdigit()  # host:pid:random


# -- on_held ------------------------------------------------------------------------------------


def test_on_held_raise_fails_the_task_naming_owner_and_expiry(storage: Any, clock: ManualClock) -> None:
    storage.create_lease(key(storage, "0-first"), owner="worker-elsewhere", ttl=30)
    clock.advance(5)
    made = flow(storage)
    made.start(resume=True, claim=claim(clock, on_held="raise"))
    assert RAN == []
    task = made.task.queue[0]
    assert task.status == TypeStatus.FAILED
    error = task.errors[-1].exception
    assert "worker-elsewhere" in task.errors[-1].message and "expires in 25.0 s" in task.errors[-1].message
    assert error == "ClaimHeldError"
    assert made.task.queue[1].status == TypeStatus.NOT_STARTED
    assert storage.read_lease(key(storage, "0-first")).owner == "worker-elsewhere"  # not ours to touch


def test_on_held_skip_runs_nothing_from_there_and_fails_nothing(storage: Any, clock: ManualClock) -> None:
    storage.create_lease(key(storage, "0-first"), owner="worker-elsewhere", ttl=30)
    failures: list[Any] = []
    made = flow(storage)
    manager = made.start(resume=True, claim=claim(clock, on_held="skip"), on_failure=lambda tasks: failures.append(tasks))
    assert RAN == []
    assert [task.status for task in made.task.queue] == [TypeStatus.NOT_STARTED, TypeStatus.NOT_STARTED]
    assert manager.tasks == [] and failures == []


def test_on_held_wait_then_adopts_the_winners_checkpoint(storage: Any, clock: ManualClock) -> None:
    held_key = key(storage, "0-first")
    winner = storage.create_lease(held_key, owner="worker-elsewhere", ttl=30)
    pauses: list[float] = []

    def the_winner_commits(seconds: float) -> None:
        pauses.append(seconds)
        clock.advance(seconds)
        if len(pauses) == 3:  # after a few polls the holder commits and releases
            storage.post(held_key, Context(storage="winner-value"))
            storage.delete_lease(held_key, version=winner.version)

    made = flow(storage)
    made.start(resume=True, claim=Claim(clock=clock, sleep=the_winner_commits, wait_timeout=3600))
    assert RAN == ["second"]  # the first step was the winner's
    assert made.task.queue[0].restored and made.task.queue[0].status == TypeStatus.COMPLETED
    assert made.result_storage() == ["winner-value", "winner-value+second"]
    assert pauses == [0.05, 0.1, 0.2]  # backoff, doubling


def test_waiting_polls_no_longer_than_the_heartbeat_and_stops_at_wait_timeout(storage: Any, clock: ManualClock) -> None:
    storage.create_lease(key(storage, "0-first"), owner="worker-elsewhere", ttl=300)
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        clock.advance(seconds)

    made = flow(storage)
    made.start(resume=True, claim=Claim(ttl=60, heartbeat=0.5, wait_timeout=3, clock=clock, sleep=pause))
    assert RAN == []
    assert max(pauses) == 0.5
    assert sum(pauses) == pytest.approx(3.0)
    error = made.task.queue[0].errors[-1]
    assert error.exception == "ClaimHeldError" and "after waiting 3.0 s" in error.message


def test_an_expired_lease_is_taken_over_in_the_next_epoch(storage: Any, clock: ManualClock) -> None:
    storage.create_lease(key(storage, "0-first"), owner="worker-that-died", ttl=30)
    clock.advance(31)
    seen: list[Any] = []
    DURING.append(lambda: seen.append(storage.read_lease(key(storage, "0-first"))))
    flow(storage).start(resume=True, claim=claim(clock, on_held="raise"))
    assert RAN == ["first", "second"]
    assert seen[0].epoch == 2 and seen[0].owner != "worker-that-died"
    assert storage.read_lease(key(storage, "0-first")) is None


def test_the_checkpoint_is_read_again_once_the_lease_is_taken(storage: Any, clock: ManualClock) -> None:
    """Another worker committed the first task after this run looked and before it took the lease."""
    first_key = key(storage, "0-first")
    create = storage.create_lease

    def late_commit(key: str, **kwargs: Any) -> Any:
        if key == first_key and storage.read_checkpoint(first_key) is None:
            storage.post(first_key, Context(storage="committed-meanwhile"))
        return create(key, **kwargs)

    storage.create_lease = late_commit  # (an instance attribute: the class still declares leases)
    made = flow(storage)
    made.start(resume=True, claim=claim(clock))
    assert RAN == ["second"]
    assert made.result_storage() == ["committed-meanwhile", "committed-meanwhile+second"]
    assert storage.read_lease(first_key) is None  # released after adopting


# -- the heartbeat ------------------------------------------------------------------------------


def test_a_beat_renews_only_what_is_due(storage: Any, clock: ManualClock) -> None:
    claims = Claims(claim(clock, ttl=30, heartbeat=10))
    binding = Persistence(storage)
    holding = claims.acquire(binding, key(storage, "0-first"), what="task")
    first_version = holding.lease.version
    clock.advance(9)
    assert claims.beat() == 0
    clock.advance(1)
    assert claims.beat() == 1
    renewed = storage.read_lease(key(storage, "0-first"))
    assert renewed.version != first_version and renewed.expires_at == pytest.approx(clock() + 30)
    holding.release()
    assert storage.read_lease(key(storage, "0-first")) is None
    clock.advance(10)
    assert claims.beat() == 0  # released: nothing more to renew


def test_a_renewal_that_finds_the_lease_taken_over_marks_it_lost(storage: Any, clock: ManualClock, caplog: Any) -> None:
    claims = Claims(claim(clock, ttl=30))
    binding = Persistence(storage)
    holding = claims.acquire(binding, key(storage, "0-first"), what="task")
    clock.advance(31)  # paused past its lease: another worker takes it over
    seen = storage.read_lease(key(storage, "0-first"))
    storage.replace_lease(key(storage, "0-first"), version=seen.version, owner="worker-b", epoch=2, ttl=30)
    assert claims.beat() == 0
    assert holding.lost and "was lost" in caplog.text
    holding.release()  # never deletes the new holder's lease
    assert storage.read_lease(key(storage, "0-first")).owner == "worker-b"


def test_a_late_renewal_is_logged(storage: Any, clock: ManualClock, caplog: Any) -> None:
    claims = Claims(claim(clock, ttl=30))
    holding = claims.acquire(Persistence(storage), key(storage, "0-first"), what="task")
    clock.advance(35)  # nobody took it over meanwhile: the renewal still succeeds
    assert claims.beat() == 1 and not holding.lost
    assert "renewed 5.0 s after it had expired" in caplog.text
    holding.release()


def test_the_heartbeat_thread_renews_a_long_step(storage: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real time, but only the heartbeat's 10 ms: the step waits for a renewal, not for a ttl."""
    monkeypatch.setattr(Claims, "heartbeat_thread", True)
    renewed = threading.Event()
    lease_key = key(storage, "0-first")

    def wait_for_renewal() -> None:
        before = storage.read_lease(lease_key).version
        for _ in range(500):
            if storage.read_lease(lease_key).version != before:
                renewed.set()
                return
            renewed.wait(0.01)

    DURING.append(wait_for_renewal)
    flow(storage).start(resume=True, claim=Claim(ttl=3600, heartbeat=0.01))
    assert renewed.is_set()
    assert storage.read_lease(lease_key) is None


def test_the_heartbeat_thread_renews_a_lease_taken_after_it_went_idle(storage: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody wakes the thread for a new lease: idle, it sleeps an interval at most, so it is up in time."""
    monkeypatch.setattr(Claims, "heartbeat_thread", True)
    claims = Claims(Claim(ttl=3600, heartbeat=0.01))
    claims.owner  # (the owner's first reading resets the thread's state)
    idle = threading.Event()

    class Watched(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            if not claims._held:
                idle.set()  # the thread sleeps with no lease to renew
            return super().wait(timeout)

    claims._wake = Watched()
    persistence = Persistence(storage)
    claims.acquire(persistence, key(storage, "0-first"), what="a task").release()  # type: ignore[union-attr]
    assert idle.wait(5)
    held = claims.acquire(persistence, key(storage, "1-second"), what="a task")
    assert held is not None
    before, pause = held.lease.version, threading.Event()
    for _ in range(500):
        if storage.read_lease(held.key).version != before:
            break
        pause.wait(0.01)  # (polls for up to 5 s; a renewal is due 10 ms after the lease was taken)
    else:
        pytest.fail("the lease taken after the thread went idle was never renewed")
    held.release()


def test_a_forked_worker_gets_an_owner_of_its_own() -> None:
    claims = Claims(Claim())
    mine = claims.owner
    assert claims.owner == mine
    claims._pid = -1  # what a fork looks like to the object
    assert claims.owner != mine


# -- scope="workflow" ---------------------------------------------------------------------------


def test_a_workflow_claim_holds_one_lease_for_the_run(storage: Any, clock: ManualClock) -> None:
    seen: list[Any] = []
    DURING.append(lambda: seen.append((storage.read_lease("wf"), storage.read_lease(key(storage, "0-first")))))
    flow(storage).start(resume=True, claim=claim(clock, scope="workflow"))
    assert RAN == ["first", "second"]
    workflow_lease, task_lease = seen[0]
    assert workflow_lease is not None and task_lease is None
    assert storage.read_lease("wf") is None


def test_a_held_workflow_claim_raises_skips_or_waits(storage: Any, clock: ManualClock) -> None:
    held = storage.create_lease("wf", owner="worker-elsewhere", ttl=30)
    with pytest.raises(ClaimHeldError, match="workflow 'wf' is claimed by worker 'worker-elsewhere'"):
        flow(storage).start(resume=True, claim=claim(clock, scope="workflow", on_held="raise"))
    manager = flow(storage).start(resume=True, claim=claim(clock, scope="workflow", on_held="skip"))
    assert manager.skipped and manager.tasks == [] and RAN == []

    def the_winner_finishes(seconds: float) -> None:
        clock.advance(seconds)
        storage.post(key(storage, "0-first"), Context(storage="w1"))
        storage.post(key(storage, "1-second"), Context(storage="w2"))
        storage.delete_lease("wf", version=held.version)

    made = flow(storage)
    made.start(resume=True, claim=Claim(scope="workflow", clock=clock, sleep=the_winner_finishes, wait_timeout=3600))
    assert RAN == [] and made.result_storage() == ["w1", "w2"]
    assert storage.read_lease("wf") is None


# -- a lease lost before the commit ---------------------------------------------------------------


def take_over(storage: Any, clock: ManualClock, lease_key: str, *, commit: Any = None) -> None:
    """What another worker does while this one is paused past its lease: take it over, maybe commit."""
    clock.advance(31)
    seen = storage.read_lease(lease_key)
    taken = storage.replace_lease(lease_key, version=seen.version, owner="worker-b", epoch=seen.epoch + 1, ttl=30)
    if commit is not None:
        storage.post(lease_key, Context(storage=commit))
        storage.delete_lease(lease_key, version=taken.version)


@pytest.fixture(params=["memory", "sqlite"])
def transactional(request: pytest.FixtureRequest, tmp_path: Any, clock: ManualClock) -> Any:
    if request.param == "memory":
        yield StorageDefault(clock=clock)
        return
    from dotflow.providers import StorageSQL

    opened = StorageSQL(f"sqlite:///{tmp_path}/checkpoints.db", clock=clock)
    yield opened
    opened.close()


def test_a_stale_owner_cannot_commit_where_the_lease_shares_the_transaction(transactional: Any, clock: ManualClock) -> None:
    """SQL and memory: the winner committed; the paused worker's commit is refused, it adopts."""
    storage = transactional
    DURING.append(lambda: take_over(storage, clock, "wf-0-first", commit="winner-value"))
    made = flow(storage)
    made.start(resume=True, claim=claim(clock, ttl=30))
    assert RAN == ["first", "second"]  # its step ran (at-least-once past a lease), its result did not win
    assert made.result_storage() == ["winner-value", "winner-value+second"]
    assert storage.get("wf-0-first").storage == "winner-value"
    assert storage.read_lease("wf-0-first") is None


def test_a_stale_owner_waits_for_the_new_holder_then_commits_if_it_did_not(transactional: Any, clock: ManualClock) -> None:
    """SQL and memory: the new holder never commits (it died); once its lease expires, the paused
    worker takes the lease again and commits its own result."""
    storage = transactional
    DURING.append(lambda: take_over(storage, clock, "wf-0-first"))
    stored_while_waiting: list[Any] = []

    def wait(seconds: float) -> None:
        stored_while_waiting.append(storage.read_checkpoint("wf-0-first"))
        clock.advance(seconds)

    made = flow(storage)
    made.start(resume=True, claim=Claim(ttl=30, clock=clock, sleep=wait, wait_timeout=3600))
    assert RAN == ["first", "second"]
    assert stored_while_waiting and set(stored_while_waiting) == {None}  # nothing written while B held it
    assert made.result_storage() == ["first-value", "first-value+second"]
    assert storage.read_lease("wf-0-first") is None


def test_without_a_lease_transaction_a_stale_owner_adopts_through_the_conditional_write(tmp_path: Any, clock: ManualClock) -> None:
    storage = StorageFile(path=tmp_path, clock=clock)
    DURING.append(lambda: take_over(storage, clock, "wf-0-first.json", commit="winner-value"))
    made = flow(storage)
    made.start(resume=True, claim=claim(clock, ttl=30))
    assert made.result_storage() == ["winner-value", "winner-value+second"]
    assert storage.get("wf-0-first.json").storage == "winner-value"


def test_a_lease_that_keeps_vanishing_is_polled_not_spun_on(clock: ManualClock) -> None:
    """create says "there is one", read says "there is none", again and again (a store that is slow to
    show its writes): after three such turns the worker pauses between tries instead of spinning."""

    class Flickering(StorageDefault):
        refusals = 6

        def create_lease(self, key: str, *, owner: str, ttl: float) -> Any:
            if self.refusals:
                self.refusals -= 1
                return None
            return super().create_lease(key, owner=owner, ttl=ttl)

    pauses: list[float] = []
    claims = Claims(Claim(clock=clock, sleep=pauses.append))
    holding = claims.acquire(Persistence(Flickering(clock=clock)), "wf-0-first", what="task")
    assert holding is not None
    assert pauses == [0.05, 0.05, 0.05]


class CountingFile(StorageFile):
    """A StorageFile that counts the calls a run makes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def create_lease(self, key: str, **kwargs: Any) -> Any:
        self._count("create_lease")
        return super().create_lease(key, **kwargs)

    def read_lease(self, key: str) -> Any:
        self._count("read_lease")
        return super().read_lease(key)

    def replace_lease(self, key: str, **kwargs: Any) -> Any:
        self._count("replace_lease")
        return super().replace_lease(key, **kwargs)

    def delete_lease(self, key: str, **kwargs: Any) -> Any:
        self._count("delete_lease")
        return super().delete_lease(key, **kwargs)

    def read_checkpoint(self, key: str) -> Any:
        self._count("read_checkpoint")
        return super().read_checkpoint(key)

    def post_if(self, key: str, context: Any, **kwargs: Any) -> Any:
        self._count("post_if")
        return super().post_if(key, context, **kwargs)


@pytest.mark.parametrize(
    ("scope", "per_run"),
    [
        (None, {"read_checkpoint": 2, "post_if": 2}),  # resume alone: one look-up and one write per task
        ("task", {"read_checkpoint": 4, "post_if": 2, "create_lease": 2, "delete_lease": 2}),
        ("workflow", {"read_checkpoint": 2, "post_if": 2, "create_lease": 1, "delete_lease": 1}),
    ],
)
def test_what_a_claim_costs_in_storage_calls(scope: str | None, per_run: dict[str, int], tmp_path: Any, clock: ManualClock) -> None:
    """scope="task": one lease created and one deleted per task, plus the look-up under the lease; no
    renewal for a step shorter than the heartbeat. scope="workflow": one lease per run."""
    storage = CountingFile(path=tmp_path, clock=clock)
    options = {} if scope is None else {"claim": claim(clock, scope=scope)}
    flow(storage).start(resume=True, **options)
    assert storage.calls == per_run


@pytest.mark.parametrize("scope", ["task", "workflow"])
def test_a_background_run_claims_and_releases_in_its_thread(scope: str, storage: Any, clock: ManualClock) -> None:
    made = flow(storage)
    manager = made.start(resume=True, mode="background", claim=claim(clock, scope=scope))
    assert manager.thread is not None
    manager.thread.join(30)
    assert RAN == ["first", "second"]
    assert made.result_storage() == ["first-value", "first-value+second"]
    assert storage.read_lease("wf") is None and storage.read_lease(key(storage, "0-first")) is None
