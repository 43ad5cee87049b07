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
  multi-key commit leaves what was written. A BaseException raised by the storage (KeyboardInterrupt,
  SystemExit) is handled the same way (restore, state "failed") and then propagates itself.
* While a commit runs the state is "committing": a storage that calls back into the unit cannot
  commit it a second time (UnitClosedError).

Storage transactions and the journal's intent record
----------------------------------------------------
* A storage with `transaction()` (a context manager yielding an object with post / delete /
  post_if / delete_if, committed when the block ends normally, rolled back on an exception) gets
  every multi-key commit in one transaction: all or nothing, no before-images, no restoring.
* A journal with `prepare(unit)` is called once before the first write (its intent record); a
  failure there fails the commit with nothing written (`CommitError`). A journal whose
  `shares(storage)` is true instead writes its committed entry with `record_in(transaction, unit)`
  inside the storage's transaction, so the writes and the entry become visible together or not
  at all (even for one key); `record(unit)` still follows once the outcome is final.

Optimistic concurrency
----------------------
On a storage with versions (`read_checkpoint` returning a `version`, plus `post_if` / `delete_if`),
a `get` that reaches the storage remembers the version it saw, "absent" included; so does
`expect_version(key, version)` for a read made outside the unit. At commit, a write or delete of
such a key is conditional on that version; if the key changed meanwhile the commit raises
`ConflictError`, restores what it had already written, and the state is "conflict". Keys the unit
never read are written unconditionally. A multi-key commit compares its before-images with the
versions seen first, so a conflict found there writes nothing at all.

