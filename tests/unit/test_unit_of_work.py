"""Unit tests for `uow.UnitOfWork`, against hand-written fakes that record every storage call."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from datetime import timezone
from typing import Any, NamedTuple

import pytest

from uow import (
    ACTIVE,
    COMMITTED,
    DELETE,
    FAILED,
    ROLLED_BACK,
    CommitError,
    ConflictError,
    HookError,
    JournalError,
    NestingError,
    Put,
    UnitClosedError,
    UnitOfWork,
    UnitOfWorkError,
)

# -- fakes -------------------------------------------------------------------------------------


class StorageDown(Exception):
    """What the fake storages raise when told to fail."""


class Boom(Exception):
    """An error from the body of a `with` block or from a hook."""


class Checkpoint(NamedTuple):
    context: Any
    fingerprint: str | None


@dataclass(frozen=True)
class Stored:
    context: Any
    fingerprint: str | None = None
    ttl: int | None = None


class FakeStorage:
    """A dict with a call log; `fail_*_on` name the keys whose call raises StorageDown."""

    def __init__(self, data: dict[str, Stored] | None = None) -> None:
        self.data: dict[str, Stored] = dict(data or {})
        self.calls: list[tuple[Any, ...]] = []
        self.fail_post_on: set[str] = set()
        self.fail_delete_on: set[str] = set()
        self.fail_read_on: set[str] = set()

    def key(self, task: Any) -> str:
        return str(task)

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.calls.append(("post", key, context, ttl, fingerprint))
        if key in self.fail_post_on:
            raise StorageDown(f"post {key}")
        self.data[key] = Stored(context, fingerprint, ttl)

    def get(self, key: str) -> Any:
        self.calls.append(("get", key))
        stored = self.data.get(key)
        return None if stored is None else stored.context

    def delete(self, key: str) -> bool:
        self.calls.append(("delete", key))
        if key in self.fail_delete_on:
            raise StorageDown(f"delete {key}")
        return self.data.pop(key, None) is not None

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        self.calls.append(("read_checkpoint", key))
        if key in self.fail_read_on:
            raise StorageDown(f"read {key}")
        stored = self.data.get(key)
        return None if stored is None else Checkpoint(stored.context, stored.fingerprint)

    def writes(self) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] in ("post", "delete")]

    def reads(self) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] in ("get", "read_checkpoint")]


class MinimalStorage:
    """Only the three required methods: no delete, no read_checkpoint."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail_post_on: set[str] = set()

    def key(self, task: Any) -> str:
        return str(task)

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.calls.append(("post", key, context, ttl, fingerprint))
        if key in self.fail_post_on:
            raise StorageDown(f"post {key}")
        self.data[key] = context

    def get(self, key: str) -> Any:
        self.calls.append(("get", key))
        return self.data.get(key)


@dataclass(frozen=True)
class Entry:
    """What a journal saw of a unit, copied at record time."""

    unit: UnitOfWork
    state: str
    written_keys: list[str]
    changes: dict[str, Any]


class RecordingJournal:
    def __init__(self, fail: bool = False) -> None:
        self.entries: list[Entry] = []
        self.fail = fail

    def record(self, unit: UnitOfWork) -> None:
        self.entries.append(Entry(unit, unit.state, unit.written_keys, dict(unit.changes)))
        if self.fail:
            raise StorageDown("journal down")


def recorder(log: list[str], name: str, fail: bool = False) -> Any:
    def hook() -> None:
        log.append(name)
        if fail:
            raise Boom(name)

    return hook


def make_failed(unit: UnitOfWork, storage: FakeStorage) -> None:
    storage.fail_post_on.add("bad")
    unit.put("bad", 1)
    with pytest.raises(CommitError):
        unit.commit()


# -- staging and reading -----------------------------------------------------------------------


def test_staging_does_no_io() -> None:
    storage = FakeStorage({"b": Stored("old")})
    unit = UnitOfWork(storage)
    unit.put("a", 1, fingerprint="f", ttl=5)
    unit.delete("b")
    assert storage.calls == []
    assert unit.changes == {"a": Put(1, "f", 5), "b": DELETE}


