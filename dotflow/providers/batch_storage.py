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
  the segments are the storage: no per-key file is written (`dotflow.providers.batch_file`,
  `batch_segments`, `batch_log`). Values are encoded when posted, so a value that cannot be stored
  is refused at once, by the task that returned it. Such a BatchStorage also has conditional writes
  (`post_if` / `delete_if`), since it holds the folder exclusively.
- a storage with `post_many(items)` (items: `(key, context, ttl, fingerprint)` tuples): one call
  per batch. `StorageSQL` writes the batch in one database transaction, `StorageDefault` under its
  lock (both all or nothing); `StorageS3` and `StorageGCS` upload it concurrently (8 at a time).
- any other storage: one `post` per checkpoint, in order, at flush time (coalescing still saves
  rewriting a key posted twice in one batch). Values are deep-copied when posted.

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
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, cast

from dotflow.abc.storage import Checkpoint, Storage, check_post_metadata
from dotflow.core.context import Context
from dotflow.providers.isolated_copy import isolated_copy

if TYPE_CHECKING:
    from dotflow.providers.batch_file import RepairReport

__all__ = ["BatchStorage"]

logger = logging.getLogger("dotflow")


class _Pending(NamedTuple):
    context: Context  # a private copy of what was posted
    ttl: float | None
    fingerprint: str | None
    deadline: float | None = None  # time.monotonic() expiry of the buffered checkpoint


_ABSENT: Any = object()

# Every BatchStorage holding changes not yet flushed, by id: a strong reference, so an instance the
# program dropped without close() is not collected with acknowledged changes in its buffer; the exit
# flush (registered per instance, with a weak reference) then still finds it and flushes it. An
# instance leaves this dict at its next successful flush and on close(), and can then be collected.
# (Changed only with the instance's lock held; one dict operation at a time is atomic.)
_UNFLUSHED: dict[int, BatchStorage] = {}