Leases
------
`guard_lease(key, owner=, epoch=, release=)` makes the commit conditional on a lease (see
`uow.leases`) still being held by `owner` in `epoch`: on a storage with `lease_transaction()` the
lease is checked (and, with `release`, deleted) inside the commit's transaction, even for one key;
if it changed hands the commit raises `LeaseLostError` (a `ConflictError`) and writes nothing. On
any other storage `guard_lease` returns False and checks nothing (the caller releases the lease
itself; the commit's own versions still protect what another worker committed).

Nesting, hooks and journal
--------------------------
`begin_nested()` opens a savepoint: its commit merges its changes and hooks into the parent (no
I/O), its rollback drops only its own changes. `on_commit` / `on_rollback` hooks run in
registration order once the outcome is final (a nested unit's on_commit hooks wait for the
top-level commit). The optional journal's `record(unit)` is called once per top-level unit, after
the outcome is final and before the hooks run. Hook and journal errors never hide an error that is
already propagating: they are logged on the "uow" logger and added to it as notes.

Storages that buffer writes
---------------------------
A storage whose `post` may return before the value is durable (a write buffer such as dotflow's
BatchStorage) says so with `on_durable(callback)` (`SupportsDurableNotice`). When the journal
offers `record_later(unit)` (as `uow.Journal` does), a committed unit's outcome is handed to the
storage as that callback: the journal confirms the unit only once the storage has made its writes
durable, so a crash in between leaves the entry "prepared" (unconfirmed), never a committed entry
pointing at a value that was lost. Other outcomes, and journals without `record_later`, are
recorded at once (`record_outcome`).

What a storage or journal can do is declared in `uow.contracts` and worked out once, when the
unit's `Persistence` binds them (a run binds each pair once for all its units).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType, TracebackType
from typing import Any, Final, Literal, NamedTuple, cast

from uow.contracts import (
    ACTIVE,
    COMMITTED,
    COMMITTING,
    CONFLICT,
    FAILED,
    ROLLED_BACK,
    LeaseTransaction,
    StoredCheckpoint,
    SupportsConditionalWrite,
    SupportsDeferredRecord,
    SupportsDelete,
    SupportsDurableNotice,
    SupportsReadCheckpoint,
    SupportsRecord,
    SupportsStorage,
    VersionedCheckpoint,
)
from uow.ids import new_id
from uow.errors import (
    CommitError,
    ConflictError,
    HookError,
    JournalError,
    LeaseLostError,
    NestingError,
    UnitClosedError,
)
from uow.persistence import Persistence, record_outcome

__all__ = [
    "ACTIVE",
    "COMMITTED",
    "COMMITTING",
    "CONFLICT",
    "DELETE",
    "FAILED",
    "ROLLED_BACK",
    "Change",
    "Delete",
    "Hook",
    "Put",
    "StoredCheckpoint",
    "SupportsConditionalWrite",
    "SupportsDelete",
    "SupportsDeferredRecord",
    "SupportsDurableNotice",
    "SupportsReadCheckpoint",
    "SupportsRecord",
    "SupportsStorage",
    "UnitOfWork",
    "VersionedCheckpoint",
    "record_outcome",
]

logger = logging.getLogger("uow")

Hook = Callable[[], object]

_NO_HOOKS: Final[list[Hook]] = []  # returned by _settle, never changed
_UNSEEN: Final = object()  # marks a key whose version the unit never saw


class _LeaseGuard(NamedTuple):
    """The lease a commit is conditional on (`UnitOfWork.guard_lease`)."""

    key: str
    owner: str
    epoch: int
    release: bool

    def holds(self, transaction: Any) -> bool:
        """Check (and with `release`, delete) the lease inside `transaction`, a `LeaseTransaction`."""
        lease: LeaseTransaction = transaction
        if self.release:
            return lease.release_lease(self.key, owner=self.owner, epoch=self.epoch)
        return lease.holds_lease(self.key, owner=self.owner, epoch=self.epoch)


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


def _as_datetime(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, timezone.utc)


class UnitOfWork:
    """Buffers checkpoint changes for one storage; see the module docstring for the commit rules."""

    def __init__(
        self,
        storage: SupportsStorage | Persistence[SupportsStorage],
        *,
        journal: SupportsRecord | None = None,
        workflow_id: str | None = None,
        task_id: Any = None,
        attempt: int | None = None,
        unit_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """`storage` (with `journal`), or a `Persistence` that already binds a storage and its journal
        (what a run passes: their abilities are then not worked out again for each unit)."""
        if type(storage) is Persistence:
            if journal is not None:
                raise TypeError("a unit of work on a Persistence takes its journal from it, not journal=")
            persistence = storage
        else:
            persistence = Persistence(cast(SupportsStorage, storage), journal)
        self._persistence = persistence
        self._storage = persistence.storage
        self._journal = persistence.journal
        self._capabilities = persistence.storage_can
        self._workflow_id = workflow_id
        self._task_id = task_id
        self._attempt = attempt
        self._run_id = run_id
        self._state: str = ACTIVE
        self._changes: dict[str, Change] = {}
        # Made on first use (most units never read, nor take hooks): fewer objects per task.
        self._seen: dict[str, str | None] | None = None  # key -> version read through this unit (None: absent)
        self._written: list[str] = []
        self._on_commit: list[Hook] | None = None
        self._on_rollback: list[Hook] | None = None
        self._parent: UnitOfWork | None = None
        self._child: UnitOfWork | None = None
        # drawn on first use (only a journal asks for it), unless preset: an id the journal reserved ahead
        self._id: str | None = unit_id
        # time.time() stamps; a datetime is made only when asked for (a journal does, nothing else)
        self._started_at = time.time()
        self._finished_at: float | None = None
        self._error: BaseException | None = None
        self._guard: _LeaseGuard | None = None  # the lease the commit is conditional on (`guard_lease`)

    def __repr__(self) -> str:
        return f"<UnitOfWork {self._state}, {len(self._changes)} change(s)>"

    # -- read-only facts, for callers and the journal ------------------------------------------

    @property
    def id(self) -> str:
        """A fresh id (32 hex digits, time-ordered: `uow.ids`), the unit's key in a journal; the same on every access."""
        if self._id is None:
            self._id = new_id()
        return self._id

    @property
    def state(self) -> str:
        return self._state

    @property
    def run_id(self) -> str | None:
        """The run this unit belongs to (see `uow.RunPersistence`), or None outside a run."""
        return self._run_id

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
    def expected_versions(self) -> Mapping[str, str | None]:
        """Versions the commit is conditional on: key -> version seen (None: the key was absent)."""
        return MappingProxyType(self._root()._seen or {})

    @property
    def written_keys(self) -> list[str]:
        """Keys the commit wrote to storage (on a failed commit: those written before the failure)."""
        return list(self._written)

    @property
    def started_at(self) -> datetime:
        return _as_datetime(self._started_at)

    @property
    def error_text(self) -> str | None:
        """What ended a unit that did not commit: "<type>: <message>" of the error, else None."""
        error = self._error
        return None if error is None else f"{type(error).__name__}: {error}"

    @property
    def finished_at(self) -> datetime | None:
        finished = self._finished_at
        return None if finished is None else _as_datetime(finished)

    # -- staging and reading -------------------------------------------------------------------

    def put(self, key: str, value: Any, *, fingerprint: str | None = None, ttl: int | None = None) -> None:
        """Stage a write of `value` under `key` (no I/O)."""
        if self._state != ACTIVE or self._child is not None:
            self._check_open("put")  # raises
        self._changes[key] = Put(value, fingerprint, ttl)

    def delete(self, key: str) -> None:
        """Stage a delete of `key` (no I/O)."""
        self._check_open("delete")
        if not self._capabilities.delete:
            raise TypeError(f"{type(self._storage).__name__} has no delete(); a unit cannot delete from it")
        self._changes[key] = DELETE

    def get(self, key: str, default: Any = None) -> Any:
        """The staged value of `key` (`default` if its delete is staged), else the stored value.

        A missing key gives `default`. The storage is read with `read_checkpoint` when it has one
        (remembering the version, on a storage with versions), else with `get`; a storage whose
        `get` answers None also gives `default`.
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
        capabilities = self._capabilities
        if capabilities.read:
            checkpoint = cast(SupportsConditionalWrite, self._storage).read_checkpoint(key=key)
            if capabilities.versions:
                self._root()._versions_seen().setdefault(key, None if checkpoint is None else checkpoint.version)
            return default if checkpoint is None else checkpoint.context
        value = self._storage.get(key=key)
        return default if value is None else value

    def expect_version(self, key: str, version: str | None) -> None:
        """Make the commit of `key` conditional on `version` (None: absent), read outside this unit.

        For a caller that read the key before opening the unit (e.g. to decide whether to run at
        all). Ignored on a storage without versions.
        """
        self._check_open("expect a version")
        if self._capabilities.versions:
            self._root()._versions_seen()[key] = version

    def guard_lease(self, key: str, *, owner: str, epoch: int, release: bool = False) -> bool:
        """Make the commit conditional on `key`'s lease being `owner`'s in `epoch` (see the module
        docstring); with `release`, the commit also deletes it. False on a storage that cannot
        check a lease inside its transaction (nothing is then checked)."""
        self._check_open("guard a lease")
        if not self._capabilities.lease_transaction:
            return False
        self._root()._guard = _LeaseGuard(key, owner, epoch, release)
        return True

    # -- hooks and nesting ---------------------------------------------------------------------

    def on_commit(self, fn: Hook) -> Hook:
        """Run `fn()` once the top-level commit has succeeded. Returns `fn` (usable as a decorator)."""
        self._require_active("register an on_commit hook")
        if self._on_commit is None:
            self._on_commit = []
        self._on_commit.append(fn)
        return fn

    def on_rollback(self, fn: Hook) -> Hook:
        """Run `fn()` once the unit has rolled back or its commit failed. Returns `fn`."""
        self._require_active("register an on_rollback hook")
        if self._on_rollback is None:
            self._on_rollback = []
        self._on_rollback.append(fn)
        return fn

    def begin_nested(self) -> UnitOfWork:
        """Open a savepoint on this unit; the parent is frozen until it commits or rolls back."""
        self._check_open("begin a nested unit")
        child = UnitOfWork(
            self._storage,
            workflow_id=self._workflow_id,
            task_id=self._task_id,
            attempt=self._attempt,
            run_id=self._run_id,
        )
        child._parent = self
        self._child = child
        return child

    # -- outcome -------------------------------------------------------------------------------

    def commit(self) -> None:
        """Write every staged change (a nested unit merges into its parent instead)."""
        if self._state != ACTIVE or self._child is not None:
            self._check_open("commit")  # raises
        if self._parent is not None:
            self._merge_into_parent()
            return
        self._state = COMMITTING  # refuses re-entrant use while the storage runs
        try:
            self._write_all()
        except ConflictError as error:
            self._finish(CONFLICT, in_flight=error)
            raise
        except BaseException as error:  # CommitError, or an interrupt raised by the storage
            self._finish(FAILED, in_flight=error)
            raise
        if self._journal is None and not self._on_commit and self._child is None:
            self._state = COMMITTED  # nothing to record, no hook to run: `_finish`, in short
            self._finished_at = time.time()
            return
        self._finish(COMMITTED, in_flight=None)

    def rollback(self) -> None:
        """Drop every staged change; a no-op on a unit already rolled back or failed.

        Called while an exception is being handled, hook and journal errors are noted on that
        exception instead of being raised.
        """
        if self._state in (ROLLED_BACK, FAILED, CONFLICT):
            return
        if self._state in (COMMITTED, COMMITTING):
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
        if self._on_commit:
            parent._on_commit = [*(parent._on_commit or ()), *self._on_commit]
        if self._on_rollback:
            parent._on_rollback = [*(parent._on_rollback or ()), *self._on_rollback]
        self._settle(COMMITTED)

    def _versions_seen(self) -> dict[str, str | None]:
        if self._seen is None:
            self._seen = {}
        return self._seen

    def _version_seen(self, key: str) -> object:
        """The version this unit saw for `key`, or _UNSEEN."""
        seen = self._seen
        return _UNSEEN if seen is None else seen.get(key, _UNSEEN)

    def _root(self) -> UnitOfWork:
        unit = self
        while unit._parent is not None:
            unit = unit._parent
        return unit

    def _write_all(self) -> None:
        """Write every change, appending to `_written`; on failure undo what was written and raise."""
        changes = list(self._changes.items())
        if not changes:
            return
        persistence = self._persistence
        journal = self._journal is not None
        shared = persistence.shared
        guard = self._guard
        if guard is not None or (persistence.storage_can.transaction and (shared or len(changes) > 1)):
            if journal and not shared:
                self._prepare()
            self._write_in_transaction(changes, shared, guard)
            return
        if journal:
            self._prepare()
        before = self._read_before_images() if len(changes) > 1 else None
        seen = self._seen
        storage = self._storage
        for key, change in changes:
            expected = _UNSEEN if seen is None else seen.get(key, _UNSEEN)
            try:
                if expected is _UNSEEN and type(change) is Put:  # the usual write, inline
                    storage.post(key=key, context=change.value, ttl=change.ttl, fingerprint=change.fingerprint)
                    done = True
                else:
                    done = self._write_one(key, change, expected)
            except BaseException as error:
                failure = self._undo(key, before)
                if isinstance(error, Exception):
                    raise failure from error
                _add_note(error, f"uow: {failure}")
                raise
            if not done:
                failure = self._undo(key, before)
                raise ConflictError(
                    key,
                    cast("str | None", expected),
                    failure.written,
                    restored=failure.restored,
                    unrestored=failure.unrestored,
                )
            self._written.append(key)

    def _prepare(self) -> None:
        """Tell the journal what is about to be written, before any write (see `uow.journal`)."""
        try:
            self._persistence.prepare(self)
        except Exception as error:
            raise CommitError(next(iter(self._changes)), reason="journalling the intent to write") from error

    def _write_in_transaction(self, changes: list[tuple[str, Change]], shared: bool, guard: _LeaseGuard | None) -> None:
        """All changes in one storage transaction (and the journal entry too when `shared`, the
        lease check when `guard`): all or nothing."""
        key = changes[0][0]
        persistence = self._persistence
        try:
            opened = persistence.transaction() if guard is None else persistence.lease_transaction()
            with opened as transaction:
                if guard is not None:
                    key = guard.key
                    if not guard.holds(transaction):
                        raise LeaseLostError(guard.key, guard.owner, guard.epoch)
                for key, change in changes:
                    expected = self._version_seen(key)
                    if not self._write_one(key, change, expected, target=transaction):
                        raise ConflictError(key, cast("str | None", expected))
                if shared:
                    key = "(journal entry)"
                    persistence.record_in(transaction, self)
        except (ConflictError, CommitError):
            raise
        except Exception as error:
            raise CommitError(key, reason="writing (transaction rolled back)") from error
        self._written.extend(k for k, _ in changes)

    def _write_one(self, key: str, change: Change, expected: object, target: Any = None) -> bool:
        """One write; False if its version condition failed (nothing written)."""
        storage: Any = self._storage if target is None else target
        if expected is _UNSEEN or not self._capabilities.versions:
            if isinstance(change, Put):
                storage.post(key=key, context=change.value, ttl=change.ttl, fingerprint=change.fingerprint)
            else:
                storage.delete(key=key)
            return True
        if isinstance(change, Put):
            return bool(
                storage.post_if(
                    key=key,
                    context=change.value,
                    version=expected,
                    ttl=change.ttl,
                    fingerprint=change.fingerprint,
                )
            )
        return bool(storage.delete_if(key=key, version=expected))

    def _read_before_images(self) -> dict[str, Any] | None:
        """One `read_checkpoint` per staged key, or None when the storage cannot restore.

        On a storage with versions, a before-image whose version differs from the one this unit
        saw is a conflict found before anything is written.
        """
        capabilities = self._capabilities
        if not (capabilities.read and capabilities.delete):
            return None
        storage: Any = self._storage
        images: dict[str, Any] = {}
        for key in self._changes:
            try:
                images[key] = storage.read_checkpoint(key=key)
            except Exception as error:
                raise CommitError(key, reason="reading the before-image of") from error
            expected = self._version_seen(key)
            if capabilities.versions and expected is not _UNSEEN:
                current = None if images[key] is None else images[key].version
                if current != expected:
                    raise ConflictError(key, cast("str | None", expected))
        return images

    def _undo(self, key: str, before: dict[str, Any] | None) -> CommitError:
        """Restore what was written (when before-images exist) and describe the failure at `key`."""
        written = list(self._written)
        if before is None:
            return CommitError(key, written, restored=not written, unrestored=written)
        storage: Any = self._storage
        failures: dict[str, BaseException] = {}
        for done in reversed(written):
            image = before[done]
            try:
                if image is None:
                    storage.delete(key=done)
                else:
                    storage.post(key=done, context=image.context, ttl=None, fingerprint=image.fingerprint)
            except BaseException as restore_error:
                failures[done] = restore_error
        unrestored = [done for done in written if done in failures]
        commit_error = CommitError(key, written, restored=not unrestored, unrestored=unrestored)
        for done in unrestored:
            _add_note(commit_error, f"uow: could not restore {done!r}: {failures[done]!r}")
        return commit_error

    def _settle(self, state: str) -> list[Hook]:
        """Close this unit (rolling back an active child first); return the hooks due, child's first."""
        hooks = self._child._settle(ROLLED_BACK) if self._child is not None else _NO_HOOKS
        self._state = state
        self._finished_at = time.time()
        if self._parent is not None:
            self._parent._child = None
        due = self._on_commit if state == COMMITTED else self._on_rollback
        return hooks + due if due else hooks

    def _finish(self, state: str, in_flight: BaseException | None) -> None:
        """Settle, record in the journal, run the hooks, then report their errors."""
        self._error = in_flight
        hooks = self._settle(state)
        if not hooks and self._journal is None:
            return
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
            self._persistence.record(self)
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
        setattr(target, "__notes__", [*getattr(target, "__notes__", []), note])
