"""`StorageFile`: one JSON file per checkpoint in `<path>/tasks/`, replaced atomically.

Key and file name
    `key(task)` is ``f"{workflow_id}-{task_id}.json"`` and the file name is exactly the key. A key is
    a plain file name: non-empty, at most 255 bytes in UTF-8 (or the folder's smaller NAME_MAX),
    without "/", "\\" or NUL, not "." or "..", not starting with "." (dot-files are this backend's
    temporary files) and not ending with ".meta" (dotflow 1.0.1's sidecars). Any other key raises
    ValueError before anything is written: a key cannot escape the folder.

File format (version 1), one UTF-8 JSON object (ASCII in practice) written in a single file::

    {"format": "dotflow-checkpoint",
     "version": 1,
     "value": {"$context": {"storage": ..., "task_id": ..., "workflow_id": ..., "time": ...}},
     "fingerprint": "<str>" | null,
     "expires_at": <unix time, float> | null}

`value` is the whole Context in the encoding of `dotflow.values.codec` (storage value, ids and time),
so values round-trip exactly and nothing read back is ever unpickled or evaluated. Value,
fingerprint and expiry live in the same file and are replaced together by every write, so metadata
never goes stale. A file whose `expires_at` has passed reads as missing and is deleted when touched.

Writes
    `post` encodes first (an unencodable value raises `UnencodableValueError`, a TypeError naming the
    key and the type, and nothing is written), then writes a temp file ``.<key>.<random>.tmp`` in the
    same folder, flushes and fsyncs it, renames it over the key's file with `os.replace` and fsyncs
    the folder. Readers see the old file or the new one, never a torn one, even after a crash; a
    crash can at worst leave a stray dot-file, which every method ignores. Files are created with
    mode 0600 (private to the owner), as `tempfile.mkstemp` makes them. The rename (or link) is the
    commit point: once it is done the checkpoint is stored, and what follows (removing a 1.0.1
    sidecar, the folder's fsync) is logged as a warning if it fails, never raised, so a stored
    checkpoint is never reported as a failed write.

Files written by dotflow 1.0.1
    A body that is 1.0.1's format, a JSON array of strings (each ``json.dumps(payload)``), is read as
    dotflow 1.0.1 did: no element → empty `Context()`; one element →
    ``Context(storage=json.loads(e))`` (the raw string if it does not parse); several →
    ``Context(storage=[Context(storage=v1), Context(storage=v2), ...])``. Their ``<key>.meta`` sidecar
    (``{"fingerprint"?: str, "expires_at"?: unix time}``) is honoured for them only, and the next
    `post` to the key replaces the file with the new format and removes the sidecar. Because 1.0.1
    wrote ``null`` when a task failed, `read_checkpoint` treats a legacy file whose payload is None
    (or a list of Contexts that are all None) as missing; `get` still returns what 1.0.1 returned.

Unreadable files
    A file that is neither (empty, truncated, not JSON, another JSON shape, a corrupt document)
    makes `get`, `read_checkpoint` and `atomic_swap` raise `CorruptCheckpointError` (a ValueError)
    naming the key and the file, so a resumed run stops before running anything instead of
    silently re-running the task over it. `delete` and `delete_prefix` remove such a file;
    `list_keys` lists it; a conditional write sees it as present (its version is a digest of its bytes).

Versions and concurrency
    Every write stores a fresh random `revision` in the file: that is the version `read_checkpoint`
    returns (a file without one, such as a 1.0.1 file, has the SHA-256 of its bytes as version).
    `post_if(version=None)` creates the file with `os.link` of the finished temp file, which fails if
    the key exists: no lock. Every other change of a file (the rename of a write, a delete, and the
    compare-then-rename of `post_if`, `delete_if` and `atomic_swap`) happens while holding an
    exclusive `flock` on the folder's `.lock` file (plus a thread lock), so compare-and-set is atomic
    between threads and processes of one machine. The lock is held for a read and a rename only:
    encoding, writing and fsyncing the temp file happen before it is taken. (On a platform without
    `fcntl` only threads of one process are serialised.)

Leases (claims)
    ``<key>.lease`` beside the checkpoint: created with `os.link`, replaced and deleted under the
    same lock, timed by `clock`; never listed as a checkpoint (see `file_leases`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from uow.leases import Lease

from dotflow.abc.storage import Checkpoint, VersionedStorage
from dotflow.core.context import Context
from dotflow.storage import checkpoint_files as files
from dotflow.storage.checkpoint_files import BATCH_MARKER, Folder, RawFile
from dotflow.storage.file_leases import FileLeases
from dotflow.values.checkpoint_format import encode_document, legacy_failure
from dotflow.settings import Settings

__all__ = ["BATCH_MARKER", "BatchFolderError", "StorageFile"]

logger = logging.getLogger("dotflow")
_LOCK_NAME = ".lock"  # a dot-file: never taken for a key


class BatchFolderError(ValueError):
    """The folder holds BatchStorage segments, which a plain StorageFile cannot see."""


try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class _FolderLock:
    """A thread lock plus an exclusive `flock` on the folder's lock file; re-entrant, a context manager.

    A flock belongs to the open file, which a fork shares, so each process opens the file itself.
    (A class rather than a generator-based context manager: it is taken once per write.)
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._pid = 0  # the process that opened _fd
        self._depth = 0

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._depth == 0 and fcntl is not None:
                if self._fd is None or self._pid != os.getpid():
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._pid = os.getpid()
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