class BatchStorage(Storage):
    """Wraps `storage`; see the module docstring. Thread-safe; one instance per StorageFile folder.

    `BatchStorage(StorageFile(...))` is a `FileBatchStorage` (`dotflow.providers.batch_file`), which
    also has versions and conditional writes; any other storage gets this class.
    """

    buffers_writes = True  # the engine flushes such a storage before it reports a failure

    def __new__(cls, storage: Storage, *args: Any, **kwargs: Any) -> BatchStorage:
        from dotflow.providers.storage_file import StorageFile

        if cls is BatchStorage and isinstance(storage, StorageFile):
            from dotflow.providers.batch_file import FileBatchStorage

            cls = FileBatchStorage
        return super().__new__(cls)

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
        self._pending: dict[str, Any] = {}
        self._oldest = 0.0  # time.monotonic() of the oldest pending change
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._flushes = 0
        self._posts = 0
        self._waiting: list[Callable[[], None]] = []  # on_durable callbacks for what is pending
        self._timer: threading.Thread | None = None
        self._open_backend()
        self._pid = os.getpid()  # a forked child never flushes its copy of the parent's buffer at exit
        atexit.register(_flush_at_exit, weakref.ref(self))

    @staticmethod
    def repair(storage: Storage) -> RepairReport:
        """Move the damaged segments of a `StorageFile` folder aside; go on with the intact ones.

        The user's explicit choice, when opening the folder raised `DamagedSegmentError`. Each damaged
        segment is renamed to `<name>.damaged` (its bytes kept for a person to inspect). A key whose
        newest checkpoint was in one is deleted, so its task runs again rather than an older value
        coming back (unless an older segment left by an interrupted compaction holds the same state);
        keys past the damage in a segment cut short cannot be read and are not known (`unread`). A
        torn newest segment is removed as on any open. Then the folder is closed; open it as usual.
        Takes the folder's lock: no `BatchStorage` may have it open.
        """
        from dotflow.providers.batch_file import repair

        return repair(storage)  # type: ignore[arg-type]  # repair() checks the type itself

    def __repr__(self) -> str:
        return f"BatchStorage({self.storage!r}, max_batch={self.max_batch}, max_delay={self.max_delay})"

    def key(self, task: Any) -> str:
        return self.storage.key(task=task)

    # --------------------------------------------------------------------------------------- writes

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        change = self._prepare(key, context, ttl, fingerprint)
        with self._lock:
            self._check_open()
            self._stage(key, change)
            self._posts += 1

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
                self._close_backend()

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
            pending = self._pending.get(key)
        if pending is None:
            return self.storage.read_checkpoint(key=key)
        if pending.deadline is not None and time.monotonic() >= pending.deadline:
            return None
        return Checkpoint(context=isolated_copy(pending.context), fingerprint=pending.fingerprint)

    def get(self, key: str) -> Context:
        with self._lock:
            buffered = key in self._pending
        if not buffered:
            return self.storage.get(key=key)
        checkpoint = self.read_checkpoint(key)
        return Context() if checkpoint is None else checkpoint.context

    # -------------------------------------------- everything else: flush first, then the wrapped storage

    def delete(self, key: str) -> bool:
        with self._lock:
            self._flush_locked()
            return self.storage.delete(key=key)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            self._flush_locked()
            return self.storage.delete_prefix(prefix=prefix)

    def list_keys(self, prefix: str = "") -> Iterable[str]:
        with self._lock:
            self._flush_locked()
            return self.storage.list_keys(prefix=prefix)

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        with self._lock:
            self._flush_locked()
            return self.storage.atomic_swap(key=key, expected=expected, new=new, ttl=ttl, fingerprint=fingerprint)

    def clear(self, workflow_id: str) -> None:
        with self._lock:
            self._flush_locked()
            self.storage.clear(workflow_id)

    # ------------------------------------------------------------- what a backend-specific subclass overrides

    def _open_backend(self) -> None:
        """Called once by __init__, before the instance is registered for the exit flush."""
        if self.read_only:
            raise ValueError("read_only=True is for BatchStorage(StorageFile(...)) only")

    def _close_backend(self) -> None:
        """Called once by close(), after the last flush (even if it failed)."""

    def _prepare(self, key: str, context: Any, ttl: Any, fingerprint: Any) -> Any:
        """Check and capture the checkpoint now, so later changes to the value cannot reach it."""
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        check_post_metadata(ttl, fingerprint)
        value = context if isinstance(context, Context) else Context(storage=context)
        copied = isolated_copy(value)  # as StorageDefault keeps it: what cannot be copied is kept as is
        return _Pending(copied, ttl, fingerprint, None if ttl is None else time.monotonic() + ttl)

    def _write_batch(self, batch: dict[str, Any]) -> None:
        """Make `batch` durable in the wrapped storage: `post_many` when it has one, else one post each."""
        post_many = getattr(self.storage, "post_many", None)
        items = [(key, p.context, p.ttl, p.fingerprint) for key, p in batch.items()]
        if callable(post_many):
            post_many(items)
            return
        for key, context, ttl, fingerprint in items:
            self.storage.post(key=key, context=context, ttl=cast("int | None", ttl), fingerprint=fingerprint)

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
        previous = self._pending.pop(key, _ABSENT)  # a re-posted key moves to the end, after what it may follow
        self._pending[key] = change
        if len(self._pending) >= self.max_batch or self.max_delay == 0:
            try:
                self._flush_locked()
            except BaseException:
                self._pending.pop(key, None)
                if previous is not _ABSENT:
                    self._pending[key] = previous
                raise
        elif first and self.max_delay is not None:
            self._start_timer()  # the flusher sleeps until a batch starts: wake it once per batch

    def _flush_locked(self) -> None:
        """Write the pending batch durably. On failure nothing is dropped: the batch stays pending."""
        if self._pending:
            self._write_batch(self._pending)
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
