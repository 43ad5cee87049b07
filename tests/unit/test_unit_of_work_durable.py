"""A storage that buffers writes (`on_durable`): a unit is confirmed in the journal only once durable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from dotflow.core.context import Context
from dotflow.run.journal_config import checkpoint_bytes
from uow import CommitError, Journal, SupportsDurableNotice, UnitOfWork, record_outcome
from uow.journal import BACKED, MISSING, UNCONFIRMED


class Stored(NamedTuple):
    context: Any
    fingerprint: str | None
    version: str | None = None


class FlushFailed(Exception):
    pass


class BufferingStorage:
    """Posts wait in a buffer until `flush()`; `on_durable` callbacks fire after the flush that covers them.

    As specified for BatchStorage: a callback registered with nothing buffered runs at once; one
    registered with writes buffered runs right after the flush that writes them, under the
    storage's lock; a failed flush keeps it for the next one. `crash()` loses the buffer.
    """

    def __init__(self) -> None:
        self.durable: dict[str, Stored] = {}
        self.buffer: dict[str, Stored] = {}
        self.callbacks: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.fail_next_flush = False
        self.flushes = 0
        self.buffers_writes = True  # what dotflow's engine looks for to flush at the end of a run

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        with self.lock:
            self.buffer[key] = Stored(context, fingerprint)

    def get(self, key: str) -> Any:
        found = self.read_checkpoint(key)
        return None if found is None else found.context

    def read_checkpoint(self, key: str) -> Stored | None:
        with self.lock:
            return self.buffer.get(key, self.durable.get(key))

    def list_keys(self, prefix: str = "") -> list[str]:
        with self.lock:
            return sorted(k for k in {**self.durable, **self.buffer} if k.startswith(prefix))

    def on_durable(self, callback: Callable[[], None]) -> None:
        with self.lock:
            if self.buffer:
                self.callbacks.append(callback)
                return
        callback()

    def flush(self) -> None:
        with self.lock:
            if self.fail_next_flush:
                self.fail_next_flush = False
                raise FlushFailed("disk full")
            self.durable.update(self.buffer)
            self.buffer.clear()
            self.flushes += 1
            callbacks, self.callbacks = self.callbacks, []
            for callback in callbacks:  # under the lock, as BatchStorage may
                callback()

    def crash(self) -> BufferingStorage:
        """What a new process finds after a crash: only the durable checkpoints."""
        survivor = BufferingStorage()
        survivor.durable = dict(self.durable)
        return survivor


class DeferringJournal:
    """Records outcomes; `record_later` hands back a callback, as `uow.Journal` does."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []  # (unit id, outcome), in the order confirmed
        self.deferred = 0

    def record(self, unit: Any) -> None:
        self.recorded.append((unit.id, unit.state))

    def record_later(self, unit: Any) -> Callable[[], None]:
        self.deferred += 1
        outcome = (unit.id, unit.state)
        return lambda: self.recorded.append(outcome)


class RecordOnlyJournal:
    def __init__(self) -> None:
        self.recorded: list[str] = []

    def record(self, unit: Any) -> None:
        self.recorded.append(unit.state)


def commit(storage: Any, journal: Any, key: str = "wf-0-a", value: object = 1, run_id: str | None = None) -> UnitOfWork:
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1, run_id=run_id)
    unit.put(key, Context(storage=value), fingerprint="fp")
    unit.commit()
    return unit


# -- the unit of work with fakes -----------------------------------------------------------------


def test_the_fake_is_a_durable_notice_storage() -> None:
    assert isinstance(BufferingStorage(), SupportsDurableNotice)
    assert not isinstance(object(), SupportsDurableNotice)


def test_a_committed_unit_is_confirmed_only_after_the_flush() -> None:
    storage, journal = BufferingStorage(), DeferringJournal()
    unit = commit(storage, journal)
    assert unit.state == "committed"
    assert journal.recorded == []  # its checkpoint is only buffered
    storage.flush()
    assert journal.recorded == [(unit.id, "committed")]


