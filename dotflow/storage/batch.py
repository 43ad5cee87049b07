"""`BatchStorage`: group commit. Buffers checkpoint writes and makes many of them durable at once.

    Config(storage=BatchStorage(StorageFile(path=".output"), max_batch=100, max_delay=0.2))

`post` stages the checkpoint in memory and returns; the buffer is flushed (made durable in the
wrapped storage) when it holds `max_batch` checkpoints, when the oldest has waited `max_delay`
seconds (a background thread), when a workflow ends (before its callbacks), before a task's
failure is reported, before any delete / list / swap, and on `flush()`, `close()` or leaving a
`with` block, and at interpreter exit for an instance never closed: an instance holding changes
not yet flushed is kept alive (a strong reference in `_UNFLUSHED`) until they are flushed, so one
dropped without `close()` is still flushed at exit. Reads (`get`, `read_checkpoint`) see the
buffered checkpoints.

How a batch is made durable depends on the wrapped storage:

- `StorageFile`: each batch is one segment file, written and fsync'd once (plus the folder), and
  the segments are the storage: no per-key file is written (`batch_file.SegmentBackend`, with
  `batch_segments` and `batch_log`). Values are encoded when posted, so a value that cannot be
  stored is refused at once, by the task that returned it. Conditional writes (`post_if` /
  `delete_if`) are compared with the buffer and buffered too, since it holds the folder exclusively.
- any other storage (`batch_backend.StorageBackend`): a storage with `post_many(items)` (items:
  `(key, context, ttl, fingerprint)` tuples) gets one call per batch: `StorageSQL` writes the batch
  in one database transaction, `StorageDefault` under its lock (both all or nothing); `StorageS3`
  and `StorageGCS` upload it concurrently (8 at a time). Any other gets one `post` per checkpoint,
  in order, at flush time (coalescing still saves rewriting a key posted twice in one batch).
  Values are deep-copied when posted. Conditional writes flush, then go to the storage's own.

Durability contract: a commit acknowledged by `post` is durable once the flush that contains it
returns. A crash (kill -9, power loss) loses at most the checkpoints not yet flushed (at most
`max_batch`, or `max_delay` seconds' worth): their tasks run again on resume. On StorageFile,
StorageSQL and StorageDefault a batch is never torn or partly applied: after the next open, either
all of its checkpoints are there or none is. An object store (S3, GCS) and a storage without
`post_many` have no transaction across keys: a crash in the middle of a flush can leave part of a
batch stored, each checkpoint whole; resume restores those tasks and runs the others. A task whose
batch was flushed is never run again by resume.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterable, Mapping, TypeVar

from dotflow.abc.storage import Checkpoint, Storage, VersionedStorage
from dotflow.core.context import Context
from dotflow.storage.batch_backend import GroupCommitBackend, StorageBackend
from dotflow.storage.file import StorageFile

if TYPE_CHECKING:
    from dotflow.storage.batch_file import RepairReport

__all__ = ["BatchStorage"]

logger = logging.getLogger("dotflow")

C = TypeVar("C")

# Every BatchStorage holding changes not yet flushed, by id: a strong reference, so an instance the
# program dropped without close() is not collected with acknowledged changes in its buffer; the exit
# flush (registered per instance, with a weak reference) then still finds it and flushes it. An
# instance leaves this dict at its next successful flush and on close(), and can then be collected.
# (Changed only with the instance's lock held; one dict operation at a time is atomic.)
_UNFLUSHED: dict[int, BatchStorage] = {}


class BatchStorage(VersionedStorage):
    """Wraps `storage`; see the module docstring. Thread-safe; one instance per StorageFile folder.

    Group commit on a `StorageFile` is done by its own backend (`batch_file.SegmentBackend`), on
    any other storage by `batch_backend.StorageBackend`; this class owns the buffer and when it is
    flushed.
    """

    buffers_writes = True  # the engine flushes such a storage before it reports a failure

    def __init__(
        self, storage: Storage, max_batch: int = 100, max_delay: float | None = 0.2, *, read_only: bool = False
    ) -> None:
        """`read_only=True` (on a `StorageFile` only): for audits. Opening neither deletes, writes nor
        creates anything in the folder (a torn newest segment is ignored, not removed); every change
        is refused; `close()` releases the folder and does nothing else."""
        super().__init__()
        if not isinstance(storage, Storage):
            raise TypeError(f"BatchStorage wraps a Storage, not {type(storage).__name__}")
        if isinstance(storage, BatchStorage):
            raise TypeError("BatchStorage cannot wrap another BatchStorage")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, not {max_batch!r}")
        if max_delay is not None and (
            isinstance(max_delay, bool) or not isinstance(max_delay, (int, float)) or not max_delay >= 0
        ):
            raise ValueError(f"max_delay must be a number of seconds >= 0 or None, not {max_delay!r}")
        self.storage = storage
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.read_only = bool(read_only)
        self._backend: GroupCommitBackend[Any] = _backend_for(storage, self.read_only)
        self._buffer: _Staging[Any] = _Staging(self)
        self._pending: dict[str, Any] = {}
        self._oldest = 0.0  # time.monotonic() of the oldest pending change
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._flushes = 0
        self._posts = 0
        self._waiting: list[Callable[[], None]] = []  # on_durable callbacks for what is pending
        self._timer: threading.Thread | None = None
        self._pid = os.getpid()  # a forked child never flushes its copy of the parent's buffer at exit
        atexit.register(_flush_at_exit, weakref.ref(self))

    @staticmethod
    def repair(storage: StorageFile) -> RepairReport:
        """Move the damaged segments of a `StorageFile` folder aside; go on with the intact ones.

        The user's explicit choice, when opening the folder raised `DamagedSegmentError`. Each damaged
        segment is renamed to `<name>.damaged` (its bytes kept for a person to inspect). A key whose
        newest checkpoint was in one is deleted, so its task runs again rather than an older value
        coming back (unless an older segment left by an interrupted compaction holds the same state);
        keys past the damage in a segment cut short cannot be read and are not known (`unread`). A
        torn newest segment is removed as on any open. Then the folder is closed; open it as usual.
        Takes the folder's lock: no `BatchStorage` may have it open.
        """
        from dotflow.storage.batch_file import repair

        return repair(storage)

    def __repr__(self) -> str:
        return f"BatchStorage({self.storage!r}, max_batch={self.max_batch}, max_delay={self.max_delay})"

    def key(self, task: Any) -> str:
        return self.storage.key(task=task)

    # --------------------------------------------------------------------------------------- writes

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        change = self._backend.prepare(key, context, ttl, fingerprint)
        with self._lock:
            self._check_open()
            self._stage(key, change)
            self._posts += 1

    def post_if(
        self,
        key: str,
        context: Context,
        *,
        version: str | None,
        ttl: int | None = None,
        fingerprint: str | None = None,
    ) -> bool:
        """Write only if the current version of `key` is `version` (None: only if absent). On a
        `StorageFile`, buffered like `post`; on any other storage, written through at once (see
        `batch_backend.StorageBackend`)."""
        change = self._backend.prepare(key, context, ttl, fingerprint)
        with self._lock:
            self._check_open()
            written = self._backend.post_if(self._buffer, key, change, version)
            self._posts += written
            return written

    def delete_if(self, key: str, *, version: str | None) -> bool:
        with self._lock:
            self._check_open()
            return self._backend.delete_if(self._buffer, key, version)

    def flush(self) -> None:
        """Make every buffered change durable now (one batch). A no-op when nothing is buffered."""
        with self._lock:
            self._flush_locked()

    def on_durable(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once every change posted before this call is durable.

        At once, in this thread, when nothing is buffered; otherwise right after the flush that makes
        the buffer durable, in whichever thread flushes (a post, the timer, `flush`, `close`), with
        this storage's lock held: a callback must be quick and must not call this storage. If that
        flush fails, the callback waits for the next one that succeeds. A callback that raises is
        logged and does not stop the flush or the other callbacks.
        """
        if not callable(callback):
            raise TypeError(f"on_durable needs a callable, not {type(callback).__name__}")
        with self._lock:
            if self._pending:
                self._waiting.append(callback)
                return
        _call_quietly(callback)

    def close(self) -> None:
        """Flush, then release what the storage holds. Idempotent; `post` refuses afterwards."""
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self._closed = True
                _UNFLUSHED.pop(id(self), None)
                self._wake.notify_all()
                self._backend.close()

    def __enter__(self) -> BatchStorage:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """Counters: `posts` accepted, `flushes` that wrote a batch, `pending` changes buffered now."""
        with self._lock:
            return {"posts": self._posts, "flushes": self._flushes, "pending": len(self._pending)}

    # ---------------------------------------------------------------------------------------- reads

    def read_checkpoint(self, key: str) -> Checkpoint | None:
        with self._lock:
            return self._backend.read_checkpoint(self._buffer, key)

    def get(self, key: str) -> Context:
        with self._lock:
            return self._backend.get(self._buffer, key)

    # ------------------------------------------------------------------------------- other changes

    def delete(self, key: str) -> bool:
        with self._lock:
            self._check_open()
            return self._backend.delete(self._buffer, key)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            self._check_open()
            return self._backend.delete_prefix(self._buffer, prefix)

    def list_keys(self, prefix: str = "") -> Iterable[str]:
        with self._lock:
            return self._backend.list_keys(self._buffer, prefix)

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Compare the stored payload with `expected` and write `new` if equal; durable when it returns."""
        with self._lock:
            self._check_open()
            swapped = self._backend.atomic_swap(self._buffer, key, expected, new, ttl, fingerprint)
            self._posts += swapped
            return swapped

    # ----------------------------------------------------------------------------- StorageFile only

    def compact(self) -> None:
        """Flush, then merge the live checkpoints into one segment and remove the others (also run by
        `close()` when there are many segments or more superseded bytes than live ones)."""
        with self._lock:
            self._check_open()
            self._flush_locked()
            self._backend.compact()

    def materialize(self) -> int:
        """Write every live checkpoint to its per-key file (durably, one fsync each), then remove the
        segments and the folder's marker: a plain `StorageFile` can use the folder again. The storage
        stays open (later flushes write new segments). Returns how many files were written."""
        with self._lock:
            self._check_open()
            self._flush_locked()
            return self._backend.materialize()

    def segment_stats(self) -> dict[str, int]:
        """`segments` on disk and `keys` in the index (live, expired and deleted)."""
        with self._lock:
            return self._backend.segment_stats()

    # -------------------------------------------------------------------------------------- helpers

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this BatchStorage is closed; open a new one on the storage")
        if self.read_only:
            raise RuntimeError("this BatchStorage was opened with read_only=True: it refuses every change")

    def _stage(self, key: str, change: Any) -> None:
        """Buffer `change` for `key` (lock held); flush when the batch is full.

        If that flush fails, this change is taken back (the caller sees the error and nothing of it is
        stored later); the changes already acknowledged stay buffered for the next flush.
        """
        first = not self._pending
        if first:
            self._oldest = time.monotonic()
            _UNFLUSHED[id(self)] = self  # alive until flushed: so the exit flush finds it (see _UNFLUSHED)
        previous = self._pending.pop(key, None)  # a re-posted key moves to the end, after what it may follow
        self._pending[key] = change
        if len(self._pending) >= self.max_batch or self.max_delay == 0:
            try:
                self._flush_locked()
            except BaseException:
                self._pending.pop(key, None)
                if previous is not None:  # (a change is never None)
                    self._pending[key] = previous
                raise
        elif first and self.max_delay is not None:
            self._start_timer()  # the flusher sleeps until a batch starts: wake it once per batch

    def _flush_locked(self) -> None:
        """Write the pending batch durably. On failure nothing is dropped: the batch stays pending."""
        if self._pending:
            self._backend.write(self._pending)
            self._pending = {}
            self._flushes += 1
            _UNFLUSHED.pop(id(self), None)
        if self._waiting:
            waiting, self._waiting = self._waiting, []
            for callback in waiting:
                _call_quietly(callback)

    def _start_timer(self) -> None:
        if self._timer is not None and self._timer.is_alive():
            self._wake.notify_all()
            return
        self._timer = threading.Thread(
            target=_timer_loop, args=(weakref.ref(self),), name="dotflow-batch-flush", daemon=True
        )
        self._timer.start()


class _Staging(Generic[C]):
    """The buffer of a `BatchStorage` as its backend sees it (`batch_backend.Buffer`)."""

    def __init__(self, storage: BatchStorage) -> None:
        self._storage = weakref.proxy(storage)  # no cycle keeping a dropped storage alive

    @property
    def pending(self) -> Mapping[str, C]:
        pending: Mapping[str, C] = self._storage._pending
        return pending

    def stage(self, key: str, change: C) -> None:
        self._storage._stage(key, change)

    def flush(self) -> None:
        self._storage._flush_locked()


def _backend_for(storage: Storage, read_only: bool) -> GroupCommitBackend[Any]:
    """Segments for a `StorageFile` folder; the storage's own writes for any other storage."""
    if isinstance(storage, StorageFile):
        from dotflow.storage.batch_file import SegmentBackend  # (segments: loaded only when used)

        return SegmentBackend(storage, mode="read" if read_only else "write")
    if read_only:
        raise ValueError("read_only=True is for BatchStorage(StorageFile(...)) only")
    return StorageBackend(storage)


def _call_quietly(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:
        logger.exception("BatchStorage: an on_durable callback raised; ignored")


def _timer_loop(ref: weakref.ref[BatchStorage]) -> None:
    """Flush a batch once its oldest checkpoint is `max_delay` old; ends when the storage closes or goes."""
    while True:
        storage = ref()
        if storage is None:
            return
        with storage._wake:
            if storage._closed:
                return
            delay = storage.max_delay or 0.0
            if not storage._pending:
                storage._wake.wait(timeout=1.0)  # woken by the next post
            else:
                due = storage._oldest + delay - time.monotonic()
                if due > 0:
                    storage._wake.wait(timeout=due)
                else:
                    try:
                        storage._flush_locked()
                    except Exception:
                        logger.exception("BatchStorage: a timed flush failed; the batch stays buffered")
                        storage._wake.wait(timeout=max(delay, 0.05))
        del storage  # hold no reference while idle, so an unused storage can be collected


def _flush_at_exit(ref: weakref.ref[BatchStorage]) -> None:
    storage = ref()
    if storage is None or storage._pid != os.getpid():
        return
    try:
        storage.close()
    except Exception:
        logger.exception("BatchStorage: flushing at interpreter exit failed")
