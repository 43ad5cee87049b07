"""The SQL journal on SQLite and on a real PostgreSQL: recording, queries, fingerprints, verify."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest

from dotflow.core.context import Context
from dotflow.run.journal_config import checkpoint_bytes
from dotflow.storage.memory import StorageDefault
from uow import CommitError, ConflictError, Journal, UnitOfWork
from uow.journal import BACKED, CHANGED, MISSING, UNBACKED, UNCONFIRMED


@pytest.fixture
def journal(schema_url: str) -> Iterator[Journal]:
    opened = Journal(schema_url, encode=checkpoint_bytes)
    yield opened
    opened.close()


def committed_unit(storage: StorageDefault, journal: Journal, key: str, value: object, **ids: object) -> UnitOfWork:
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1, **ids)  # type: ignore[arg-type]
    unit.put(key, Context(storage=value), fingerprint="fp-1")
    unit.commit()
    return unit


def test_a_committed_unit_is_recorded_with_its_writes(journal: Journal) -> None:
    storage = StorageDefault()
    unit = committed_unit(storage, journal, "wf-0-a", {"rows": 3})
    entry = journal.unit(unit.id)
    assert entry is not None
    assert (entry.workflow_id, entry.task_id, entry.attempt, entry.outcome) == ("wf", "0-a", 1, "committed")
    assert entry.started_at.tzinfo is not None and entry.finished_at is not None
    assert entry.started_at <= entry.finished_at
    [write] = entry.writes
    data = checkpoint_bytes(storage.read_checkpoint("wf-0-a").context)  # type: ignore[union-attr]
    assert (write.key, write.operation, write.fingerprint, write.size) == ("wf-0-a", "put", "fp-1", len(data))
    assert write.checksum is not None and len(write.checksum) == 64
    assert journal.fingerprint("wf") == "fp-1"


def test_a_unit_left_by_an_exception_is_failed_with_its_error_text(journal: Journal) -> None:
    unit = UnitOfWork(StorageDefault(), journal=journal, workflow_id="wf", task_id="0-a", attempt=2)
    with pytest.raises(RuntimeError):
        with unit:
            raise RuntimeError("the API answered 503")
    entry = journal.unit(unit.id)
    assert entry is not None and entry.outcome == "failed"
    assert entry.error == "RuntimeError: the API answered 503"
    assert journal.fingerprint("wf") is None  # only committed units move the fingerprint


def test_a_conflict_is_its_own_outcome(journal: Journal) -> None:
    storage = StorageDefault()
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
    unit.get("wf-0-a")  # remembers "absent"
    storage.post("wf-0-a", Context(storage="someone else"))
    unit.put("wf-0-a", Context(storage="mine"))
    with pytest.raises(ConflictError):
        unit.commit()
    [entry] = journal.units()
    assert (entry.id, entry.outcome) == (unit.id, "conflict")
    assert entry.error is not None and "ConflictError" in entry.error


def test_the_intent_is_recorded_before_the_storage_write_then_confirmed(journal: Journal) -> None:
    seen_during_write: list[list[str]] = []

    class Watching(StorageDefault):
        def post(self, *args: object, **kwargs: object) -> None:
            seen_during_write.append([u.outcome for u in journal.units()])
            super().post(*args, **kwargs)  # type: ignore[arg-type]

    unit = UnitOfWork(Watching(), journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
    unit.put("wf-0-a", Context(storage=1))
    unit.commit()
    assert seen_during_write == [["prepared"]]
    assert [(u.id, u.outcome) for u in journal.units()] == [(unit.id, "committed")]


def test_in_a_run_outcomes_are_confirmed_with_the_next_write_or_on_close(journal: Journal, schema_url: str) -> None:
    storage = StorageDefault()
    first = committed_unit(storage, journal, "wf-0-a", 1, run_id="r1")
    reader = Journal(schema_url)
    try:
        assert [u.outcome for u in reader.units()] == ["prepared"]  # queued in the writing journal (the run's end writes it)
        second = committed_unit(storage, journal, "wf-1-b", 2, run_id="r1")  # its intent record confirms the first
        assert {u.id: u.outcome for u in reader.units()} == {first.id: "committed", second.id: "prepared"}
        journal.close()
        assert {u.outcome for u in reader.units()} == {"committed"}
        assert reader.fingerprint("wf") == "fp-1"
    finally:
        reader.close()


def test_a_failed_write_turns_the_intent_into_a_failed_entry(journal: Journal) -> None:
    class Broken(StorageDefault):
        def post(self, *args: object, **kwargs: object) -> None:
            raise OSError("disk full")

    unit = UnitOfWork(Broken(), journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
    unit.put("wf-0-a", Context(storage=1))
    with pytest.raises(CommitError):
        unit.commit()
    [entry] = journal.units()
    assert (entry.outcome, entry.error) == ("failed", "CommitError: commit failed writing 'wf-0-a'")


def test_no_write_happens_when_the_intent_cannot_be_recorded(journal: Journal) -> None:
    storage = StorageDefault()
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
    unit.put("wf-0-a", Context(storage=1))
    journal.engine.dispose()
    journal.prepare = lambda unit: (_ for _ in ()).throw(OSError("journal unreachable"))  # type: ignore[method-assign]
    with pytest.raises(CommitError, match="journalling the intent"):
        unit.commit()
    assert storage.read_checkpoint("wf-0-a") is None


def test_units_are_listed_newest_first_and_filtered(journal: Journal) -> None:
    storage = StorageDefault()
    first = committed_unit(storage, journal, "wf-0-a", 1)
    second = committed_unit(storage, journal, "wf-1-b", 2)
    other = UnitOfWork(storage, journal=journal, workflow_id="other", task_id="0-a", attempt=1)
    other.rollback()
    assert [u.id for u in journal.units()] == [other.id, second.id, first.id]
    assert [u.id for u in journal.units(workflow_id="wf", oldest_first=True)] == [first.id, second.id]
    assert [u.id for u in journal.units(outcome="rolled_back")] == [other.id]
    assert journal.units(since=datetime.now(timezone.utc) + timedelta(seconds=5)) == []
    assert len(journal.units(limit=2)) == 2


def test_verify_classifies_every_key(journal: Journal) -> None:
    storage = StorageDefault()
    committed_unit(storage, journal, "wf-backed", "ok")
    committed_unit(storage, journal, "wf-changed", "original")
    storage.post("wf-changed", Context(storage="edited by hand"))
    committed_unit(storage, journal, "wf-missing", "gone")
    storage.delete("wf-missing")
    storage.post("wf-stray", Context(storage="nobody journalled me"))
    # the crash window: intent recorded, value written, outcome never recorded
    crashed = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="4-e", attempt=1)
    value = Context(storage="written, not confirmed")
    crashed.put("wf-window", value)
    journal.prepare(crashed)
    storage.post("wf-window", value)
    found = {f.key: f.status for f in journal.verify(storage)}
    assert found == {
        "wf-backed": BACKED,
        "wf-changed": CHANGED,
        "wf-missing": MISSING,
        "wf-stray": UNBACKED,
        "wf-window": UNCONFIRMED,
    }


def test_verify_a_crash_before_the_write_leaves_the_key_backed(journal: Journal) -> None:
    storage = StorageDefault()
    committed_unit(storage, journal, "wf-0-a", "first")
    crashed = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
    crashed.put("wf-0-a", Context(storage="second, never written"))
    journal.prepare(crashed)
    [finding] = journal.verify(storage)
    assert finding.status == BACKED


def test_verify_accepts_a_committed_delete(journal: Journal) -> None:
    storage = StorageDefault()
    committed_unit(storage, journal, "wf-0-a", "first")
    unit = UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1)
    unit.delete("wf-0-a")
    unit.commit()
    assert [f.status for f in journal.verify(storage)] == [BACKED]
    storage.post("wf-0-a", Context(storage="back again"))
    assert [f.status for f in journal.verify(storage)] == [UNBACKED]


def test_the_workflow_fingerprint_row_follows_the_newest_commit(journal: Journal) -> None:
    journal.set_fingerprint("wf", "fp-old")
    journal.set_fingerprint("wf", "fp-new")
    journal.set_fingerprint("other", "fp-x")
    assert journal.fingerprint("wf") == "fp-new"
    assert [(w, f) for w, f, _ in journal.fingerprints()] == [("other", "fp-x"), ("wf", "fp-new")]


def test_the_fingerprint_row_follows_commits_from_several_journals(journal: Journal, schema_url: str) -> None:
    other = Journal(schema_url, encode=checkpoint_bytes)
    storage = StorageDefault()
    try:
        for writer, fingerprint in ((journal, "fp-a"), (other, "fp-b"), (journal, "fp-a")):
            unit = UnitOfWork(storage, journal=writer, workflow_id="wf", task_id="0-a", attempt=1)
            unit.put("wf-0-a", Context(storage=fingerprint), fingerprint=fingerprint)
            unit.commit()
            writer.flush()
            assert other.fingerprint("wf") == fingerprint
    finally:
        other.close()


def test_many_threads_record_at_once(journal: Journal) -> None:
    storage = StorageDefault()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                committed_unit(storage, journal, f"wf-{n}-{i}", i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(journal.units(outcome="committed")) == 80


@pytest.mark.timeout(60)
def test_more_threads_than_the_connection_pool_holds_share_one_journal(journal: Journal) -> None:
    # SQLAlchemy's pool holds 15 connections: all 24 threads commit while the others are still alive
    storage = StorageDefault()
    threads_count = 24
    all_committed = threading.Barrier(threads_count, timeout=30)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            committed_unit(storage, journal, f"wf-{n}", n)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        all_committed.wait()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    journal.close()  # returns at once: no connection is left checked out by a thread
    reader = Journal(journal.url)
    try:
        assert [u.outcome for u in reader.units()] == ["committed"] * threads_count
    finally:
        reader.close()


def test_a_journal_without_an_encoder_records_no_checksums(journal: Journal) -> None:
    journal.encode = None
    unit = committed_unit(StorageDefault(), journal, "wf-0-a", 1)
    [write] = journal.unit(unit.id).writes  # type: ignore[union-attr]
    assert write.checksum is None and write.size is None
    with pytest.raises(ValueError, match="encoder"):
        journal.verify(StorageDefault())


def _record_units(url: str, worker: int, count: int) -> None:
    """Run in a child process: commit `count` units to the journal at `url`."""
    journal = Journal(url, encode=checkpoint_bytes)
    storage = StorageDefault()
    try:
        for i in range(count):
            unit = UnitOfWork(storage, journal=journal, workflow_id=f"wf{worker}", task_id=str(i), attempt=1)
            unit.put(f"wf{worker}-{i}", Context(storage=i))
            unit.commit()
    finally:
        journal.close()


@pytest.mark.slow
def test_many_processes_share_one_sqlite_journal(tmp_path: Path) -> None:
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Journal(url).close()  # created once, at head
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_record_units, args=(url, n, 40)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    reader = Journal(url)
    try:
        units = reader.units(limit=None)
        assert len(units) == 160 and {u.outcome for u in units} == {"committed"}
    finally:
        reader.close()


@pytest.mark.timeout(10)
def test_reading_the_journal_never_waits_for_a_writer(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "journal.db"
    journal = Journal(f"sqlite:///{path}", encode=checkpoint_bytes)
    committed_unit(StorageDefault(), journal, "wf-0-a", 1)
    journal.flush()
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        assert [u.outcome for u in journal.units()] == ["committed"]
        assert journal.fingerprint("wf") == "fp-1"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        journal.close()


def test_last_writes_gives_each_keys_newest_committed_write(journal: Journal) -> None:
    import hashlib

    storage = StorageDefault()
    ids = [f"{n:032x}" for n in range(1, 4)]  # increasing: the newest wins even if two start in the same microsecond
    committed_unit(storage, journal, "k", {"v": 1}, unit_id=ids[0], run_id="run-1")
    committed_unit(storage, journal, "k", {"v": 2}, unit_id=ids[1], run_id="run-2")
    committed_unit(storage, journal, "gone", {"v": 3}, unit_id=ids[2])
    with UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-b", attempt=1) as unit:
        unit.delete("gone")
    found = journal.last_writes(["k", "gone", "never"])
    assert set(found) == {"k", "gone"}
    expected = hashlib.sha256(checkpoint_bytes(storage.read_checkpoint("k").context)).hexdigest()  # type: ignore[union-attr]
    assert (found["k"].checksum, found["k"].unit_id, found["k"].run_id) == (expected, ids[1], "run-2")
    assert found["k"].pending == () and not found["k"].deleted
    assert found["gone"].deleted and found["gone"].checksum is None and found["gone"].unit_id == unit.id


def test_last_writes_asked_with_the_workflow_answers_as_asked_by_key(journal: Journal) -> None:
    """A resume passes its workflow id: its newest units settle most keys, the key index the rest."""
    storage = StorageDefault()
    ids = (f"{n:032x}" for n in range(1, 1000))  # increasing, as time goes
    for run in range(8):  # many runs wrote the same keys
        for key in ("k0", "k1", "k2", "k3"):
            committed_unit(storage, journal, key, {"run": run}, unit_id=next(ids), run_id=f"run-{run}")
    journal.reserve([("wf", "0-a", "k1")])  # an intent after k1's last commit (value unknown: a crash)
    with UnitOfWork(storage, journal=journal, workflow_id="wf", task_id="0-a", attempt=1, unit_id=next(ids)) as unit:
        unit.delete("k2")
    with UnitOfWork(storage, journal=journal, workflow_id="other", task_id="0-a", attempt=1, unit_id=next(ids)) as other:
        other.put("elsewhere", Context(storage=1))  # a key only another workflow wrote
    keys = ["k0", "k1", "k2", "k3", "elsewhere", "never"]
    by_workflow, by_key = journal.last_writes(keys, workflow_id="wf"), journal.last_writes(keys)
    assert by_workflow == by_key
    assert set(by_key) == {"k0", "k1", "k2", "k3", "elsewhere"} and by_key["k0"].run_id == "run-7"
    assert by_key["k1"].pending == (None,) and by_key["k2"].deleted and by_key["elsewhere"].unit_id == other.id
