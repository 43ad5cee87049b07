"""The unit of work: buffer checkpoint changes in memory, then commit them once or drop them.

Staging (`put`, `delete`) does no I/O. `get` sees the unit's own staged changes first (then an
enclosing unit's, for a nested unit), then the storage. Values are opaque: a staged value is handed
to `storage.post(context=value)` unchanged.

Commit
------
* Each staged key is written exactly once, in the order it was first staged (staging a key again
  replaces its change but keeps its place): puts through
  `storage.post(key=, context=value, ttl=, fingerprint=)`, deletes through `storage.delete(key=)`.
* Nothing staged: no I/O. One key: exactly one call, the write, and no reads (the hot path: one
  checkpoint per task).
* Two or more keys: if the storage has `read_checkpoint` and `delete`, the unit first reads a
  before-image of every key (one `read_checkpoint` each). If a write then fails part-way, the keys
  already written are restored, newest first: re-posted with the before-image's context and
  fingerprint (its ttl is unknown, so ttl=None), or deleted when they did not exist before. The key
  whose write raised is taken as not written. A storage without those methods gets no
  before-images, so nothing is restored and every written key is reported unrestored.
* A storage error makes the state "failed" and raises `CommitError` from it, with `key`, `written`,
  `restored` and `unrestored`. Restoring is compensation, not atomicity: a crash half-way through a
  multi-key commit leaves what was written.

Nesting, hooks and journal
--------------------------
`begin_nested()` opens a savepoint: its commit merges its changes and hooks into the parent (no
I/O), its rollback drops only its own changes. `on_commit` / `on_rollback` hooks run in
registration order once the outcome is final (a nested unit's on_commit hooks wait for the
top-level commit). The optional journal's `record(unit)` is called once per top-level unit, after
the outcome is final and before the hooks run. Hook and journal errors never hide an error that is
already propagating: they are logged on the "uow" logger and added to it as notes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, NamedTuple, Protocol

from uow.errors import CommitError, HookError, JournalError, NestingError, UnitClosedError

__all__ = [
    "ACTIVE",
    "COMMITTED",
    "DELETE",
    "FAILED",
    "ROLLED_BACK",
    "Change",
    "Delete",
    "Hook",
    "Put",
    "SupportsRecord",
    "SupportsStorage",
    "UnitOfWork",
]

ACTIVE: Final = "active"
COMMITTED: Final = "committed"
ROLLED_BACK: Final = "rolled_back"
FAILED: Final = "failed"

logger = logging.getLogger("uow")

Hook = Callable[[], object]


class SupportsStorage(Protocol):
    """The storage methods a unit always needs; `delete` and `read_checkpoint` are optional."""

    def post(
        self, key: str, context: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> None: ...

    def get(self, key: str) -> Any: ...


class SupportsRecord(Protocol):
    """A journal: told about every top-level unit once its outcome is final."""

    def record(self, unit: UnitOfWork) -> None: ...


class Put(NamedTuple):
    """A staged write of `value` (posted as the storage's `context`)."""

    value: Any
    fingerprint: str | None = None
    ttl: int | None = None


@dataclass(frozen=True)
class Delete:
    """A staged delete; `DELETE` is the one instance in use."""


DELETE: Final = Delete()

Change = Put | Delete


def _now() -> datetime:
    return datetime.now(timezone.utc)


class UnitOfWork:
    """Buffers checkpoint changes for one storage; see the module docstring for the commit rules."""

    def __init__(
        self,
        storage: SupportsStorage,
        *,
        journal: SupportsRecord | None = None,
        workflow_id: str | None = None,
        task_id: Any = None,
        attempt: int | None = None,
    ) -> None:
        self._storage = storage
        self._journal = journal
        self._workflow_id = workflow_id
        self._task_id = task_id
        self._attempt = attempt
        self._state: str = ACTIVE
        self._changes: dict[str, Change] = {}
        self._written: list[str] = []
        self._on_commit: list[Hook] = []
        self._on_rollback: list[Hook] = []
        self._parent: UnitOfWork | None = None
        self._child: UnitOfWork | None = None
        self._started_at = _now()
        self._finished_at: datetime | None = None

    def __repr__(self) -> str:
        return f"<UnitOfWork {self._state}, {len(self._changes)} change(s)>"

    # -- read-only facts, for callers and the journal ------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def workflow_id(self) -> str | None:
        return self._workflow_id

    @property
    def task_id(self) -> Any:
        return self._task_id

    @property
    def attempt(self) -> int | None:
        return self._attempt

    @property
    def changes(self) -> Mapping[str, Change]:
        """Staged changes in commit order: key -> `Put(value, fingerprint, ttl)` or `DELETE`."""
        return MappingProxyType(self._changes)

    @property
    def written_keys(self) -> list[str]:
        """Keys the commit wrote to storage (on a failed commit: those written before the failure)."""
        return list(self._written)

    @property
    def started_at(self) -> datetime:
        return self._started_at

    @property
    def finished_at(self) -> datetime | None:
        return self._finished_at

    # -- staging and reading -------------------------------------------------------------------

    def put(self, key: str, value: Any, *, fingerprint: str | None = None, ttl: int | None = None) -> None:
        """Stage a write of `value` under `key` (no I/O)."""
        self._check_open("put")
        self._changes[key] = Put(value, fingerprint, ttl)

    def delete(self, key: str) -> None:
        """Stage a delete of `key` (no I/O)."""
        self._check_open("delete")
        if not callable(getattr(self._storage, "delete", None)):
            raise TypeError(f"{type(self._storage).__name__} has no delete(); a unit cannot delete from it")
        self._changes[key] = DELETE

    def get(self, key: str, default: Any = None) -> Any:
        """The staged value of `key` (`default` if its delete is staged), else `storage.get(key=)`.

        A storage that answers None for a missing key also gives `default`.
        """
        self._require_active("get")
        unit: UnitOfWork | None = self
        while unit is not None:
            change = unit._changes.get(key)
            if isinstance(change, Put):
                return change.value
            if change is not None:
                return default
            unit = unit._parent
        value = self._storage.get(key=key)
        return default if value is None else value

    # -- hooks and nesting ---------------------------------------------------------------------

    def on_commit(self, fn: Hook) -> Hook:
        """Run `fn()` once the top-level commit has succeeded. Returns `fn` (usable as a decorator)."""
        self._require_active("register an on_commit hook")
        self._on_commit.append(fn)
        return fn

    def on_rollback(self, fn: Hook) -> Hook:
        """Run `fn()` once the unit has rolled back or its commit failed. Returns `fn`."""
        self._require_active("register an on_rollback hook")
        self._on_rollback.append(fn)
        return fn

    def begin_nested(self) -> UnitOfWork:
        """Open a savepoint on this unit; the parent is frozen until it commits or rolls back."""
        self._check_open("begin a nested unit")
        child = UnitOfWork(
            self._storage, workflow_id=self._workflow_id, task_id=self._task_id, attempt=self._attempt
        )
        child._parent = self
        self._child = child
        return child

    # -- outcome -------------------------------------------------------------------------------

    def commit(self) -> None:
        """Write every staged change (a nested unit merges into its parent instead)."""
        self._check_open("commit")
        if self._parent is not None:
            self._merge_into_parent()
            return
        try:
            self._written = self._write_all()
        except CommitError as error:
            self._written = error.written
            self._finish(FAILED, in_flight=error)
            raise
        self._finish(COMMITTED, in_flight=None)

    def rollback(self) -> None:
        """Drop every staged change; a no-op on a unit already rolled back or failed.

        Called while an exception is being handled, hook and journal errors are noted on that
        exception instead of being raised.
        """
        if self._state in (ROLLED_BACK, FAILED):
            return
        if self._state == COMMITTED:
            raise UnitClosedError(self._state, "roll back")
        self._finish(ROLLED_BACK, in_flight=sys.exc_info()[1])

    def __enter__(self) -> UnitOfWork:
        self._require_active("enter")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if self._state != ACTIVE:
            return False  # settled explicitly inside the block
        if exc is not None:
            self._finish(ROLLED_BACK, in_flight=exc)
            return False
        if self._child is not None:
            error = NestingError("left the with block while a nested unit was still active; rolled back")
            self._finish(ROLLED_BACK, in_flight=error)
            raise error
        self.commit()
        return False

    # -- internals -----------------------------------------------------------------------------

    def _require_active(self, action: str) -> None:
        if self._state != ACTIVE:
            raise UnitClosedError(self._state, action)

    def _check_open(self, action: str) -> None:
        """Active, and not frozen behind an active nested unit."""
        self._require_active(action)
        if self._child is not None:
            raise NestingError(
                f"cannot {action}: a nested unit is still active; commit or roll it back first"
            )

    def _merge_into_parent(self) -> None:
        parent = self._parent
        assert parent is not None
        parent._changes.update(self._changes)
        parent._on_commit.extend(self._on_commit)
        parent._on_rollback.extend(self._on_rollback)
        self._settle(COMMITTED)

    def _write_all(self) -> list[str]:
        changes = list(self._changes.items())
        before = self._read_before_images() if len(changes) > 1 else None
        written: list[str] = []
        for key, change in changes:
            try:
                if isinstance(change, Put):
                    self._storage.post(
                        key=key, context=change.value, ttl=change.ttl, fingerprint=change.fingerprint
                    )
                else:
                    self._storage.delete(key=key)  # type: ignore[attr-defined]
            except Exception as error:
                raise self._failed_write(key, written, before) from error
            written.append(key)
        return written

    def _read_before_images(self) -> dict[str, Any] | None:
        """One `read_checkpoint` per staged key, or None when the storage cannot restore."""
        storage: Any = self._storage
        if not all(callable(getattr(storage, name, None)) for name in ("read_checkpoint", "delete")):
            return None
        images: dict[str, Any] = {}
        for key in self._changes:
            try:
                images[key] = storage.read_checkpoint(key=key)
            except Exception as error:
                raise CommitError(key, reason="reading the before-image of") from error
        return images

    def _failed_write(self, key: str, written: list[str], before: dict[str, Any] | None) -> CommitError:
        """Restore what was written (when before-images exist) and describe the failure."""
        if before is None:
            return CommitError(key, written, restored=not written, unrestored=written)
        storage: Any = self._storage
        failures: dict[str, Exception] = {}
        for done in reversed(written):
            image = before[done]
            try:
                if image is None:
                    storage.delete(key=done)
                else:
                    storage.post(key=done, context=image.context, ttl=None, fingerprint=image.fingerprint)
            except Exception as restore_error:
                failures[done] = restore_error
        unrestored = [done for done in written if done in failures]
        commit_error = CommitError(key, written, restored=not unrestored, unrestored=unrestored)
        for done in unrestored:
            _add_note(commit_error, f"uow: could not restore {done!r}: {failures[done]!r}")
        return commit_error

    def _settle(self, state: str) -> list[Hook]:
        """Close this unit (rolling back an active child first); return the hooks due, child's first."""
        hooks = self._child._settle(ROLLED_BACK) if self._child is not None else []
        self._state = state
        self._finished_at = _now()
        if self._parent is not None:
            self._parent._child = None
        return hooks + (self._on_commit if state == COMMITTED else self._on_rollback)

    def _finish(self, state: str, in_flight: BaseException | None) -> None:
        """Settle, record in the journal, run the hooks, then report their errors."""
        hooks = self._settle(state)
        journal_error = self._record()
        hook_errors: list[Exception] = []
        for hook in hooks:
            try:
                hook()
            except Exception as failure:
                hook_errors.append(failure)
        if in_flight is not None:
            if journal_error is not None:
                _log_and_note(in_flight, "the journal failed", journal_error)
            for hook_error in hook_errors:
                _log_and_note(in_flight, "a hook failed", hook_error)
            return
        if journal_error is not None:
            raised = JournalError(f"the journal could not record the {state} unit: {journal_error!r}")
            for hook_error in hook_errors:
                _log_and_note(raised, "a hook failed", hook_error)
            raise raised from journal_error
        if hook_errors:
            raise HookError(hook_errors) from hook_errors[0]

    def _record(self) -> Exception | None:
        if self._journal is None:  # nested units are built without one
            return None
        try:
            self._journal.record(self)
        except Exception as error:
            return error
        return None


def _log_and_note(target: BaseException, what: str, error: Exception) -> None:
    logger.error("uow: %s: %r", what, error, exc_info=error)
    _add_note(target, f"uow: {what}: {error!r}")


def _add_note(target: BaseException, note: str) -> None:
    """`BaseException.add_note`, which Python 3.10 lacks; there the note is kept in `__notes__` alone."""
    if hasattr(target, "add_note"):
        target.add_note(note)
    else:  # pragma: no cover - Python 3.10
        target.__notes__ = [*getattr(target, "__notes__", []), note]  # type: ignore[attr-defined]