def test_get_sees_staged_value_then_storage() -> None:
    storage = FakeStorage({"a": Stored("old"), "b": Stored("stored")})
    unit = UnitOfWork(storage)
    unit.put("a", "new")
    assert unit.get("a") == "new"
    assert storage.calls == []
    assert unit.get("b") == "stored"
    assert storage.calls == [("read_checkpoint", "b")]  # one read; a missing key is told apart from None


def test_get_uses_get_on_a_storage_without_read_checkpoint() -> None:
    storage = MinimalStorage()
    storage.data["b"] = "stored"
    unit = UnitOfWork(storage)
    assert unit.get("b") == "stored"
    assert unit.get("missing", "dflt") == "dflt"
    assert storage.calls == [("get", "b"), ("get", "missing")]


def test_get_of_staged_delete_returns_default_without_io() -> None:
    storage = FakeStorage({"a": Stored("old")})
    unit = UnitOfWork(storage)
    unit.delete("a")
    assert unit.get("a") is None
    assert unit.get("a", "dflt") == "dflt"
    assert storage.calls == []


def test_get_returns_default_when_storage_answers_none() -> None:
    unit = UnitOfWork(FakeStorage())
    assert unit.get("missing", "dflt") == "dflt"


def test_staging_a_delete_needs_a_storage_that_can_delete() -> None:
    with pytest.raises(TypeError, match="delete"):
        UnitOfWork(MinimalStorage()).delete("a")


# -- commit ------------------------------------------------------------------------------------


def test_commit_writes_each_key_once_in_staging_order() -> None:
    storage = FakeStorage({"c": Stored("old")})
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    unit.put("b", 2, fingerprint="fb", ttl=60)
    unit.delete("c")
    unit.put("a", 3, fingerprint="fa")  # replaces the first put of "a", keeps its place
    unit.commit()
    assert storage.writes() == [
        ("post", "a", 3, None, "fa"),
        ("post", "b", 2, 60, "fb"),
        ("delete", "c"),
    ]
    assert storage.data == {"a": Stored(3, "fa"), "b": Stored(2, "fb", 60)}
    assert unit.state == COMMITTED
    assert unit.written_keys == ["a", "b", "c"]


def test_single_key_commit_is_one_post_and_no_reads() -> None:
    storage = FakeStorage({"a": Stored("old")})
    unit = UnitOfWork(storage)
    unit.put("a", "new", fingerprint="fp", ttl=10)
    unit.commit()
    assert storage.calls == [("post", "a", "new", 10, "fp")]


def test_commit_with_nothing_staged_does_no_io() -> None:
    storage = FakeStorage()
    unit = UnitOfWork(storage)
    unit.commit()
    assert storage.calls == []
    assert unit.state == COMMITTED
    assert unit.written_keys == []


def test_multi_key_commit_reads_one_before_image_per_key_first() -> None:
    storage = FakeStorage()
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    unit.put("b", 2)
    unit.commit()
    assert [call[:2] for call in storage.calls] == [
        ("read_checkpoint", "a"),
        ("read_checkpoint", "b"),
        ("post", "a"),
        ("post", "b"),
    ]


# -- with block and explicit outcome -----------------------------------------------------------


def test_clean_with_exit_commits() -> None:
    storage = FakeStorage()
    with UnitOfWork(storage) as unit:
        unit.put("a", 1)
        assert storage.calls == []
    assert unit.state == COMMITTED
    assert storage.data == {"a": Stored(1)}


def test_exception_in_with_rolls_back_writes_nothing_and_reraises_it() -> None:
    storage = FakeStorage()
    boom = Boom("body")
    with pytest.raises(Boom) as raised:
        with UnitOfWork(storage) as unit:
            unit.put("a", 1)
            unit.put("b", 2)
            raise boom
    assert raised.value is boom
    assert storage.calls == []
    assert unit.state == ROLLED_BACK


def test_explicit_commit_inside_with_is_not_repeated_on_exit() -> None:
    storage = FakeStorage()
    with UnitOfWork(storage) as unit:
        unit.put("a", 1)
        unit.commit()
    assert storage.calls == [("post", "a", 1, None, None)]
    assert unit.state == COMMITTED


