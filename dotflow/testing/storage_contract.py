"""`StorageContract`: the behaviour every checkpoint storage must have, as reusable tests.

Mix it into `unittest.TestCase` (pytest collects such classes too) and return a fresh, empty storage
from `make_storage`. TTL tests never sleep: `self.clock` (a `ManualClock`, created before
`make_storage` is called) is the time the storage must read, so pass it on::

    class TestMyStorage(StorageContract, unittest.TestCase):
        def make_storage(self) -> Storage:
            return MyStorage(..., clock=self.clock)

Class flags switch off what a backend cannot do:

- `supports_ttl = False` skips every test that relies on expiry;
- `exact_values = False` skips the round-trip of rich values (tuples, sets, bytes, datetimes, ...);
- `supports_delete = False` skips `delete`, `delete_prefix` and `clear`;
- `supports_versions = False` skips versions and conditional writes (`post_if`, `delete_if`); they
  are also skipped for a storage that has no `post_if` / `delete_if` (a 1.0.1-style storage);
- `supports_leases = False` skips the lease tests (`LeaseContract`); they are also skipped for a
  storage that does not declare `uow.SupportsLeases`.

`race_threads` / `race_rounds` size the race test (threads that read then conditionally write one
key, round after round).
"""

from __future__ import annotations

import threading
import unittest
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from uow import StorageCapabilities

from dotflow.abc.storage import Storage
from dotflow.core.context import Context
from dotflow.testing.lease_contract import LeaseContract

__all__ = ["ManualClock", "StorageContract"]

if TYPE_CHECKING:
    _Base = unittest.TestCase
else:
    _Base = object


