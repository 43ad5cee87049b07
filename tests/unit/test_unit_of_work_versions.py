"""`UnitOfWork` on a storage with versions: conditional commits, conflicts, interrupts, re-entrancy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from uow import ACTIVE, COMMITTED, CONFLICT, FAILED, CommitError, ConflictError, UnitClosedError, UnitOfWork


@dataclass(frozen=True)
class Versioned:
    context: Any
    fingerprint: str | None
    version: str


class VersionedFake:
    """A dict with a counter per write; `post_if`/`delete_if` honour versions; `interrupt_on` keys raise
    KeyboardInterrupt from post; `on_post` runs inside post (to call back into a unit)."""

    def __init__(self) -> None:
        self.data: dict[str, Versioned] = {}
        self.calls: list[tuple[str, str]] = []
        self.counter = 0
        self.interrupt_on: set[str] = set()
        self.on_post: Any = None

    def key(self, task: Any) -> str:
        return str(task)

    def _store(self, key: str, context: Any, fingerprint: str | None) -> None:
        if key in self.interrupt_on:
            raise KeyboardInterrupt(f"post {key}")
        if self.on_post is not None:
            self.on_post()
        self.counter += 1
        self.data[key] = Versioned(context, fingerprint, f"v{self.counter}")

    def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
        self.calls.append(("post", key))
        self._store(key, context, fingerprint)

    def get(self, key: str) -> Any:
        self.calls.append(("get", key))
        stored = self.data.get(key)
        return None if stored is None else stored.context

    def read_checkpoint(self, key: str) -> Versioned | None:
        self.calls.append(("read_checkpoint", key))
        return self.data.get(key)

    def delete(self, key: str) -> bool:
        self.calls.append(("delete", key))
        return self.data.pop(key, None) is not None

    def post_if(
        self, key: str, context: Any, *, version: str | None, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        self.calls.append(("post_if", key))
        if self._version(key) != version:
            return False
        self._store(key, context, fingerprint)
        return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        self.calls.append(("delete_if", key))
        if self._version(key) != version:
            return False
        self.data.pop(key, None)
        return True

    def _version(self, key: str) -> str | None:
        stored = self.data.get(key)
        return None if stored is None else stored.version

    def someone_else_writes(self, key: str, value: Any) -> None:
        self.counter += 1
        self.data[key] = Versioned(value, None, f"v{self.counter}")


def test_a_read_makes_the_write_of_that_key_conditional_on_what_was_seen() -> None:
    storage = VersionedFake()
    storage.post("a", "old")
    with UnitOfWork(storage) as unit:
        assert unit.get("a") == "old"
        unit.put("a", "new")
    assert storage.calls[-1] == ("post_if", "a")
    assert storage.data["a"].context == "new"


def test_a_key_changed_since_it_was_read_is_a_conflict_and_is_not_written() -> None:
    storage = VersionedFake()
    storage.post("a", "old")
    unit = UnitOfWork(storage)
    assert unit.get("a") == "old"
    storage.someone_else_writes("a", "theirs")
    unit.put("a", "mine")
    with pytest.raises(ConflictError, match="'a'") as raised:
        unit.commit()
    assert raised.value.key == "a"
    assert raised.value.expected_version == "v1"
    assert unit.state == CONFLICT
    assert storage.data["a"].context == "theirs"


def test_a_key_seen_absent_and_created_meanwhile_is_a_conflict() -> None:
    storage = VersionedFake()
    unit = UnitOfWork(storage)
    assert unit.get("a", "none") == "none"
    storage.someone_else_writes("a", "theirs")
    unit.put("a", "mine")
    with pytest.raises(ConflictError, match="absent"):
        unit.commit()
    assert storage.data["a"].context == "theirs"


def test_a_delete_of_a_key_changed_since_it_was_read_is_a_conflict() -> None:
    storage = VersionedFake()
    storage.post("a", "old")
    unit = UnitOfWork(storage)
    unit.get("a")
    storage.someone_else_writes("a", "theirs")
    unit.delete("a")
    with pytest.raises(ConflictError):
        unit.commit()
    assert storage.data["a"].context == "theirs"


def test_keys_never_read_are_written_unconditionally() -> None:
    storage = VersionedFake()
    storage.post("a", "old")
    with UnitOfWork(storage) as unit:
        unit.put("a", "new")
    assert storage.calls[-1] == ("post", "a")


def test_expect_version_makes_the_commit_conditional_on_a_read_made_outside_the_unit() -> None:
    storage = VersionedFake()
    unit = UnitOfWork(storage)
    unit.expect_version("a", None)  # the caller saw no checkpoint
    storage.someone_else_writes("a", "theirs")
    unit.put("a", "mine")
    with pytest.raises(ConflictError):
        unit.commit()
    assert storage.calls == [("post_if", "a")]  # no read of its own


def test_the_first_version_seen_is_the_one_the_commit_checks() -> None:
    storage = VersionedFake()
    storage.post("a", "old")
    unit = UnitOfWork(storage)
    unit.get("a")
    storage.someone_else_writes("a", "theirs")
    assert unit.get("a") == "theirs"
    unit.put("a", "mine")
    with pytest.raises(ConflictError):
        unit.commit()


def test_multi_key_conflict_found_in_the_before_images_writes_nothing() -> None:
    storage = VersionedFake()
    storage.post("a", "a0")
    storage.post("b", "b0")
    unit = UnitOfWork(storage)
    unit.get("b")
    storage.someone_else_writes("b", "theirs")
    unit.put("a", "a1")
    unit.put("b", "b1")
    with pytest.raises(ConflictError, match="'b'"):
        unit.commit()
    assert [call for call in storage.calls if call[0] in ("post", "post_if")][-1] == ("post", "b")  # set-up only
    assert storage.data["a"].context == "a0"
    assert storage.data["b"].context == "theirs"


def test_multi_key_conflict_at_write_time_restores_the_keys_already_written() -> None:
    storage = VersionedFake()
    storage.post("a", "a0")
    unit = UnitOfWork(storage)
    unit.get("b")  # absent
    unit.put("a", "a1")
    unit.put("b", "b1")
    original_read = storage.read_checkpoint

    def read_then_race(key: str) -> Versioned | None:
        found = original_read(key)
        if key == "b":  # after the before-images, before the writes
            storage.someone_else_writes("b", "theirs")
        return found

    storage.read_checkpoint = read_then_race  # type: ignore[method-assign]
    with pytest.raises(ConflictError) as raised:
        unit.commit()
    assert raised.value.written == ["a"]
    assert raised.value.restored
    assert storage.data["a"].context == "a0"
    assert storage.data["b"].context == "theirs"
    assert unit.written_keys == ["a"]


def test_an_interrupt_raised_by_the_storage_mid_commit_restores_and_ends_failed() -> None:
    storage = VersionedFake()
    storage.post("a", "a0")
    storage.interrupt_on.add("b")
    unit = UnitOfWork(storage)
    unit.put("a", "a1")
    unit.put("b", "b1")
    with pytest.raises(KeyboardInterrupt) as raised:
        unit.commit()
    assert unit.state == FAILED
    assert unit.written_keys == ["a"]
    assert storage.data["a"].context == "a0"  # restored
    assert "b" not in storage.data
    assert any("commit failed writing 'b'" in note for note in raised.value.__notes__)
    with pytest.raises(UnitClosedError):
        unit.commit()
    writes = [call for call in storage.calls if call[0] == "post"]
    assert writes.count(("post", "b")) == 1


def test_a_storage_calling_back_into_the_unit_cannot_commit_it_twice() -> None:
    storage = VersionedFake()
    unit = UnitOfWork(storage)
    unit.put("a", "v")
    seen: list[BaseException] = []

    def reenter() -> None:
        storage.on_post = None
        try:
            unit.commit()
        except UnitClosedError as error:
            seen.append(error)

    storage.on_post = reenter
    unit.commit()
    assert unit.state == COMMITTED
    assert len(seen) == 1 and "committing" in str(seen[0])
    assert [call for call in storage.calls if call[0] == "post"] == [("post", "a")]


def test_a_storage_without_versions_ignores_expect_version() -> None:
    class Plain:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        def post(self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None) -> None:
            self.data[key] = context

        def get(self, key: str) -> Any:
            return self.data.get(key)

    storage = Plain()
    unit = UnitOfWork(storage)
    unit.expect_version("a", None)
    storage.data["a"] = "theirs"
    unit.put("a", "mine")
    unit.commit()
    assert storage.data["a"] == "mine"
    assert unit.expected_versions == {}


def test_commit_error_still_raised_for_ordinary_storage_errors() -> None:
    storage = VersionedFake()

    def down() -> None:
        raise OSError("disk gone")

    storage.on_post = down
    unit = UnitOfWork(storage)
    unit.put("a", 1)
    with pytest.raises(CommitError):
        unit.commit()
    assert unit.state == FAILED
    assert ACTIVE != unit.state