def test_explicit_commit_then_exception_keeps_the_commit() -> None:
    storage = FakeStorage()
    with pytest.raises(Boom):
        with UnitOfWork(storage) as unit:
            unit.put("a", 1)
            unit.commit()
            raise Boom()
    assert unit.state == COMMITTED
    assert storage.data == {"a": Stored(1)}


def test_explicit_rollback_inside_with_writes_nothing() -> None:
    storage = FakeStorage()
    with UnitOfWork(storage) as unit:
        unit.put("a", 1)
        unit.rollback()
    assert storage.calls == []
    assert unit.state == ROLLED_BACK


def test_state_constants_are_the_documented_strings() -> None:
    assert (ACTIVE, COMMITTED, ROLLED_BACK, FAILED) == ("active", "committed", "rolled_back", "failed")


@pytest.mark.parametrize(
    ("settle", "expected"),
    [
        (lambda unit, storage: unit.commit(), COMMITTED),
        (lambda unit, storage: unit.rollback(), ROLLED_BACK),
        (make_failed, FAILED),
    ],
    ids=["commit", "rollback", "failed-commit"],
)
def test_state_transitions(settle: Any, expected: str) -> None:
    storage = FakeStorage()
    unit = UnitOfWork(storage)
    assert unit.state == ACTIVE
    assert unit.finished_at is None
    settle(unit, storage)
    assert unit.state == expected
    assert unit.finished_at is not None


@pytest.mark.parametrize(
    "settle",
    [lambda unit, storage: unit.commit(), lambda unit, storage: unit.rollback(), make_failed],
    ids=["committed", "rolled_back", "failed"],
)
@pytest.mark.parametrize(
    "use",
    [
        lambda unit: unit.put("x", 1),
        lambda unit: unit.delete("x"),
        lambda unit: unit.commit(),
        lambda unit: unit.begin_nested(),
        lambda unit: unit.get("x"),
        lambda unit: unit.__enter__(),
    ],
    ids=["put", "delete", "commit", "begin_nested", "get", "enter"],
)
def test_closed_unit_refuses_use_and_says_its_state(settle: Any, use: Any) -> None:
    storage = FakeStorage()
    unit = UnitOfWork(storage)
    settle(unit, storage)
    calls_before = list(storage.calls)
    with pytest.raises(UnitClosedError, match=unit.state) as raised:
        use(unit)
    assert raised.value.state == unit.state
    assert storage.calls == calls_before


@pytest.mark.parametrize(
    "settle", [lambda unit, storage: unit.rollback(), make_failed], ids=["rolled_back", "failed"]
)
def test_rollback_of_rolled_back_or_failed_unit_is_a_noop(settle: Any) -> None:
    storage = FakeStorage()
    unit = UnitOfWork(storage)
    ran: list[str] = []
    unit.on_rollback(recorder(ran, "r"))
    settle(unit, storage)
    state = unit.state
    unit.rollback()
    assert unit.state == state
    assert ran == ["r"]  # the hook did not run a second time


def test_rollback_of_committed_unit_is_an_error() -> None:
    unit = UnitOfWork(FakeStorage())
    unit.commit()
    with pytest.raises(UnitClosedError, match="committed"):
        unit.rollback()
    assert unit.state == COMMITTED


# -- nesting -----------------------------------------------------------------------------------


def test_nested_commit_merges_into_parent_without_io() -> None:
    storage = FakeStorage()
    with UnitOfWork(storage) as parent:
        parent.put("a", 1)
        with parent.begin_nested() as child:
            child.put("b", 2)
            child.put("a", 10)
        assert child.state == COMMITTED
        assert storage.calls == []
        assert parent.get("b") == 2
        assert parent.changes == {"a": Put(10), "b": Put(2)}
    assert [call[:3] for call in storage.writes()] == [("post", "a", 10), ("post", "b", 2)]


def test_nested_failure_drops_only_the_child_changes() -> None:
    storage = FakeStorage()
    with UnitOfWork(storage) as parent:
        parent.put("a", 1)
        with pytest.raises(Boom):
            with parent.begin_nested() as child:
                child.put("a", 10)
                child.put("b", 2)
                raise Boom()
        assert child.state == ROLLED_BACK
        parent.put("c", 3)
    assert storage.data == {"a": Stored(1), "c": Stored(3)}


