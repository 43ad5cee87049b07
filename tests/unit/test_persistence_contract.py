"""The declared persistence contract (uow.contracts), seen through dotflow's public API.

A storage must do post/get/key and may declare more; a journal must record and may declare more.
What an object declares is worked out once per class, and a run talks to persistence through one
object (`uow.RunPersistence`, `Manager.persistence`) that owns reservations and the order of durable
writes and their confirmation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from dotflow import Config, DotFlow, action
from dotflow.abc.notify import Notify
from dotflow.abc.storage import Checkpoint, Storage
from dotflow.core.context import Context
from dotflow.core.exception import NotCallableObject
from dotflow.core.types import TypeStatus
from dotflow.storage.memory import StorageDefault
from tests.support import MinimalStorage
from uow import (
    JournalCapabilities,
    Persistence,
    RunPersistence,
    StorageCapabilities,
    SupportsStorage,
    UnitOfWork,
)


@action
def one() -> int:
    return 1


@action
def add_one(previous_context: Context) -> int:
    return previous_context.storage + 1


@action
def fails() -> None:
    raise RuntimeError("step failed")


def workflow(config: Config, *steps: Any, workflow_id: str | None = None) -> DotFlow:
    flow = DotFlow(config=config, workflow_id=workflow_id or str(uuid.uuid4()))
    for step in steps:
        flow.task.add(step=step)
    return flow


class RecordOnlyJournal:
    """A journal that declares nothing optional: `record` and nothing else."""

    def __init__(self) -> None:
        self.units: list[Any] = []

    def record(self, unit: Any) -> None:
        self.units.append(unit)


class EventLog:
    def __init__(self) -> None:
        self.events: list[str] = []


class FullJournal:
    """A journal declaring every optional ability; it logs each call in a shared event log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.reserved: dict[str, str] = {}
        self.recorded: list[tuple[str, str, str | None]] = []  # (unit id, state, run id)
        self.encode: Callable[[Any], bytes] | None = None

    def reserve(self, entries: Iterable[tuple[str | None, Any, str]]) -> list[str]:
        entries = list(entries)
        ids = [f"reserved-{task_id}" for _, task_id, _ in entries]
        self.reserved.update(zip(ids, (key for _, _, key in entries)))
        self.log.events.append(f"reserve {len(ids)}")
        return ids

    def release(self, unit_ids: Iterable[str] | None = None) -> None:
        unused = [u for u in (unit_ids or []) if u in self.reserved and not any(r[0] == u for r in self.recorded)]
        self.log.events.append(f"release {len(unused)}")

    def prepare(self, unit: Any) -> None:
        self.log.events.append(f"prepare {unit.id}")

    def record(self, unit: Any) -> None:
        self.recorded.append((unit.id, unit.state, unit.run_id))
        self.log.events.append(f"record {unit.id} {unit.state}")

    def record_later(self, unit: Any) -> Callable[[], None]:
        facts = (unit.id, unit.state, unit.run_id)

        def confirmed() -> None:
            self.recorded.append(facts)
            self.log.events.append(f"confirmed {facts[0]}")

        return confirmed

    def flush(self) -> None:
        self.log.events.append("journal flush")

    def fingerprint(self, workflow_id: str) -> str | None:
        return None

    def close(self) -> None:
        self.log.events.append("journal close")


class BufferingStorage(StorageDefault):
    """Declares a write buffer (`on_durable` + `flush`): posts wait until `flush()`."""

    def __init__(self, log: EventLog) -> None:
        super().__init__()
        self.log = log
        self.buffer: dict[str, tuple[Context, int | None, str | None]] = {}
        self.waiting: list[Callable[[], None]] = []

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.buffer[key] = (context, ttl, fingerprint)

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        if key in self.buffer:
            return Checkpoint(self.buffer[key][0], self.buffer[key][2])
        return super().read_checkpoint(key)

    def on_durable(self, callback: Callable[[], None]) -> None:
        if self.buffer:
            self.waiting.append(callback)
        else:
            callback()

    def flush(self) -> None:
        self.log.events.append(f"storage flush {len(self.buffer)}")
        for key, (context, ttl, fingerprint) in self.buffer.items():
            super().post(key, context, ttl=ttl, fingerprint=fingerprint)
        self.buffer.clear()
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()


