"""`LeaseContract`: what a storage with leases (claims) must do, as reusable tests.

Part of `StorageContract` (every backend's contract runs it); skipped for a storage that does not
declare `uow.SupportsLeases`, or whose test class sets `supports_leases = False`. Time is
`self.clock` (a `ManualClock` the storage must read, as for ttl): no test sleeps.
"""

from __future__ import annotations

import threading
import unittest
from typing import TYPE_CHECKING, Any

from uow import StorageCapabilities

from dotflow.core.context import Context

__all__ = ["LeaseContract"]

if TYPE_CHECKING:
    from dotflow.testing.storage_contract import ManualClock

    _Base = unittest.TestCase
else:
    _Base = object

TTL = 30.0


class LeaseContract(_Base):
    supports_leases: bool = True
    supports_delete: bool  # (StorageContract's)
    storage: Any
    clock: ManualClock

    def _leases(self) -> Any:
        if not self.supports_leases:
            self.skipTest(f"{type(self).__name__}.supports_leases is False")
        if not StorageCapabilities.of(self.storage).leases:
            self.skipTest(f"{type(self.storage).__name__} has no leases")
        return self.storage

    def _key(self, name: str) -> str:
        """A checkpoint key this storage accepts (StorageFile's keys end with .json)."""
        return f"wf-lease-{name}.json"

    def test_a_lease_is_created_once(self) -> None:
        storage, key = self._leases(), self._key("once")
        lease = storage.create_lease(key, owner="worker-a", ttl=TTL)
        self.assertIsNotNone(lease)
        self.assertEqual((lease.key, lease.owner, lease.epoch), (key, "worker-a", 1))
        self.assertAlmostEqual(lease.expires_at - lease.now, TTL, delta=0.01)
        self.assertFalse(lease.expired)
        self.assertIsNone(storage.create_lease(key, owner="worker-b", ttl=TTL))
        read = storage.read_lease(key)
        self.assertEqual((read.owner, read.epoch, read.version), ("worker-a", 1, lease.version))
        self.assertAlmostEqual(read.expires_at, lease.expires_at, delta=0.01)

    def test_a_missing_lease_reads_as_none(self) -> None:
        self.assertIsNone(self._leases().read_lease(self._key("none")))

    def test_a_renewal_with_the_current_version_extends_it(self) -> None:
        storage, key = self._leases(), self._key("renew")
        first = storage.create_lease(key, owner="worker-a", ttl=TTL)
        self.clock.advance(TTL / 2)
        renewed = storage.replace_lease(key, version=first.version, owner="worker-a", epoch=1, ttl=TTL)
        self.assertIsNotNone(renewed)
        self.assertNotEqual(renewed.version, first.version)
        self.assertAlmostEqual(renewed.expires_at, first.expires_at + TTL / 2, delta=0.01)
        self.assertIsNone(storage.replace_lease(key, version=first.version, owner="worker-b", epoch=2, ttl=TTL))
        self.assertEqual(storage.read_lease(key).version, renewed.version)

    def test_an_expired_lease_is_taken_over_not_created(self) -> None:
        storage, key = self._leases(), self._key("expired")
        first = storage.create_lease(key, owner="worker-a", ttl=TTL)
        self.clock.advance(TTL - 1)
        self.assertFalse(storage.read_lease(key).expired)
        self.clock.advance(1)
        seen = storage.read_lease(key)
        self.assertTrue(seen.expired)
        self.assertEqual(seen.remaining, 0.0)
        self.assertIsNone(storage.create_lease(key, owner="worker-b", ttl=TTL))  # expired still exists
        taken = storage.replace_lease(key, version=seen.version, owner="worker-b", epoch=seen.epoch + 1, ttl=TTL)
        self.assertEqual((taken.owner, taken.epoch), ("worker-b", 2))
        # The old holder's renewal (its last version) now fails: it lost the lease.
        self.assertIsNone(storage.replace_lease(key, version=first.version, owner="worker-a", epoch=1, ttl=TTL))
        self.assertEqual(storage.read_lease(key).owner, "worker-b")

    def test_a_lease_is_deleted_only_at_its_version(self) -> None:
        storage, key = self._leases(), self._key("delete")
        first = storage.create_lease(key, owner="worker-a", ttl=TTL)
        renewed = storage.replace_lease(key, version=first.version, owner="worker-a", epoch=1, ttl=TTL)
        self.assertFalse(storage.delete_lease(key, version=first.version))
        self.assertIsNotNone(storage.read_lease(key))
        self.assertTrue(storage.delete_lease(key, version=renewed.version))
        self.assertIsNone(storage.read_lease(key))
        self.assertFalse(storage.delete_lease(key, version=renewed.version))
        self.assertIsNotNone(storage.create_lease(key, owner="worker-b", ttl=TTL))

    def test_a_lease_is_not_a_checkpoint(self) -> None:
        storage, key = self._leases(), self._key("apart")
        storage.create_lease(key, owner="worker-a", ttl=TTL)
        self.assertEqual(list(storage.list_keys("wf-lease-")), [])
        self.assertIsNone(storage.read_checkpoint(key))
        storage.post(key, Context(storage="value"))
        self.assertEqual(sorted(storage.list_keys("wf-lease-")), [key])
        self.assertEqual(storage.read_lease(key).owner, "worker-a")
        if self.supports_delete:
            self.assertEqual(storage.delete_prefix("wf-lease-"), 1)  # the checkpoint; the lease is its holder's
            self.assertEqual(storage.read_lease(key).owner, "worker-a")
            self.assertIsNone(storage.read_checkpoint(key))

    def test_a_checkpoint_key_cannot_name_a_lease(self) -> None:
        storage = self._leases()
        with self.assertRaises(ValueError) as raised:
            storage.post("wf-lease-x.lease", Context(storage=1))
        self.assertIn(".lease", str(raised.exception))

    def test_bad_lease_requests_are_refused(self) -> None:
        storage, key = self._leases(), self._key("bad")
        for ttl in (0, -1, float("inf"), True, "30"):
            with self.assertRaises(ValueError, msg=repr(ttl)):
                storage.create_lease(key, owner="worker-a", ttl=ttl)
        with self.assertRaises(TypeError):
            storage.create_lease(key, owner="", ttl=TTL)
        self.assertIsNone(storage.read_lease(key))

    def test_racing_takers_of_an_expired_lease_have_one_winner(self) -> None:
        storage, key = self._leases(), self._key("race")
        storage.create_lease(key, owner="worker-dead", ttl=TTL)
        self.clock.advance(TTL + 1)
        seen = storage.read_lease(key)
        barrier = threading.Barrier(6)
        winners: list[str] = []

        def take(name: str) -> None:
            barrier.wait()
            if storage.replace_lease(key, version=seen.version, owner=name, epoch=seen.epoch + 1, ttl=TTL):
                winners.append(name)

        threads = [threading.Thread(target=take, args=(f"worker-{n}",)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len(winners), 1)
        self.assertEqual(storage.read_lease(key).owner, winners[0])

    def test_a_lease_transaction_checks_and_releases_with_the_writes(self) -> None:
        storage, key = self._leases(), self._key("txn")
        if not StorageCapabilities.of(storage).lease_transaction:
            self.skipTest(f"{type(storage).__name__} has no lease_transaction()")
        storage.create_lease(key, owner="worker-a", ttl=TTL)
        with self.assertRaises(RuntimeError):
            with storage.lease_transaction() as transaction:
                self.assertTrue(transaction.release_lease(key, owner="worker-a", epoch=1))
                transaction.post(key, Context(storage="lost"))
                raise RuntimeError("rolled back")
        self.assertEqual(storage.read_lease(key).owner, "worker-a")  # the release was rolled back too
        self.assertIsNone(storage.read_checkpoint(key))
        with storage.lease_transaction() as transaction:
            self.assertFalse(transaction.holds_lease(key, owner="worker-b", epoch=1))
            self.assertFalse(transaction.holds_lease(key, owner="worker-a", epoch=2))
            self.assertTrue(transaction.holds_lease(key, owner="worker-a", epoch=1))
            self.assertTrue(transaction.release_lease(key, owner="worker-a", epoch=1))
            transaction.post(key, Context(storage="kept"))
        self.assertIsNone(storage.read_lease(key))
        self.assertEqual(storage.get(key).storage, "kept")