def test_nested_get_sees_child_then_parent_then_storage() -> None:
    storage = FakeStorage({"a": Stored("s-a"), "b": Stored("s-b"), "c": Stored("s-c")})
    parent = UnitOfWork(storage)
    parent.put("a", "p-a")
    parent.put("b", "p-b")
    parent.delete("d")
    child = parent.begin_nested()
    child.put("a", "c-a")
    assert child.get("a") == "c-a"
    assert child.get("b") == "p-b"
    assert child.get("d", "gone") == "gone"
    assert storage.calls == []
    assert child.get("c") == "s-c"
    assert storage.calls == [("read_checkpoint", "c")]


def test_doubly_nested_commit_reaches_the_top_level() -> None:
    storage = FakeStorage()
    with UnitOfWork(storage) as top:
        with top.begin_nested() as middle:
            with middle.begin_nested() as inner:
                inner.put("deep", 1)
    assert storage.data == {"deep": Stored(1)}


def test_parent_refuses_commit_while_child_is_active() -> None:
    storage = FakeStorage()
    parent = UnitOfWork(storage)
    parent.put("a", 1)
    child = parent.begin_nested()
    with pytest.raises(NestingError, match="nested unit is still active"):
        parent.commit()
    assert parent.state == ACTIVE
    assert storage.calls == []
    child.commit()
    parent.commit()
    assert storage.data == {"a": Stored(1)}


@pytest.mark.parametrize(
    "use",
    [lambda unit: unit.put("x", 1), lambda unit: unit.delete("x"), lambda unit: unit.begin_nested()],
    ids=["put", "delete", "begin_nested"],
)
def test_parent_refuses_staging_while_child_is_active(use: Any) -> None:
    parent = UnitOfWork(FakeStorage())
    parent.begin_nested()
    with pytest.raises(NestingError):
        use(parent)
    assert parent.changes == {}


def test_leaving_parent_with_block_with_an_active_child_rolls_everything_back() -> None:
    storage = FakeStorage()
    with pytest.raises(NestingError):
        with UnitOfWork(storage) as parent:
            parent.put("a", 1)
            child = parent.begin_nested()
            child.put("b", 2)
    assert (parent.state, child.state) == (ROLLED_BACK, ROLLED_BACK)
    assert storage.calls == []


def test_parent_rollback_also_rolls_back_an_active_child() -> None:
    ran: list[str] = []
    parent = UnitOfWork(FakeStorage())
    parent.on_rollback(recorder(ran, "parent"))
    child = parent.begin_nested()
    child.on_rollback(recorder(ran, "child"))
    parent.rollback()
    assert child.state == ROLLED_BACK
    assert ran == ["child", "parent"]


def test_child_commit_after_merge_is_refused() -> None:
    parent = UnitOfWork(FakeStorage())
    child = parent.begin_nested()
    child.commit()
    with pytest.raises(UnitClosedError, match="committed"):
        child.put("a", 1)


# -- hooks -------------------------------------------------------------------------------------


def test_on_commit_hooks_run_in_order_after_the_commit_is_final() -> None:
    storage = FakeStorage()
    seen: list[tuple[str, str, bool]] = []
    with UnitOfWork(storage) as unit:
        unit.put("a", 1)
        unit.on_commit(lambda: seen.append(("first", unit.state, "a" in storage.data)))
        unit.on_commit(lambda: seen.append(("second", unit.state, "a" in storage.data)))
        assert seen == []
    assert seen == [("first", COMMITTED, True), ("second", COMMITTED, True)]


def test_rollback_runs_on_rollback_hooks_in_order_and_not_on_commit_hooks() -> None:
    ran: list[str] = []
    with pytest.raises(Boom):
        with UnitOfWork(FakeStorage()) as unit:
            unit.on_commit(recorder(ran, "commit"))
            unit.on_rollback(recorder(ran, "rollback-1"))
            unit.on_rollback(recorder(ran, "rollback-2"))
            raise Boom()
    assert ran == ["rollback-1", "rollback-2"]