def test_nothing_buffered_confirms_at_once() -> None:
    storage, journal = BufferingStorage(), DeferringJournal()
    unit = UnitOfWork(storage, journal=journal)
    unit.commit()  # nothing staged, nothing buffered
    assert journal.recorded == [(unit.id, "committed")]


def test_units_buffered_together_are_confirmed_by_one_flush_in_order() -> None:
    storage, journal = BufferingStorage(), DeferringJournal()
    units = [commit(storage, journal, key=f"wf-{i}") for i in range(3)]
    assert journal.recorded == []
    storage.flush()
    assert journal.recorded == [(u.id, "committed") for u in units]


def test_a_failed_flush_keeps_the_outcome_waiting_for_the_next_one() -> None:
    storage, journal = BufferingStorage(), DeferringJournal()
    unit = commit(storage, journal)
    storage.fail_next_flush = True
    with pytest.raises(FlushFailed):
        storage.flush()
    assert journal.recorded == []
    storage.flush()
    assert journal.recorded == [(unit.id, "committed")]


def test_other_outcomes_are_recorded_at_once() -> None:
    storage, journal = BufferingStorage(), DeferringJournal()
    rolled_back = UnitOfWork(storage, journal=journal)
    rolled_back.put("k", 1)
    rolled_back.rollback()
    failing = UnitOfWork(storage, journal=journal)
    failing.put("k", 1)
    storage.post = lambda **_: (_ for _ in ()).throw(OSError("no space"))  # type: ignore[method-assign]
    with pytest.raises(CommitError):
        failing.commit()
    assert journal.recorded == [(rolled_back.id, "rolled_back"), (failing.id, "failed")]
    assert journal.deferred == 0


def test_a_storage_without_on_durable_is_recorded_at_once() -> None:
    class Plain(BufferingStorage):
        on_durable = None  # type: ignore[assignment]

    journal = DeferringJournal()
    unit = commit(Plain(), journal)
    assert journal.recorded == [(unit.id, "committed")]
    assert journal.deferred == 0


def test_a_journal_without_record_later_is_told_at_once() -> None:
    storage, journal = BufferingStorage(), RecordOnlyJournal()
    commit(storage, journal)
    assert journal.recorded == ["committed"]


def test_record_outcome_takes_a_snapshot_as_the_parent_of_a_child_process_does() -> None:
    from uow import UnitSnapshot

    storage, journal = BufferingStorage(), DeferringJournal()
    unit = UnitOfWork(storage)
    unit.put("wf-0-a", Context(storage=1))
    unit.commit()  # the child's write reached the parent's storage; its record comes next
    record_outcome(journal, storage, UnitSnapshot.of(unit))
    assert journal.recorded == []
    storage.flush()
    assert journal.recorded == [(unit.id, "committed")]


# -- the SQL journal ------------------------------------------------------------------------------


@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.fixture
def journal(journal_url: str) -> Iterator[Journal]:
    opened = Journal(journal_url, encode=checkpoint_bytes)
    yield opened
    opened.close()


def outcome(journal: Journal, unit: UnitOfWork) -> str:
    found = journal.unit(unit.id)
    assert found is not None
    return found.outcome


def statuses(journal: Journal, storage: BufferingStorage) -> dict[str, str]:
    return {finding.key: finding.status for finding in journal.verify(storage)}


def test_until_the_flush_the_entry_is_prepared_and_its_key_unconfirmed(journal: Journal) -> None:
    storage = BufferingStorage()
    unit = commit(storage, journal)
    journal.flush()
    assert outcome(journal, unit) == "prepared"
    assert statuses(journal, storage) == {"wf-0-a": UNCONFIRMED}
    storage.flush()
    journal.flush()
    assert outcome(journal, unit) == "committed"
    assert statuses(journal, storage) == {"wf-0-a": BACKED}