class ManualClock:
    """A clock that only moves when told: call it for the time, `advance(seconds)` to move it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class StorageContract(LeaseContract, _Base):
    supports_ttl: bool = True
    exact_values: bool = True
    supports_delete: bool = True
    supports_versions: bool = True
    race_threads: int = 8
    race_rounds: int = 20

    storage: Storage
    clock: ManualClock

    def make_storage(self) -> Storage:
        raise NotImplementedError(f"{type(self).__name__} must override make_storage()")

    def setUp(self) -> None:
        super().setUp()
        self.clock = ManualClock()
        self.storage = self.make_storage()

    # ---------------------------------------------------------------------------- helpers

    def _require(self, flag: str) -> None:
        supported = {
            "supports_ttl": self.supports_ttl,
            "exact_values": self.exact_values,
            "supports_delete": self.supports_delete,
            "supports_versions": self.supports_versions,
        }[flag]
        if not supported:
            self.skipTest(f"{type(self).__name__}.{flag} is False")
        if flag == "supports_versions" and not StorageCapabilities.of(self.storage).versions:
            self.skipTest(f"{type(self.storage).__name__} has no post_if/delete_if (a storage without versions)")

    def _post(self, key: str, storage: Any, **kwargs: Any) -> None:
        self.storage.post(key=key, context=Context(storage=storage), **kwargs)

    def _payload(self, key: str) -> Any:
        return self.storage.get(key=key).storage

    def assertExact(self, got: Any, want: Any, path: str = "value") -> None:
        """Equal values of exactly the same types, all the way down."""
        self.assertIs(type(got), type(want), f"{path}: {type(got).__name__} instead of {type(want).__name__}")
        if isinstance(want, (list, tuple)):
            self.assertEqual(len(got), len(want), path)
            for i, (g, w) in enumerate(zip(got, want)):
                self.assertExact(g, w, f"{path}[{i}]")
        elif isinstance(want, dict):
            self.assertEqual(list(got), list(want), f"{path}: keys differ")
            for k, w in want.items():
                got_key = next(g for g in got if g == k)
                self.assertIs(type(got_key), type(k), f"{path}: key {k!r} changed type")
                self.assertExact(got[k], w, f"{path}[{k!r}]")
        elif isinstance(want, (set, frozenset)):
            self.assertEqual(got, want, path)
            for w in want:
                self.assertExact(next(g for g in got if g == w), w, f"{path}{{{w!r}}}")
        elif isinstance(want, Context):
            self.assertExact(got.storage, want.storage, f"{path}.storage")
            self.assertEqual(got.task_id, want.task_id, f"{path}.task_id")
            self.assertEqual(got.workflow_id, want.workflow_id, f"{path}.workflow_id")
        else:
            self.assertEqual(got, want, path)
            if isinstance(want, datetime):
                self.assertEqual(got.utcoffset(), want.utcoffset(), f"{path}: offset changed")

    # ----------------------------------------------------------------- the 1.0.1 contract (spec 14)

    def test_post_then_get_returns_the_payload(self) -> None:
        self._post("wf-1-a", {"name": "a", "count": 3, "tags": ["x", "y"]})
        self.assertEqual(self._payload("wf-1-a"), {"name": "a", "count": 3, "tags": ["x", "y"]})

    def test_missing_key_reads_as_none(self) -> None:
        context = self.storage.get(key="wf-1-missing")
        self.assertIsInstance(context, Context)
        self.assertIsNone(context.storage)

    def test_delete_existing_key_returns_true(self) -> None:
        self._require("supports_delete")
        self._post("wf-1-a", {"v": 1})
        self.assertIs(self.storage.delete("wf-1-a"), True)
        self.assertIsNone(self._payload("wf-1-a"))

    def test_delete_missing_key_returns_false(self) -> None:
        self._require("supports_delete")
        self.assertIs(self.storage.delete("wf-1-missing"), False)

    def test_delete_prefix_counts_and_keeps_other_keys(self) -> None:
        self._require("supports_delete")
        for key in ("wf-1-a", "wf-1-b", "wf-2-c"):
            self._post(key, key)
        self.assertEqual(self.storage.delete_prefix("wf-1-"), 2)
        self.assertIsNone(self._payload("wf-1-a"))
        self.assertIsNone(self._payload("wf-1-b"))
        self.assertEqual(self._payload("wf-2-c"), "wf-2-c")

    def test_list_keys_by_prefix(self) -> None:
        for key in ("wf-1-a", "wf-1-b", "wf-2-c"):
            self._post(key, key)
        self.assertEqual(sorted(self.storage.list_keys("wf-1-")), ["wf-1-a", "wf-1-b"])

    def test_atomic_swap_with_matching_expected_replaces(self) -> None:
        self._post("wf-1-a", {"v": 1})
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected={"v": 1}, new={"v": 2}), True)
        self.assertEqual(self._payload("wf-1-a"), {"v": 2})

    def test_atomic_swap_with_other_expected_keeps_old_value(self) -> None:
        self._post("wf-1-a", {"v": 1})
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected={"v": 999}, new={"v": 2}), False)
        self.assertEqual(self._payload("wf-1-a"), {"v": 1})

    def test_atomic_swap_without_ttl_clears_the_earlier_ttl(self) -> None:
        self._require("supports_ttl")
        self._post("wf-1-a", "old", ttl=1)
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected="old", new="new"), True)
        self.clock.advance(100)
        self.assertEqual(self._payload("wf-1-a"), "new")

    def test_atomic_swap_with_ttl_expires(self) -> None:
        self._require("supports_ttl")
        self._post("wf-1-a", "old")
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected="old", new="new", ttl=1), True)
        self.clock.advance(0.5)
        self.assertEqual(self._payload("wf-1-a"), "new")
        self.clock.advance(0.5)
        self.assertIsNone(self._payload("wf-1-a"))

    def test_post_with_ttl_expires(self) -> None:
        self._require("supports_ttl")
        self._post("wf-1-a", "short-lived", ttl=10)
        self.clock.advance(9.9)
        self.assertEqual(self._payload("wf-1-a"), "short-lived")
        self.clock.advance(0.1)
        self.assertIsNone(self._payload("wf-1-a"))
        self.assertIsNone(self.storage.read_checkpoint("wf-1-a"))

    def test_clear_removes_only_that_workflow(self) -> None:
        self._require("supports_delete")
        self._post("wf-A-task-1", "a")
        self._post("wf-B-task-1", "b")
        self.storage.clear(workflow_id="wf-A")
        self.assertIsNone(self._payload("wf-A-task-1"))
        self.assertEqual(self._payload("wf-B-task-1"), "b")

    # ------------------------------------------------------------------ fixed defects of 1.0.1

    def test_second_post_replaces_the_value(self) -> None:  # D4
        self._post("wf-1-a", "first")
        self._post("wf-1-a", "second")
        self.assertEqual(self._payload("wf-1-a"), "second")

    def test_list_of_plain_items_round_trips(self) -> None:  # D5
        self._post("wf-1-a", [1, 2, 3])
        self.assertEqual(self._payload("wf-1-a"), [1, 2, 3])

    def test_rich_values_round_trip_exactly(self) -> None:  # D5
        self._require("exact_values")
        value = {
            "tuple": (1, "two", (3.5, None)),
            "set": {3, 1, 2},
            "frozenset": frozenset({"a", "b"}),
            "bytes": b"\x00\x01\xfe\xff",
            "naive": datetime(2024, 2, 29, 13, 45, 7, 123456),
            "aware": datetime(2024, 2, 29, 13, 45, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "date": date(1999, 12, 31),
            "decimal": Decimal("3.1400"),
            "uuid": UUID("12345678-1234-5678-1234-567812345678"),
            "int_keys": {1: "one", 2: (2,)},
            "nested": [{"deep": ({"x": frozenset({(1, 2)})}, [b"z", {(0, 1): Decimal("-0")}])}],
        }
        self._post("wf-1-a", value)
        self.assertExact(self._payload("wf-1-a"), value)
        self._post("wf-1-b", (1, 2))  # a top-level tuple stays a tuple
        self.assertExact(self._payload("wf-1-b"), (1, 2))

    def test_stored_none_is_found_by_read_checkpoint(self) -> None:  # D6
        self._post("wf-1-a", None)
        checkpoint = self.storage.read_checkpoint("wf-1-a")
        self.assertIsNotNone(checkpoint)
        assert checkpoint is not None
        self.assertIsNone(checkpoint.context.storage)

    def test_read_checkpoint_of_missing_key_is_none(self) -> None:
        self.assertIsNone(self.storage.read_checkpoint("wf-1-missing"))

    def test_read_checkpoint_returns_the_fingerprint(self) -> None:
        self._post("wf-1-a", {"v": 1}, fingerprint="fp-1")
        checkpoint = self.storage.read_checkpoint("wf-1-a")
        assert checkpoint is not None
        self.assertEqual(checkpoint.context.storage, {"v": 1})
        self.assertEqual(checkpoint.fingerprint, "fp-1")

    def test_post_without_fingerprint_clears_it(self) -> None:  # D9
        self._post("wf-1-a", "v1", fingerprint="fp-1")
        self._post("wf-1-a", "v2")
        checkpoint = self.storage.read_checkpoint("wf-1-a")
        assert checkpoint is not None
        self.assertEqual(checkpoint.context.storage, "v2")
        self.assertIsNone(checkpoint.fingerprint)

    def test_post_without_ttl_clears_the_earlier_ttl(self) -> None:  # D9
        self._require("supports_ttl")
        self._post("wf-1-a", "v1", ttl=1)
        self._post("wf-1-a", "v2")
        self.clock.advance(100)
        self.assertEqual(self._payload("wf-1-a"), "v2")

    def test_expired_key_is_missing_everywhere(self) -> None:  # D9
        self._require("supports_ttl")
        for key in ("wf-1-a", "wf-1-x", "wf-1-y"):
            self._post(key, "old", ttl=1)
        self._post("wf-1-b", "kept")
        self._post("wf-9-e", "old", ttl=1)
        self._post("wf-9-k", "kept")
        self.clock.advance(1)
        # Each expired key is touched first by a different method, so none relies on another's eviction.
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected="old", new="x"), False)
        if self.supports_delete:
            self.assertIs(self.storage.delete("wf-1-y"), False)
            self.assertEqual(self.storage.delete_prefix("wf-9-"), 1)  # counts only the live key
        self.assertEqual(sorted(self.storage.list_keys("wf-1-")), ["wf-1-b"])
        self.assertIsNone(self.storage.read_checkpoint("wf-1-x"))
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected=None, new="fresh"), True)
        self.assertEqual(self._payload("wf-1-a"), "fresh")

    def test_atomic_swap_on_missing_key_expects_none(self) -> None:
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected="anything", new="x"), False)
        self.assertIsNone(self._payload("wf-1-a"))
        self.assertIs(self.storage.atomic_swap("wf-1-a", expected=None, new="x"), True)
        self.assertEqual(self._payload("wf-1-a"), "x")

    def test_class_step_value_keeps_sub_contexts(self) -> None:  # D7
        value = Context(storage=[Context(storage=1, task_id="t.a"), Context(storage=2, task_id="t.b")])
        self.storage.post(key="wf-1-a", context=value)
        items = self._payload("wf-1-a")
        self.assertIs(type(items), list)
        self.assertEqual(len(items), 2)
        for item, (storage, task_id) in zip(items, [(1, "t.a"), (2, "t.b")]):
            self.assertIsInstance(item, Context)
            self.assertEqual(item.storage, storage)
            self.assertEqual(item.task_id, task_id)

    def test_context_ids_round_trip(self) -> None:
        workflow_id = UUID("0b7e6b1e-5c4c-4e0c-9d5e-2f4f5f6a7b8c")
        self.storage.post(key="wf-1-a", context=Context(storage="v", task_id="task-1", workflow_id=workflow_id))
        context = self.storage.get(key="wf-1-a")
        self.assertEqual(context.storage, "v")
        self.assertEqual(context.task_id, "task-1")
        self.assertEqual(context.workflow_id, workflow_id)
        self.assertIsInstance(context.workflow_id, UUID)

    def test_mutations_by_writer_or_reader_do_not_leak_into_storage(self) -> None:  # D5
        payload = {"items": [1, 2]}
        posted = Context(storage=payload)
        self.storage.post(key="wf-1-a", context=posted)
        payload["items"].append(3)
        posted.storage = "replaced"
        got = self.storage.get(key="wf-1-a")
        self.assertEqual(got.storage, {"items": [1, 2]})
        got.storage["items"].append(99)
        checkpoint = self.storage.read_checkpoint("wf-1-a")
        assert checkpoint is not None
        checkpoint.context.storage["items"].clear()
        self.assertEqual(self._payload("wf-1-a"), {"items": [1, 2]})

    def test_concurrent_posts_to_distinct_keys_all_land(self) -> None:
        threads, per_thread = 8, 10
        barrier = threading.Barrier(threads)
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                barrier.wait(timeout=10)
                for i in range(per_thread):
                    self._post(f"wf-c-{n}-{i}", {"thread": n, "i": i})
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        self.assertEqual(errors, [])
        for n in range(threads):
            for i in range(per_thread):
                self.assertEqual(self._payload(f"wf-c-{n}-{i}"), {"thread": n, "i": i})

    # ------------------------------------------------------------- keys, listing, replacement

    def test_unicode_keys_round_trip(self) -> None:
        keys = ["wf-ü-naïve-1", "wf-ü-日本語-2", "wf-ü-emoji-🙂-3"]
        for n, key in enumerate(keys):
            self._post(key, {"n": n, "text": "ñ-日本-🙂"})
        self.assertEqual(sorted(self.storage.list_keys("wf-ü-")), sorted(keys))
        for n, key in enumerate(keys):
            self.assertEqual(self._payload(key), {"n": n, "text": "ñ-日本-🙂"})
        if self.supports_delete:
            self.assertIs(self.storage.delete(keys[1]), True)
            self.assertEqual(sorted(self.storage.list_keys("wf-ü-")), sorted([keys[0], keys[2]]))

    def test_listing_and_prefix_deletion_go_beyond_one_page(self) -> None:
        # Backends with paginated listings should use a page size below 25 in make_storage.
        keys = [f"wf-page-{n:03d}" for n in range(25)]
        for key in keys:
            self._post(key, key)
        self._post("wf-other-1", "kept")
        self.assertEqual(sorted(self.storage.list_keys("wf-page-")), keys)
        if self.supports_delete:
            self.assertEqual(self.storage.delete_prefix("wf-page-"), 25)
            self.assertEqual(list(self.storage.list_keys("wf-page-")), [])
            self.assertEqual(self._payload("wf-other-1"), "kept")

    def test_a_list_is_replaced_not_appended_to(self) -> None:  # D4
        self._post("wf-1-a", [1, 2])
        self._post("wf-1-a", [3])
        self.assertEqual(self._payload("wf-1-a"), [3])
        self.storage.post(key="wf-1-a", context=Context(storage=[Context(storage="x"), Context(storage="y")]))
        self._post("wf-1-a", ["z"])
        self.assertEqual(self._payload("wf-1-a"), ["z"])

    def test_fingerprint_round_trips_and_is_replaced_with_the_value(self) -> None:
        self._post("wf-1-a", "v1", fingerprint="sha256:" + "a" * 64)
        first = self.storage.read_checkpoint("wf-1-a")
        assert first is not None
        self.assertEqual(first.fingerprint, "sha256:" + "a" * 64)
        self._post("wf-1-a", "v2", fingerprint="fp-ü-2")
        second = self.storage.read_checkpoint("wf-1-a")
        assert second is not None
        self.assertEqual((second.context.storage, second.fingerprint), ("v2", "fp-ü-2"))

    def test_ttl_is_replaced_with_the_value(self) -> None:
        self._require("supports_ttl")
        self._post("wf-1-a", "v1")
        self._post("wf-1-a", "v2", ttl=5)
        self.clock.advance(4)
        self.assertEqual(self._payload("wf-1-a"), "v2")
        self.clock.advance(1)
        self.assertIsNone(self._payload("wf-1-a"))

    # ------------------------------------------------------------ versions, conditional writes

    def _version(self, key: str) -> str | None:
        checkpoint = self.storage.read_checkpoint(key)
        return None if checkpoint is None else checkpoint.version

    def _post_if(self, key: str, storage: Any, version: str | None, **kwargs: Any) -> bool:
        written: bool = self.storage.post_if(  # type: ignore[attr-defined]
            key, Context(storage=storage), version=version, **kwargs
        )
        return written

    def _delete_if(self, key: str, version: str | None) -> bool:
        deleted: bool = self.storage.delete_if(key, version=version)  # type: ignore[attr-defined]
        return deleted

    def test_read_checkpoint_returns_a_version(self) -> None:
        self._require("supports_versions")
        self._post("wf-1-a", "v")
        version = self._version("wf-1-a")
        self.assertIsInstance(version, str)

    def test_version_changes_on_every_write_even_with_the_same_value(self) -> None:
        self._require("supports_versions")
        same = Context(storage={"same": "value"}, task_id="t")  # identical bytes every time, time included
        seen = []
        for _ in range(3):
            self.storage.post(key="wf-1-a", context=same)
            seen.append(self._version("wf-1-a"))
        self.assertTrue(self.storage.post_if("wf-1-a", same, version=seen[-1]))  # type: ignore[attr-defined]
        seen.append(self._version("wf-1-a"))
        self.assertEqual(len(set(seen)), len(seen), seen)
        self.assertEqual(self._version("wf-1-a"), seen[-1], "a read without a write keeps the version")

    def test_post_if_absent_creates_once(self) -> None:
        self._require("supports_versions")
        self.assertIs(self._post_if("wf-1-a", "first", version=None), True)
        self.assertIs(self._post_if("wf-1-a", "second", version=None), False)
        self.assertEqual(self._payload("wf-1-a"), "first")

    def test_post_if_with_the_current_version_replaces(self) -> None:
        self._require("supports_versions")
        self._post("wf-1-a", "v1", fingerprint="fp-1")
        version = self._version("wf-1-a")
        self.assertIs(self._post_if("wf-1-a", "v2", version=version, fingerprint="fp-2"), True)
        checkpoint = self.storage.read_checkpoint("wf-1-a")
        assert checkpoint is not None
        self.assertEqual((checkpoint.context.storage, checkpoint.fingerprint), ("v2", "fp-2"))
        self.assertNotEqual(checkpoint.version, version)

    def test_post_if_with_a_stale_version_writes_nothing(self) -> None:
        self._require("supports_versions")
        self._post("wf-1-a", "v1")
        stale = self._version("wf-1-a")
        self._post("wf-1-a", "v2")
        current = self._version("wf-1-a")
        self.assertIs(self._post_if("wf-1-a", "lost", version=stale), False)
        self.assertEqual(self._payload("wf-1-a"), "v2")
        self.assertEqual(self._version("wf-1-a"), current)
        self.assertIs(self._post_if("wf-1-a", "lost", version="not-a-version-0"), False)
        self.assertEqual(self._payload("wf-1-a"), "v2")

    def test_post_if_with_a_version_on_a_missing_key_writes_nothing(self) -> None:
        self._require("supports_versions")
        self._post("wf-1-a", "v1")
        version = self._version("wf-1-a")
        if self.supports_delete:
            self.storage.delete("wf-1-a")
            self.assertIs(self._post_if("wf-1-a", "late", version=version), False)
            self.assertIsNone(self.storage.read_checkpoint("wf-1-a"))
        self.assertIs(self._post_if("wf-1-never", "x", version=version), False)
        self.assertIsNone(self.storage.read_checkpoint("wf-1-never"))

    def test_post_if_absent_succeeds_over_an_expired_key(self) -> None:
        self._require("supports_versions")
        self._require("supports_ttl")
        self._post("wf-1-a", "old", ttl=1)
        self.assertIs(self._post_if("wf-1-a", "early", version=None), False)
        self.clock.advance(2)
        self.assertIsNone(self._version("wf-1-a"))
        self.assertIs(self._post_if("wf-1-a", "fresh", version=None, ttl=60), True)
        self.assertEqual(self._payload("wf-1-a"), "fresh")
        self.clock.advance(60)
        self.assertIsNone(self._payload("wf-1-a"))

    def test_delete_if_with_the_current_version_deletes(self) -> None:
        self._require("supports_versions")
        self._post("wf-1-a", "v1")
        self.assertIs(self._delete_if("wf-1-a", version=self._version("wf-1-a")), True)
        self.assertIsNone(self.storage.read_checkpoint("wf-1-a"))

    def test_delete_if_with_a_stale_version_keeps_the_key(self) -> None:
        self._require("supports_versions")
        self._post("wf-1-a", "v1")
        stale = self._version("wf-1-a")
        self._post("wf-1-a", "v2")
        self.assertIs(self._delete_if("wf-1-a", version=stale), False)
        self.assertEqual(self._payload("wf-1-a"), "v2")

    def test_delete_if_absent(self) -> None:
        self._require("supports_versions")
        self.assertIs(self._delete_if("wf-1-missing", version=None), True)
        self._post("wf-1-a", "v1")
        self.assertIs(self._delete_if("wf-1-a", version=None), False)
        self.assertEqual(self._payload("wf-1-a"), "v1")
        version = self._version("wf-1-a")
        self.assertIs(self._delete_if("wf-1-a", version=version), True)
        self.assertIs(self._delete_if("wf-1-a", version=version), False, "a deleted key has no version")

    def test_racing_conditional_writers_have_one_winner_per_round(self) -> None:
        """`race_threads` threads read one key, then all write it conditionally on what they read:
        exactly one wins each round, and the stored counter never loses an increment."""
        self._require("supports_versions")
        threads, rounds = self.race_threads, self.race_rounds
        key = "wf-race-counter"
        self._post(key, {"count": 0, "winner": None})
        read_barrier, write_barrier = threading.Barrier(threads), threading.Barrier(threads)
        wins: list[list[int]] = [[] for _ in range(rounds)]
        errors: list[BaseException] = []
        lock = threading.Lock()

        def racer(n: int) -> None:
            try:
                for r in range(rounds):
                    checkpoint = self.storage.read_checkpoint(key)
                    assert checkpoint is not None
                    count = checkpoint.context.storage["count"]
                    read_barrier.wait(timeout=60)  # everyone has read the same version
                    won = self._post_if(key, {"count": count + 1, "winner": n}, version=checkpoint.version)
                    if won:
                        with lock:
                            wins[r].append(n)
                    write_barrier.wait(timeout=60)  # the round is over before anyone reads again
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
                read_barrier.abort()
                write_barrier.abort()

        workers = [threading.Thread(target=racer, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=300)
        self.assertEqual(errors, [])
        self.assertEqual([len(w) for w in wins], [1] * rounds, f"winners per round: {wins}")
        final = self._payload(key)
        self.assertEqual(final, {"count": rounds, "winner": wins[-1][0]})