def test_commit_does_not_run_on_rollback_hooks() -> None:
    ran: list[str] = []
    unit = UnitOfWork(FakeStorage())
    unit.on_rollback(recorder(ran, "rollback"))
    unit.on_commit(recorder(ran, "commit"))
    unit.commit()
    assert ran == ["commit"]


def test_failed_commit_runs_on_rollback_hooks_with_state_failed() -> None:
    storage = FakeStorage()
    storage.fail_post_on.add("a")
    seen: list[str] = []
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    unit.on_commit(lambda: seen.append("commit"))
    unit.on_rollback(lambda: seen.append(unit.state))
    with pytest.raises(CommitError):
        unit.commit()
    assert seen == [FAILED]


def test_hook_failure_after_commit_raises_hook_error_once_all_hooks_ran() -> None:
    storage = FakeStorage()
    ran: list[str] = []
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    unit.on_commit(recorder(ran, "one", fail=True))
    unit.on_commit(recorder(ran, "two"))
    unit.on_commit(recorder(ran, "three", fail=True))
    with pytest.raises(HookError) as raised:
        unit.commit()
    assert ran == ["one", "two", "three"]
    assert [str(error) for error in raised.value.errors] == ["one", "three"]
    assert raised.value.__cause__ is raised.value.errors[0]
    assert unit.state == COMMITTED
    assert storage.data == {"a": Stored(1)}


def test_hook_failure_on_explicit_rollback_raises_hook_error() -> None:
    ran: list[str] = []
    unit = UnitOfWork(FakeStorage())
    unit.on_rollback(recorder(ran, "one", fail=True))
    unit.on_rollback(recorder(ran, "two"))
    with pytest.raises(HookError) as raised:
        unit.rollback()
    assert ran == ["one", "two"]
    assert isinstance(raised.value.__cause__, Boom)
    assert unit.state == ROLLED_BACK


