"""The lease records of `StorageFile` (claims): ``<key>.lease`` beside the checkpoint file ``<key>``.

A lease file holds one JSON record (`uow.leases.encode_lease`): owner, epoch, ttl, `expires_at` on
the storage's clock (the local wall clock: every worker sharing the folder is on this machine, or
on a file system whose clients keep their clocks in step) and a random `revision`, its version.

Every lease operation holds the folder's lock (the lock every checkpoint change takes):

- create: the record is written to a spare file, which is then hard-linked as ``<key>.lease``
  (`os.link` fails if a lease file exists: create-if-absent by the file system itself) and its
  spare name removed; a reader sees no lease file or a whole record, never a half-written one;
- replace and delete: compare the version, then rename a new record over it (replace), or move the
  lease file to the spares (delete);
- read.

Spares: a deleted lease's file is kept in ``.lease-spares/`` and written over by the next create,
by any worker (unless ``.lease-spares`` is anything but a real folder, a symlink say: then nothing is
kept, and each lease is a new file). Creating a file costs far more than renaming one on many file systems (on ext4 an
inode allocation, measured at 100-700 us here, against 5-10 us for a rename or a link), and a claimed
task creates and deletes one lease: benchmarks/README.md#claims. A spare still linked as a lease
(a worker killed between the link and the removal of its spare name) is never written over: it is
only unlinked from the spares.

Lease files are not fsynced (a claim does not outlive the machine: after a power cut its worker is
gone anyway); a record torn by one reads as an expired lease of no owner, taken over as usual. No
name ending in ``.lease`` is a checkpoint key, and no key starts with a dot
(`checkpoint_files.bad_key_reason`), so `list_keys` never lists a lease or a spare and a key cannot
reach outside the folder through one.
"""

from __future__ import annotations

import os
import stat
from contextlib import AbstractContextManager
from typing import Callable

from uow.leases import LEASE_SUFFIX, Lease, check_lease_request, decode_lease, encode_lease, lease_from_record

from dotflow.storage import checkpoint_files as files
from dotflow.storage.checkpoint_files import Folder

__all__ = ["FileLeases", "SPARES"]

SPARES = ".lease-spares"  # the folder of lease files kept for reuse
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW  # only if absent, never through a symlink


class FileLeases:
    """The leases of one folder; `lock` is the folder's exclusive lock (shared with the checkpoints)."""

    def __init__(self, folder: Folder, lock: AbstractContextManager[None], clock: Callable[[], float]) -> None:
        self.folder = folder
        self._lock = lock
        self._clock = clock
        self.spares = folder.path_of(SPARES)
        self._known_spares: list[str] = []  # spare paths this process has seen (others may take them)
        self._reuse: bool | None = None  # whether spares are kept (worked out on first use: `_spares_folder`)

    def path(self, key: str) -> str:
        """The lease file of checkpoint `key`, after checking that `key` is a valid checkpoint key."""
        reason = files.bad_key_reason(key, self.folder.name_max - len(LEASE_SUFFIX))
        if reason is not None:
            raise files.invalid_key(key, reason)
        return self.folder.path_of(key + LEASE_SUFFIX)

    def create(self, key: str, owner: str, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl)
        target = self.path(key)
        revision = os.urandom(16).hex()
        with self._lock:
            now = self._clock()
            spare = self._spare_holding(encode_lease(owner, 1, ttl, now + ttl, revision))
            try:
                os.link(spare, target)
            except FileExistsError:
                if self._reuse:
                    self._known_spares.append(spare)  # still a spare: the next create takes it
                else:
                    files.unlink(spare)
                return None
            files.unlink(spare)  # the record lives on as `target` only
        return Lease(key, owner, 1, now + ttl, now, revision)

    def read(self, key: str) -> Lease | None:
        target = self.path(key)
        with self._lock:  # a deleted lease's file is reused: read it only while nobody moves it
            return self._read(key, target)

    def replace(self, key: str, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        check_lease_request(key, owner, ttl, epoch)
        target = self.path(key)
        revision = os.urandom(16).hex()
        with self._lock:
            current = self._read(key, target)
            if current is None or current.version != version:
                return None
            now = self._clock()  # the expiry counts from the write, taken under the lock
            files.replace_file(self._spare_holding(encode_lease(owner, epoch, ttl, now + ttl, revision)), target)
        return Lease(key, owner, epoch, now + ttl, now, revision)

    def delete(self, key: str, version: str) -> bool:
        target = self.path(key)
        with self._lock:
            current = self._read(key, target)
            if current is None or current.version != version:
                return False
            if not self._spares_folder():
                files.unlink(target)
                return True
            spare = os.path.join(self.spares, f".lease-{os.urandom(12).hex()}")
            try:
                os.rename(target, spare)
            except FileNotFoundError:  # the spares folder was removed since: no reuse, then
                files.unlink(target)
            else:
                self._known_spares.append(spare)
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

    def _spare_holding(self, record: bytes) -> str:
        """A spare file (reused, or new) holding exactly `record`; called with the lock held."""
        while self._spares_folder():
            if not self._known_spares:
                self._look_for_spares()
            if not self._known_spares:
                break
            path = self._known_spares.pop()
            try:
                fd = os.open(path, os.O_WRONLY | _NO_FOLLOW)
            except OSError:
                continue  # taken by another worker since, or not a file this worker can use
            try:
                if os.fstat(fd).st_nlink != 1:  # still a lease's file as well: never write over it
                    files.unlink(path)
                    continue
                files.write_all(fd, record)  # over the old record, from the start
                os.ftruncate(fd, len(record))  # shrinking within its block frees nothing: cheap
                return path
            finally:
                os.close(fd)
        # a new file: in the spares folder, or (spares refused) beside the leases, a dot-name no key has
        path = os.path.join(self.spares if self._reuse else self.folder.root, f".lease-{os.urandom(12).hex()}")
        fd = os.open(path, _CREATE_FLAGS, 0o600)
        try:
            files.write_all(fd, record)
        finally:
            os.close(fd)
        return path

    def _spares_folder(self) -> bool:
        """Whether lease files are reused: the spares folder is a real folder inside this one (made if
        missing). Anything else there (a file, a symlink that could lead outside the storage's folder)
        turns reuse off for this storage object, and leases are made and unlinked as new files."""
        if self._reuse is None:
            try:
                os.mkdir(self.spares, 0o700)
            except FileExistsError:
                pass
            self._reuse = stat.S_ISDIR(os.lstat(self.spares).st_mode)
        return self._reuse

    def _look_for_spares(self) -> None:
        """Learn the spares other workers left (a file name in the spares folder is a spare)."""
        try:
            with os.scandir(self.spares) as entries:
                self._known_spares = [entry.path for entry in entries]
        except FileNotFoundError:
            self._known_spares = []