class StorageFile(VersionedStorage):
    """Checkpoints as JSON files in `Path(path, "tasks")`, created (with parents) on construction.

    `clock`: a function returning the current unix time, used for ttl (default `time.time`; expiry
    times are stored in the files, so the clock must be wall time shared by every process).
    """

    def __init__(
        self,
        *args: Any,
        path: str | os.PathLike[str] = Settings.START_PATH,
        clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock  # wall time: expiry times are stored in the files
        self.path = Path(path, "tasks")
        self.folder = Folder.open(self.path)
        self._exclusive = _FolderLock(self.folder.path_of(_LOCK_NAME))  # `with self._exclusive:` around a change
        self._checked = False  # the folder was checked for BatchStorage segments (once, on first use)
        self._leases = FileLeases(self.folder, self._exclusive, lambda: self.clock())

    def key(self, task: Any) -> str:
        return f"{task.workflow_id}-{task.task_id}.json"

    # ------------------------------------------------------------------------------------------ writes

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        target, existed = self._target(key)
        tmp = files.write_temp(self.folder, target, self._encode(key, context, ttl, fingerprint))
        with self._exclusive:
            files.replace_file(tmp, target)
        self._after_write(target, replaced=existed)

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        target, existed = self._target(key)
        tmp = files.write_temp(self.folder, target, self._encode(key, context, ttl, fingerprint))
        if version is None and self._create(tmp, target):
            self._after_write(target, replaced=existed)
            return True
        # Replace (or create over an expired file): compare and rename under the lock.
        with self._exclusive:
            raw = files.read_file(self.folder, target)
            current = None if raw is None else raw.live_version(self.clock())
            if current != version:
                files.unlink(tmp)
                return False
            files.replace_file(tmp, target)
        self._after_write(target, replaced=True)
        return True

    def delete_if(self, key: str, *, version: str | None) -> bool:
        target = self._target(key)[0]
        with self._exclusive:
            raw = files.read_file(self.folder, target)
            current = None if raw is None else raw.live_version(self.clock())
            if current != version:
                return False
            if raw is not None:
                files.remove_file(self.folder, target)
        return True

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Compare-and-set on the stored payload, atomic between threads and processes of this machine."""
        target = self._target(key)[0]
        tmp = files.write_temp(self.folder, target, self._encode(key, new, ttl, fingerprint))
        with self._exclusive:
            loaded = self._load(key, target)
            current = None if loaded is None else loaded[0].storage
            if current != expected:
                files.unlink(tmp)
                return False
            files.replace_file(tmp, target)
        self._after_write(target, replaced=True)
        return True

    def delete(self, key: str) -> bool:
        target = self._target(key)[0]
        with self._exclusive:
            raw = files.read_file(self.folder, target)
            if raw is None:
                files.unlink_sidecar(self.folder, target)
                return False
            files.remove_file(self.folder, target)
            return not raw.expired(self.clock())

    def delete_prefix(self, prefix: str) -> int:
        files.check_prefix(prefix)
        self._check_folder()
        removed = 0
        with self._exclusive:
            for name in files.data_file_names(self.folder, prefix):
                target = self.folder.path_of(name)
                raw = files.read_file(self.folder, target)
                if raw is not None:
                    files.remove_file(self.folder, target)
                    removed += 0 if raw.expired(self.clock()) else 1
            for name in files.sidecar_names(self.folder, prefix):  # 1.0.1 sidecars left without their data file
                files.unlink(self.folder.path_of(name))
        return removed

    def list_keys(self, prefix: str = "") -> list[str]:
        files.check_prefix(prefix)
        self._check_folder()
        keys = []
        for name in files.data_file_names(self.folder, prefix):
            target = self.folder.path_of(name)
            raw = files.read_file(self.folder, target)
            if raw is None:
                continue
            if raw.expired(self.clock()):
                self._remove_if_unchanged(target, raw)
                continue
            keys.append(name)
        return sorted(keys)

    # ------------------------------------------------------------------------------------------ leases

    def create_lease(self, key: str, *, owner: str, ttl: float) -> Lease | None:
        self._check_folder()
        return self._leases.create(key, owner, ttl)

    def read_lease(self, key: str) -> Lease | None:
        return self._leases.read(key)

    def replace_lease(self, key: str, *, version: str, owner: str, epoch: int, ttl: float) -> Lease | None:
        return self._leases.replace(key, version, owner, epoch, ttl)

    def delete_lease(self, key: str, *, version: str) -> bool:
        return self._leases.delete(key, version)

    # ------------------------------------------------------------------------------------------- reads

    def get(self, key: str) -> Context:
        loaded = self._load(key, self._target(key)[0])
        return Context() if loaded is None else loaded[0]

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        loaded = self._load(key, self._target(key)[0])
        if loaded is None:
            return None
        context, fingerprint, legacy, version, document = loaded
        if legacy and legacy_failure(context):
            return None
        return Checkpoint(context=context, fingerprint=fingerprint, version=version, document=document)

    # ----------------------------------------------------------------------------------------- helpers

    def _check_folder(self) -> None:
        """On first use: refuse a folder whose checkpoints are in BatchStorage segments (one stat, once)."""
        if self._checked:
            return
        if os.path.exists(self.folder.path_of(BATCH_MARKER)):
            raise BatchFolderError(
                f"{self.path} holds checkpoints in BatchStorage segments (.batch-*.log), which a plain "
                f"StorageFile cannot see (a resume would run every task again): open it as "
                f"BatchStorage(StorageFile(path=...)), or call materialize() on one to write them back "
                f"to per-key files"
            )
        self._checked = True

    def _target(self, key: str) -> tuple[str, bool]:
        """(path of `key`'s file, whether it exists), after checking that the key cannot leave the folder."""
        self._check_folder()
        return files.key_path(self.folder, key)

    def _encode(self, key: str, value: Any, ttl: float | None, fingerprint: str | None) -> bytes:
        # The revision is the file's version token: 128 random bits, 32 hex digits (as uuid4().hex, cheaper).
        return encode_document(key, value, ttl, fingerprint, revision=os.urandom(16).hex(), now=self.clock())

    def _load(self, key: str, target: str) -> tuple[Context, str | None, bool, str, bytes | None] | None:
        """(context, fingerprint, is_legacy, version, document bytes) of a live file, or None if missing or expired."""
        raw = files.read_file(self.folder, target)
        if raw is None:
            return None
        if raw.expired(self.clock()):
            self._remove_if_unchanged(target, raw)
            return None
        return (*files.decode_file(key, target, raw), raw.document)

    def _create(self, tmp: str, target: str) -> bool:
        """Put `tmp` in place only if `target` does not exist (atomic, no lock). Consumes `tmp` on success."""
        if not files.link_file(tmp, target):
            return False
        try:  # stored: the temp name is only a second link to it now, and a stray one is ignored
            files.unlink(tmp)
        except OSError as exc:
            logger.warning("checkpoint %s is in place, but its temp file %s stays: %s", target, tmp, exc)
        return True

    def _after_write(self, target: str, *, replaced: bool) -> None:
        """Tidy up after a write. The checkpoint is stored already: nothing here may raise."""
        try:
            if replaced:  # a 1.0.1 sidecar must not outlive the file it described (one is read for 1.0.1 files only)
                files.unlink_sidecar(self.folder, target)
            files.sync_folder(self.folder.root)
        except OSError as exc:
            logger.warning("checkpoint %s is in place, but a step after the rename failed: %s", target, exc)

    def _remove_if_unchanged(self, target: str, raw: RawFile) -> None:
        """Delete an expired file unless another writer has replaced it since it was read."""
        with self._exclusive:
            try:
                found = os.stat(target)
            except FileNotFoundError:
                return
            if (found.st_ino, found.st_mtime_ns, found.st_size) == raw.identity:
                files.remove_file(self.folder, target)

    def __del__(self) -> None:
        lock = getattr(self, "_exclusive", None)
        if lock is not None:
            lock.close()