def test_hook_failure_during_exception_rollback_never_hides_the_original(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    with caplog.at_level(logging.ERROR, logger="uow"):
        with pytest.raises(KeyError) as raised:
            with UnitOfWork(FakeStorage()) as unit:
                unit.on_rollback(recorder(ran, "broken hook", fail=True))
                unit.on_rollback(recorder(ran, "next"))
                raise KeyError("original")
    assert raised.type is KeyError
    assert ran == ["broken hook", "next"]
    assert any("broken hook" in note for note in raised.value.__notes__)
    assert any(record.name == "uow" and "broken hook" in record.getMessage() for record in caplog.records)


def test_explicit_rollback_while_handling_an_error_notes_hook_errors_on_it() -> None:
    unit = UnitOfWork(FakeStorage())
    unit.on_rollback(recorder([], "broken hook", fail=True))
    with pytest.raises(ValueError) as raised:
        try:
            raise ValueError("original")
        except ValueError:
            unit.rollback()
            raise
    assert any("broken hook" in note for note in raised.value.__notes__)


def test_hook_failure_after_failed_commit_is_noted_on_the_commit_error() -> None:
    storage = FakeStorage()
    storage.fail_post_on.add("a")
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    unit.on_rollback(recorder([], "broken hook", fail=True))
    with pytest.raises(CommitError) as raised:
        unit.commit()
    assert any("broken hook" in note for note in raised.value.__notes__)


def test_child_on_commit_hooks_wait_for_the_top_level_commit() -> None:
    ran: list[str] = []
    storage = FakeStorage()
    parent = UnitOfWork(storage)
    parent.on_commit(recorder(ran, "parent"))
    with parent.begin_nested() as child:
        child.put("a", 1)
        child.on_commit(recorder(ran, "child"))
    assert ran == []
    parent.commit()
    assert ran == ["parent", "child"]


def test_child_on_commit_hooks_do_not_run_when_the_parent_rolls_back() -> None:
    ran: list[str] = []
    parent = UnitOfWork(FakeStorage())
    with parent.begin_nested() as child:
        child.on_commit(recorder(ran, "child-commit"))
    parent.rollback()
    assert ran == []


def test_child_on_rollback_hooks_run_on_child_rollback_only_once() -> None:
    ran: list[str] = []
    parent = UnitOfWork(FakeStorage())
    parent.on_rollback(recorder(ran, "parent"))
    child = parent.begin_nested()
    child.on_rollback(recorder(ran, "child"))
    child.rollback()
    assert ran == ["child"]
    parent.commit()
    assert ran == ["child"]


def test_merged_child_on_rollback_hooks_run_when_the_parent_fails() -> None:
    ran: list[str] = []
    storage = FakeStorage()
    storage.fail_post_on.add("a")
    parent = UnitOfWork(storage)
    with parent.begin_nested() as child:
        child.put("a", 1)
        child.on_rollback(recorder(ran, "child"))
    assert ran == []
    with pytest.raises(CommitError):
        parent.commit()
    assert ran == ["child"]


def test_on_commit_returns_the_hook_so_it_can_decorate() -> None:
    ran: list[str] = []
    unit = UnitOfWork(FakeStorage())

    @unit.on_commit
    def announce() -> None:
        ran.append("announced")

    unit.commit()
    assert ran == ["announced"]
    assert callable(announce)


# -- commit failures ---------------------------------------------------------------------------


def test_storage_error_during_commit_raises_commit_error_and_fails_the_unit() -> None:
    storage = FakeStorage()
    storage.fail_post_on.add("a")
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    with pytest.raises(CommitError) as raised:
        unit.commit()
    assert isinstance(raised.value.__cause__, StorageDown)
    assert raised.value.key == "a"
    assert raised.value.written == []
    assert unit.state == FAILED
    assert storage.calls == [("post", "a", 1, None, None)]  # no retry, no restore


def test_commit_error_propagates_out_of_a_with_block() -> None:
    storage = FakeStorage()
    storage.fail_post_on.add("a")
    with pytest.raises(CommitError):
        with UnitOfWork(storage) as unit:
            unit.put("a", 1)
    assert unit.state == FAILED


def test_multi_key_failure_restores_before_images_and_deletes_new_keys() -> None:
    storage = FakeStorage({"a": Stored("old-a", "fp-a", 30), "x": Stored("untouched")})
    before = dict(storage.data)
    storage.fail_post_on.add("c")
    unit = UnitOfWork(storage)
    unit.put("a", "new-a", fingerprint="fp-new")
    unit.put("b", "new-b")
    unit.delete("x")
    unit.put("c", "new-c")
    with pytest.raises(CommitError) as raised:
        unit.commit()
    error = raised.value
    assert (error.key, error.written, error.restored, error.unrestored) == ("c", ["a", "b", "x"], True, [])
    assert unit.written_keys == ["a", "b", "x"]
    assert storage.writes()[-3:] == [
        ("post", "x", "untouched", None, None),
        ("delete", "b"),
        ("post", "a", "old-a", None, "fp-a"),  # ttl is not in a before-image
    ]
    assert {key: (s.context, s.fingerprint) for key, s in storage.data.items()} == {
        key: (s.context, s.fingerprint) for key, s in before.items()
    }


def test_multi_key_failure_reports_keys_it_could_not_restore() -> None:
    storage = FakeStorage({"a": Stored("old-a")})
    storage.fail_post_on.add("c")
    storage.fail_delete_on.add("b")
    unit = UnitOfWork(storage)
    for key in ("a", "b", "c"):
        unit.put(key, f"new-{key}")
    with pytest.raises(CommitError) as raised:
        unit.commit()
    assert raised.value.restored is False
    assert raised.value.unrestored == ["b"]
    assert any("'b'" in note for note in raised.value.__notes__)
    assert storage.data["a"] == Stored("old-a")


def test_storage_without_restore_methods_reports_written_keys_unrestored() -> None:
    storage = MinimalStorage()
    storage.fail_post_on.add("c")
    unit = UnitOfWork(storage)
    for key in ("a", "b", "c"):
        unit.put(key, key)
    with pytest.raises(CommitError) as raised:
        unit.commit()
    error = raised.value
    assert (error.written, error.restored, error.unrestored) == (["a", "b"], False, ["a", "b"])
    assert [call[:2] for call in storage.calls] == [("post", "a"), ("post", "b"), ("post", "c")]
    assert unit.state == FAILED


def test_before_image_read_failure_writes_nothing() -> None:
    storage = FakeStorage()
    storage.fail_read_on.add("b")
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    unit.put("b", 2)
    with pytest.raises(CommitError) as raised:
        unit.commit()
    assert (raised.value.key, raised.value.written) == ("b", [])
    assert isinstance(raised.value.__cause__, StorageDown)
    assert storage.writes() == []
    assert unit.state == FAILED


# -- journal -----------------------------------------------------------------------------------


def test_journal_records_a_committed_top_level_unit_once() -> None:
    storage = FakeStorage()
    journal = RecordingJournal()
    with UnitOfWork(storage, journal=journal, workflow_id="wf", task_id=3, attempt=2) as unit:
        unit.put("a", 1, fingerprint="fp")
        with unit.begin_nested() as child:
            child.put("b", 2)
    assert len(journal.entries) == 1
    entry = journal.entries[0]
    assert entry.unit is unit
    assert (entry.state, entry.written_keys) == (COMMITTED, ["a", "b"])
    assert entry.changes == {"a": Put(1, "fp", None), "b": Put(2)}
    assert (unit.workflow_id, unit.task_id, unit.attempt) == ("wf", 3, 2)
    assert unit.started_at.tzinfo is timezone.utc
    assert unit.finished_at is not None and unit.finished_at >= unit.started_at


@pytest.mark.parametrize(
    ("settle", "expected"),
    [(lambda unit, storage: unit.rollback(), ROLLED_BACK), (make_failed, FAILED)],
    ids=["rolled_back", "failed"],
)
def test_journal_records_the_final_state_of_other_outcomes(settle: Any, expected: str) -> None:
    storage = FakeStorage()
    journal = RecordingJournal()
    unit = UnitOfWork(storage, journal=journal)
    settle(unit, storage)
    assert [entry.state for entry in journal.entries] == [expected]


def test_journal_records_before_hooks_run() -> None:
    journal = RecordingJournal()
    entries_seen: list[int] = []
    unit = UnitOfWork(FakeStorage(), journal=journal)
    unit.on_commit(lambda: entries_seen.append(len(journal.entries)))
    unit.commit()
    assert entries_seen == [1]


def test_journal_error_after_commit_raises_journal_error_and_keeps_the_commit() -> None:
    storage = FakeStorage()
    ran: list[str] = []
    unit = UnitOfWork(storage, journal=RecordingJournal(fail=True))
    unit.put("a", 1)
    unit.on_commit(recorder(ran, "hook"))
    with pytest.raises(JournalError) as raised:
        unit.commit()
    assert isinstance(raised.value.__cause__, StorageDown)
    assert unit.state == COMMITTED
    assert storage.data == {"a": Stored(1)}
    assert ran == ["hook"]


def test_journal_error_after_a_failed_body_is_noted_on_the_original(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="uow"):
        with pytest.raises(Boom) as raised:
            with UnitOfWork(FakeStorage(), journal=RecordingJournal(fail=True)):
                raise Boom("original")
    assert str(raised.value) == "original"
    assert any("journal" in note for note in raised.value.__notes__)
    assert any(record.name == "uow" for record in caplog.records)


def test_journal_error_after_a_failed_commit_is_noted_on_the_commit_error() -> None:
    storage = FakeStorage()
    storage.fail_post_on.add("a")
    unit = UnitOfWork(storage, journal=RecordingJournal(fail=True))
    unit.put("a", 1)
    with pytest.raises(CommitError) as raised:
        unit.commit()
    assert any("journal" in note for note in raised.value.__notes__)
    assert unit.state == FAILED


# -- errors and boundaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [UnitClosedError, NestingError, CommitError, HookError, JournalError, ConflictError]
)
def test_every_error_is_a_unit_of_work_error(error: type[Exception]) -> None:
    assert issubclass(error, UnitOfWorkError)
    assert error.__module__ == "uow.errors"


@pytest.mark.slow
def test_uow_never_imports_dotflow() -> None:
    code = "import sys, uow; sys.exit(any(m.split('.')[0] == 'dotflow' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
