"""The lease records of `StorageFile` (claims): ``<key>.lease`` beside the checkpoint file ``<key>``.

A lease file holds one JSON record (`uow.leases.encode_lease`): owner, epoch, ttl, `expires_at` on
the storage's clock (the local wall clock: every worker sharing the folder is on this machine, or
on a file system whose clients keep their clocks in step) and a random `revision`, its version.

- create: the record is written to a temp file and put in place with `os.link`, which fails if a
  lease file exists: create-if-absent without a lock;
- replace and delete: compare the version and rename (or unlink) while holding the folder's lock,
  the same lock every checkpoint change takes.

Lease files are not fsynced (a claim does not outlive the machine: after a power cut its worker is
gone anyway); a record torn by one reads as an expired lease of no owner, taken over as usual. No
name ending in ``.lease`` is a checkpoint key (`checkpoint_files.bad_key_reason`), so `list_keys`
never lists a lease and a key cannot reach outside the folder through one.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Callable

from uow.leases import LEASE_SUFFIX, Lease, check_lease_request, decode_lease, encode_lease, lease_from_record

from dotflow.storage import checkpoint_files as files
from dotflow.storage.checkpoint_files import Folder

__all__ = ["FileLeases"]


class FileLeases:
    """The leases of one folder; `lock` is the folder's exclusive lock (shared with the checkpoints)."""

    def __init__(self, folder: Folder, lock: AbstractContextManager[None], clock: Callable[[], float]) -> None:
        self.folder = folder
        self._lock = lock
        self._clock = clock

    def path(self, key: str) -> str:
        """The lease file of checkpoint `key`, after checking that `key` is a valid checkpoint key."""
        reason = files.bad_key_reason(key, self.folder.name_max - len(LEASE_SUFFIX))
        if reason is not None:
            raise files.invalid_key(key, reason)
        return self.folder.path_of(key + LEASE_SUFFIX)

    def create(self, key: str, owner: str, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl)
        target = self.path(key)
        now = self._clock()
        revision = os.urandom(16).hex()
        tmp = files.write_temp(self.folder, target, encode_lease(owner, 1, ttl, now + ttl, revision), durable=False)
        if not files.link_file(tmp, target):
            files.unlink(tmp)
            return None
        files.unlink(tmp)
        return Lease(key, owner, 1, now + ttl, now, revision)

    def read(self, key: str) -> Lease | None:
        return self._read(key, self.path(key))

    def replace(self, key: str, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl, epoch)
        target = self.path(key)
        revision = os.urandom(16).hex()
        with self._lock:
            current = self._read(key, target)
            if current is None or current.version != version:
                return None
            now = self._clock()  # the expiry counts from the write, taken under the lock
            tmp = files.write_temp(self.folder, target, encode_lease(owner, epoch, ttl, now + ttl, revision),
                                   durable=False)  # fmt: skip
            files.replace_file(tmp, target)
        return Lease(key, owner, epoch, now + ttl, now, revision)

    def delete(self, key: str, version: str) -> bool:
        target = self.path(key)
        with self._lock:
            current = self._read(key, target)
            if current is None or current.version != version:
                return False
            files.unlink(target)
        return True

    def _read(self, key: str, target: str) -> Lease | None:
        try:
            with open(target, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return None
        now = self._clock()
        record = decode_lease(data)
        version = files.content_version(data) if record is None else str(record.get("revision"))
        return lease_from_record(key, record, now=now, version=version)