class VersionedMinimal(MinimalStorage):
    """post/get/key plus versions: read_checkpoint with a version, post_if and delete_if."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[str, int] = {}
        self.calls: list[str] = []

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.calls.append("post")
        self.data[key] = context
        self.versions[key] = self.versions.get(key, 0) + 1

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        if key not in self.data:
            return None
        return Checkpoint(self.data[key], None, str(self.versions[key]))

    def post_if(self, key: str, context: Context, *, version: str | None, ttl: int | None = None,
                fingerprint: str | None = None) -> bool:  # fmt: skip
        self.calls.append("post_if")
        current = str(self.versions[key]) if key in self.data else None
        if current != version:
            return False
        self.data[key] = context
        self.versions[key] = self.versions.get(key, 0) + 1
        return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        current = str(self.versions[key]) if key in self.data else None
        if current != version:
            return False
        self.data.pop(key, None)
        return True


# -- what a storage must do, and may do ---------------------------------------------------------------


def test_a_storage_with_only_post_get_and_key_runs_resumes_and_is_journaled() -> None:
    storage, journal = MinimalStorage(), RecordOnlyJournal()
    config = Config(storage=storage, journal=journal)
    workflow_id = str(uuid.uuid4())
    flow = workflow(config, one, add_one, workflow_id=workflow_id)
    flow.start()
    assert [t.status for t in flow.result_task()] == [TypeStatus.COMPLETED] * 2
    assert [c.storage for c in storage.data.values()] == [1, 2]
    assert [u.state for u in journal.units] == ["committed", "committed"]

    again = workflow(config, one, add_one, workflow_id=workflow_id)
    again.start(resume=True)
    assert [t.restored for t in again.result_task()] == [True, True]
    assert len(journal.units) == 2  # restored tasks write nothing


def test_what_a_storage_declares_is_worked_out_from_its_methods() -> None:
    minimal = StorageCapabilities.of(MinimalStorage())
    assert not minimal.versions and not minimal.transaction and not minimal.flush and not minimal.durable_notice
    versioned = StorageCapabilities.of(VersionedMinimal())
    assert versioned.versions and versioned.read and not versioned.transaction
    memory = StorageCapabilities.of(StorageDefault())
    assert memory.versions and memory.transaction and memory.post_many and not memory.flush
    buffering = StorageCapabilities.of(BufferingStorage(EventLog()))
    assert buffering.flush and buffering.durable_notice


def test_a_storage_that_declares_versions_gets_conditional_commits_on_resume() -> None:
    storage = VersionedMinimal()
    config = Config(storage=storage)
    flow = workflow(config, one, add_one)
    flow.start(resume=True)
    assert storage.calls == ["post_if", "post_if"]  # each commit conditional on "absent", as read

    plain = MinimalStorage()
    flow = workflow(Config(storage=plain), one, add_one)
    flow.start(resume=True)
    assert [c.storage for c in plain.data.values()] == [1, 2]  # no versions declared: plain posts


def test_a_conditional_commit_that_lost_adopts_the_stored_checkpoint() -> None:
    storage = VersionedMinimal()
    flow = workflow(Config(storage=storage), one)

    @action
    def racing() -> int:
        # another worker commits this task's checkpoint while the step runs
        storage.post(key=f"{flow.workflow_id}-1-racing", context=Context(storage=41))
        return 7

    flow.task.add(step=racing)
    flow.start(resume=True)
    task = flow.result_task()[1]
    assert task.status == TypeStatus.COMPLETED and task.restored
    assert task.current_context.storage == 41


def test_a_run_refuses_a_storage_without_key() -> None:
    class NoKey:
        def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None: ...

        def get(self, key: str) -> Any: ...

    with pytest.raises(TypeError, match="post, get and key"):
        RunPersistence("wf").persistence(NoKey())  # type: ignore[arg-type]
    assert isinstance(NoKey(), SupportsStorage)  # a unit of work alone needs only post and get
    UnitOfWork(NoKey()).commit()


# -- what a journal must do, and may do ---------------------------------------------------------------


def test_a_journal_that_declares_nothing_optional_records_each_unit_once() -> None:
    journal = RecordOnlyJournal()
    assert JournalCapabilities.of(journal) == JournalCapabilities(
        prepare=False, record_later=False, reservations=False, flush=False,
        shared_transaction=False, input_fingerprints=False, close=False, runs=False, claims=False,
    )  # fmt: skip
    flow = workflow(Config(journal=journal), one, add_one, fails)
    flow.start()
    assert [(u.task_id, u.state) for u in journal.units] == [("0-one", "committed"), ("1-add_one", "committed"),
                                                             ("2-fails", "rolled_back")]  # fmt: skip


def test_config_refuses_a_journal_that_cannot_record() -> None:
    class NotAJournal:
        def prepare(self, unit: Any) -> None: ...

    with pytest.raises(NotCallableObject):
        Config(journal=NotAJournal())


def test_a_journal_that_reserves_gets_one_reservation_per_task_and_the_unused_ones_released() -> None:
    log = EventLog()
    journal = FullJournal(log)
    flow = workflow(Config(journal=journal), one, fails, add_one)
    flow.start()
    # one reservation for the three tasks, each task's first unit takes its reserved id (the journal's
    # prepare knows it); the third task never ran, so its reservation is released at the end, then
    # the journal flushed.
    assert log.events == [
        "reserve 3",
        "prepare reserved-0-one",
        "record reserved-0-one committed",
        "record reserved-1-fails rolled_back",
        "release 1",
        "journal flush",
    ]


def test_the_end_of_a_run_flushes_the_storage_before_the_journal() -> None:
    log = EventLog()
    storage, journal = BufferingStorage(log), FullJournal(log)
    flow = workflow(Config(storage=storage, journal=journal), one, add_one)
    flow.start()
    assert log.events == [
        "reserve 2",
        "prepare reserved-0-one",
        "prepare reserved-1-add_one",
        "storage flush 2",  # the run's end: durable writes first,
        "confirmed reserved-0-one",  # which confirms the units waiting for them,
        "confirmed reserved-1-add_one",
        "release 0",  # then the journal's own writes
        "journal flush",
    ]


def test_a_failure_is_reported_after_the_buffered_writes_are_durable() -> None:
    log = EventLog()

    class Reports(Notify):
        def hook_status_task(self, task: Any) -> None:
            if task.status == TypeStatus.FAILED:
                log.events.append(f"reported {task.task_id} failed")

    storage = BufferingStorage(log)
    flow = workflow(Config(storage=storage, notify=Reports()), one, fails)
    flow.start()
    assert log.events == ["storage flush 1", "reported 1-fails failed", "storage flush 0"]


def test_every_unit_of_a_run_carries_the_runs_id() -> None:
    journal = FullJournal(EventLog())
    flow = workflow(Config(journal=journal), one, add_one)
    first = flow.start()
    second = flow.start()
    first_ids = {run_id for _, _, run_id in journal.recorded[:2]}
    second_ids = {run_id for _, _, run_id in journal.recorded[2:]}
    assert first_ids == {first.persistence.run_id} and second_ids == {second.persistence.run_id}
    assert first.persistence.run_id != second.persistence.run_id
    assert first.persistence.status == "completed" and first.persistence.ended_at is not None


def test_a_failed_run_ends_failed() -> None:
    manager = workflow(Config(), fails).start()
    assert manager.persistence.status == "failed"


# -- declared once, never probed on the way of a commit ------------------------------------------------


class Probed:
    """Counts every lookup of an attribute its class does not have (what a `getattr` probe triggers)."""

    probes: list[str]

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("__"):
            type(self).probes.append(name)
        raise AttributeError(name)


class ProbedStorage(Probed, MinimalStorage):
    probes: list[str] = []


class ProbedJournal(Probed, RecordOnlyJournal):
    probes: list[str] = []

    def __init__(self) -> None:
        RecordOnlyJournal.__init__(self)


def test_abilities_are_asked_once_per_class_not_per_task_or_run() -> None:
    storage, journal = ProbedStorage(), ProbedJournal()
    config = Config(storage=storage, journal=journal)
    workflow(config, one).start()
    after_first = (list(ProbedStorage.probes), list(ProbedJournal.probes))
    flow = workflow(config, *([one] * 20))
    flow.start()
    flow.start(resume=True)
    assert (ProbedStorage.probes, ProbedJournal.probes) == after_first
    assert len(journal.units) == 21


def test_a_unit_of_work_on_a_persistence_takes_its_journal_from_it() -> None:
    journal = RecordOnlyJournal()
    persistence = Persistence(StorageDefault(), journal)
    with UnitOfWork(persistence) as unit:
        unit.put("k", 1)
    assert journal.units == [unit]
    with pytest.raises(TypeError, match="journal"):
        UnitOfWork(persistence, journal=journal)


def test_a_storage_that_cannot_flush_at_the_end_still_lets_the_journal_write_then_raises() -> None:
    log = EventLog()

    class FailingFlush(BufferingStorage):
        def flush(self) -> None:
            log.events.append("storage flush failed")
            raise OSError("disk gone")

    journal = FullJournal(log)
    flow = workflow(Config(storage=FailingFlush(log), journal=journal), one)
    with pytest.raises(OSError, match="disk gone"):
        flow.start()
    # nothing was confirmed (the write never became durable), and the journal still wrote what it held
    assert log.events == ["reserve 1", "prepare reserved-0-one", "storage flush failed", "release 1", "journal flush"]