def test_a_crash_before_the_flush_never_leaves_a_missing_key(journal: Journal, journal_url: str) -> None:
    storage = BufferingStorage()
    older = commit(storage, journal, key="wf-old", value="v1")
    storage.flush()
    commit(storage, journal, key="wf-old", value="v2")  # overwrites a durable value
    commit(storage, journal, key="wf-new", value="n1")  # a key never written before
    journal.flush()  # everything the journal holds is written; the storage's buffer is not
    after = storage.crash()
    reopened = Journal(journal_url, encode=checkpoint_bytes)  # what the next process reads
    try:
        found = {f.key: f for f in reopened.verify(after)}
    finally:
        reopened.close()
    assert {key: f.status for key, f in found.items()} == {"wf-new": BACKED, "wf-old": BACKED}
    assert found["wf-old"].unit_id == older.id
    assert MISSING not in {f.status for f in found.values()}


def test_a_crash_after_the_flush_before_the_outcome_is_written_is_unconfirmed(
    journal: Journal, journal_url: str
) -> None:
    storage = BufferingStorage()
    commit(storage, journal, run_id="r1")  # in a run: the run's end writes the queue
    storage.flush()  # durable; the outcome is queued in this process, not yet written
    after = storage.crash()
    reopened = Journal(journal_url, encode=checkpoint_bytes)
    try:
        assert statuses(reopened, after) == {"wf-0-a": UNCONFIRMED}
    finally:
        reopened.close()


def test_the_callback_may_come_from_another_thread_under_the_storage_lock(journal: Journal) -> None:
    storage = BufferingStorage()
    units: list[UnitOfWork] = []
    stop = threading.Event()

    def flusher() -> None:
        while not stop.is_set():
            storage.flush()

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        for i in range(40):
            units.append(commit(storage, journal, key=f"wf-{i}", value=i))
    finally:
        stop.set()
        thread.join()
    storage.flush()
    journal.flush()
    assert {outcome(journal, u) for u in units} == {"committed"}
    assert set(statuses(journal, storage).values()) == {BACKED}


def test_closing_the_journal_before_the_storage_flush_warns_and_leaves_it_unconfirmed(
    journal_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = BufferingStorage()
    first = Journal(journal_url, encode=checkpoint_bytes)
    commit(storage, first)
    with caplog.at_level(logging.WARNING, logger="uow"):
        first.close()
    assert "still wait for their storage" in caplog.text
    storage.flush()  # the late callback must not fail, nor write anything
    reopened = Journal(journal_url, encode=checkpoint_bytes)
    try:
        assert statuses(reopened, storage) == {"wf-0-a": UNCONFIRMED}
    finally:
        reopened.close()


def test_a_callback_called_twice_confirms_once(journal_url: str, caplog: pytest.LogCaptureFixture) -> None:
    opened = Journal(journal_url, encode=checkpoint_bytes)
    unit = UnitOfWork(BufferingStorage(), workflow_id="wf", task_id="0-a", attempt=1)  # told by hand below
    unit.put("wf-0-a", Context(storage=1))
    opened.prepare(unit)
    unit.commit()
    confirm = opened.record_later(unit)
    confirm()
    confirm()
    assert outcome(opened, unit) == "committed"
    assert len(opened.units()) == 1
    with caplog.at_level(logging.WARNING, logger="uow"):
        opened.close()
    assert "still wait" not in caplog.text  # the count of outcomes awaited went back to zero, not below


def test_closing_after_every_callback_came_does_not_warn(journal_url: str, caplog: pytest.LogCaptureFixture) -> None:
    storage = BufferingStorage()
    opened = Journal(journal_url, encode=checkpoint_bytes)
    commit(storage, opened)
    storage.flush()
    with caplog.at_level(logging.WARNING, logger="uow"):
        opened.close()
    assert "still wait" not in caplog.text
