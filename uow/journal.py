"""`Journal`: an SQL record of every top-level unit of work, and the audit (`verify`) built on it.

Order of writes for one unit (see also `uow.unit_of_work`)
    1. `prepare(unit)`: the unit's row with outcome "prepared" and one row per staged key (the
       checksum and size of the value about to be stored), committed in the journal's database.
    2. The storage writes.
    3. `record(unit)`: the final outcome ("committed" only once every write has returned), its end
       time and error text. For a prepared unit this is queued and written by the journal's next
       transaction (the next unit's step 1, a read, `flush`, `close`, the end of a dotflow run):
       one SQLite transaction per unit instead of two. A crash before then leaves "prepared",
       which is exactly what a crash between steps 2 and 3 leaves. On a storage that buffers
       writes, a committed outcome is queued only once the storage says the writes are durable
       (`record_later`, called by the unit of work through the storage's `on_durable`).

Intents ahead, outcomes in batches: `reserve` records step 1 for many units in one transaction
before any of them runs (the key each will put, no checksum yet: it is not known). A unit made with a
reserved id that puts exactly its key then skips step 1 (`prepare` writes nothing), and its outcome
completes its rows (times, checksum) in step 3. Queued outcomes are written every `batch_outcomes`
of them, and by `flush`, `release` (which also deletes the reservations never used) and `close`.
A crash loses at most the queued outcomes: their keys read "unconfirmed", since a reservation
without checksum makes any present value unconfirmed (see `_classify`).

So after a crash at any point, every key falls in one class (see `verify`): its stored value
matches the newest committed entry (backed); it matches an entry that never reached "committed"
(written but not confirmed: the crash window between 2 and 3); or it matches nothing (unbacked).
A committed entry never points at a value that was not written. When the storage offers a
transaction on the journal's own database, steps 1-3 collapse into that one transaction
(`shares(storage)` and `record_in`): the writes and the committed entry are visible together or not at all.

Checksums are SHA-256 of `encode(value)`, the storage-neutral bytes of a staged value; dotflow
sets `encode` to its checkpoint encoding, and `verify` re-encodes what the storage returns.

Claim events (`record_claims`: a lease taken, renewed late, expired, taken over, released, lost)
are queued like outcomes and written by the journal's next transaction, never by one of their own
(unless `CLAIMS_QUEUED` of them wait: then the one that fills the queue writes it). They are
diagnostics: a crash loses the queued ones, and `verify` never looks at them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from uow.contracts import ClaimEvent, LastWrite, RunFacts, SupportsListKeys, SupportsReadCheckpoint, UnitFacts
from uow.journal_writer import Batch
from uow.errors import JournalError
from uow.driver_query import DriverQuery
from uow.ids import new_id
from uow.outcomes import (
    BACKED,
    CHANGED,
    COMMITTED,
    CONFLICT,
    DELETE_OPERATION,
    FAILED,
    MISSING,
    PREPARED,
    PROBLEMS,
    PUT_OPERATION,
    ROLLED_BACK,
    RUN_UNFINISHED,
    TASK_ADOPTED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_RESTORED,
    UNBACKED,
    UNCONFIRMED,
)
from uow.unit_of_work import Put
from uow.sql_engine import BUSY_TIMEOUT, database_errors, make_engine, read_only, retry_locked

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from uow.journal_writer import JournalWriter

__all__ = [
    "BACKED",
    "CHANGED",
    "Journal",
    "JournalClaim",
    "JournalRun",
    "JournalUnit",
    "JournalWrite",
    "MISSING",
    "PROBLEMS",
    "UNBACKED",
    "UNCONFIRMED",
    "VerifyFinding",
    "outcome_of",
]

# (the verify statuses BACKED ... UNBACKED and PROBLEMS are defined in `uow.outcomes`, re-exported here)

Encoder = Callable[[Any], bytes]

# What `verify` says of a key written by a unit still "prepared": only a crash leaves one behind.
CRASH_WINDOW = "written by a unit whose outcome was never recorded: the crash window between its write and its outcome"

logger = logging.getLogger("uow")


@dataclass(frozen=True)
class JournalWrite:
    key: str
    operation: str  # "put" or "delete"
    fingerprint: str | None
    checksum: str | None
    size: int | None


@dataclass(frozen=True)
class JournalUnit:
    id: str
    workflow_id: str | None
    task_id: str | None
    attempt: int | None
    outcome: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    writes: tuple[JournalWrite, ...] = ()
    run_id: str | None = None


@dataclass(frozen=True)
class JournalRun:
    """A run as the journal recorded it; `status` is RUN_UNFINISHED for a run that never ended."""

    id: str
    workflow_id: str | None
    mode: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    completed: int | None
    restored: int | None
    failed: int | None
    adopted: int | None
    host: str | None
    pid: int | None
    storage: dict[str, Any] | None  # the storage described without credentials, as recorded

    @property
    def seconds(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class JournalClaim:
    """A claim event as the journal recorded it (see `uow.contracts.ClaimEvent`)."""

    id: int
    run_id: str | None
    workflow_id: str | None
    task_id: str | None
    key: str
    event: str
    owner: str
    epoch: int
    at: datetime
    previous_owner: str | None
    late: float | None


@dataclass(frozen=True)
class VerifyFinding:
    key: str
    status: str  # one of BACKED, UNCONFIRMED, MISSING, CHANGED, UNBACKED
    unit_id: str | None = None  # the entry the key was compared with
    detail: str = ""


@dataclass
class _KeyHistory:
    committed: list[tuple[datetime, str, JournalWrite]] = field(default_factory=list)
    unconfirmed: list[tuple[datetime, str, JournalWrite]] = field(default_factory=list)
    reserved: list[tuple[datetime, str, JournalWrite]] = field(default_factory=list)  # intents with no checksum yet
    runs: dict[str, str | None] = field(default_factory=dict)  # unit id -> its run id


_KEYS_PER_QUERY = 500  # keys per `IN (...)` (SQLite allows 32766 parameters; PostgreSQL more)
CLAIMS_QUEUED = 256  # claim events that make `record_claims` write the queue itself (none else wrote it)


def outcome_of(unit: UnitFacts) -> str:
    """The journal outcome of a settled unit: committed, rolled_back, failed or conflict.

    A unit rolled back because of an error (a step that raised, a `with` block left by an
    exception) is recorded FAILED with that error, so `--outcome failed` finds it; a rollback with
    no error in flight (`unit.rollback()`, asked for) stays ROLLED_BACK.
    """
    state = str(unit.state)
    if state == ROLLED_BACK and unit.error_text is not None:
        return FAILED
    return state


class Journal:
    """Records units of work in an SQL database (SQLite file or PostgreSQL); see the module docstring.

    `Journal("sqlite:///journal.db")` creates a missing SQLite file at the current schema; an
    existing database must be at the current schema revision (`dotflow journal upgrade`).
    `synchronous` is SQLite's durability level (NORMAL by default: see `uow.sql_engine`) and
    `busy_timeout` the seconds a write waits for another process's lock on a SQLite file.
    `read_only=True` (for audits): nothing is created or changed, not even SQLite's journal mode; a
    missing file, or a database without the journal's tables, is an error, and writing is refused.
    A database that cannot be reached, opened, read or written raises `JournalError`, one line that
    names the database (its password masked) and the cause (see `uow.sql_engine.database_errors`).
    One journal serves any number of threads: its writes run one at a time on one connection.
    """

    def __init__(
        self,
        url_or_engine: Any,
        *,
        encode: Encoder | None = None,
        synchronous: str = "NORMAL",
        batch_outcomes: int = 64,
        busy_timeout: float = BUSY_TIMEOUT,
        read_only: bool = False,
    ) -> None:
        if batch_outcomes < 1:
            raise ValueError(f"batch_outcomes must be at least 1, not {batch_outcomes!r}")
        from uow import journal_migrate

        if read_only and isinstance(url_or_engine, str):
            _require_existing_sqlite(url_or_engine)
        self.engine: Engine = make_engine(
            url_or_engine, synchronous=synchronous, busy_timeout=busy_timeout, wal=not read_only
        )
        self.encode = encode
        self.read_only = read_only
        try:
            with self._database_errors():
                journal_migrate.ensure_schema(self.engine, create=not read_only)
        except BaseException:
            if self.engine is not url_or_engine:
                self.engine.dispose()
            raise
        from uow import journal_schema
        from uow.journal_writer import JournalWriter

        self._schema = journal_schema
        self._writer = JournalWriter(self.engine, journal_schema)
        # A journal nobody closes (one `Config(journal=URL)` opened, say) still releases its connections
        # when it is garbage collected, or at exit; `close` does it at once, after writing the queue.
        self._release_connections = weakref.finalize(self, _release_connections, self._writer, self.engine)
        self._recorded_in_transaction: set[str] = set()
        self._prepared: dict[str, dict[str, Any]] = {}  # id -> row of units prepared here, not yet recorded
        self._pending: list[_Entry] = []  # outcomes queued for the next transaction
        self._last_write_selects: tuple[DriverQuery, Any] | None = None  # built on first use (_last_write_queries)
        self._claims: list[dict[str, Any]] = []  # claim events queued for the next transaction
        self._awaiting = 0  # outcomes waiting for their storage to call back (see `record_later`)
        self._batch_outcomes = batch_outcomes  # queued outcomes that make `record` write the queue
        self._reserved: dict[str, str] = {}  # id -> key of units reserved ahead (`reserve`), not yet recorded
        self._used: set[str] = set()  # the reserved ids whose unit took the fast `prepare`
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._closed = False

    def __repr__(self) -> str:
        return f"Journal({self.url!r})"

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Write the queued outcomes, then release the database connections.

        Outcomes still waiting for their storage (`record_later`) stay "prepared": flush a
        buffering storage before closing its journal.
        """
        with self._lock:
            awaiting = self._awaiting
        if awaiting:
            logger.warning(
                "journal %s closed while %d committed outcome(s) still wait for their storage to make "
                "the writes durable; they stay 'prepared' (verify: unconfirmed). Flush the storage first.",
                self.url,
                awaiting,
            )
        try:
            self.release()
        finally:
            self._closed = True
            self._release_connections()

    # -- recording -----------------------------------------------------------------------------

    def prepare(self, unit: UnitFacts) -> None:
        """Record the intent of `unit` (outcome "prepared", its keys and checksums) before it writes.

        The same transaction first writes the outcomes queued so far (see `record`). A unit
        reserved ahead (`reserve`) that puts exactly its reserved key costs no transaction: its
        intent is already in. Any other reserved unit drops its reserved write row and is
        prepared as usual.
        """
        unit_id = _unit_id(unit)
        released = None
        with self._lock:
            reserved_key = self._reserved.get(unit_id)
            if reserved_key is not None and unit_id not in self._used:
                if _puts_only(unit, reserved_key):
                    self._used.add(unit_id)
                    return
                del self._reserved[unit_id]
                released = unit_id
        unit_row = self._unit_row(unit, PREPARED)
        self._write(_Entry(unit_row, self._write_rows(unit_id, unit), None, released=released))
        with self._lock:
            self._prepared[unit_id] = unit_row

    def reserve(self, entries: Iterable[tuple[str | None, Any, str]], run_id: str | None = None) -> list[str]:
        """Record ahead, in ONE transaction, the intents of units that will each put one key.

        `entries` are (workflow id, task id, key). Each gets a unit row (a fresh id, outcome
        "prepared", attempt 1) and a write row for its key, a put whose checksum is not known yet
        (NULL). A unit made with one of the returned ids (`UnitOfWork(unit_id=...)`) and putting
        exactly that key then needs no transaction of its own in `prepare`; `record` completes its
        rows (times, outcome, checksum) in the next batch of outcomes. Until then, and after a
        crash, the entry reads "prepared" with no checksum: `verify` calls the key unconfirmed if
        present, and nothing if absent. `release` deletes the reservations never used. `run_id`:
        the run the units belong to (see `begin_run`).
        """
        started = _now()
        reserved: list[tuple[str, str]] = []  # (unit id, key)
        batch_entries = []
        for workflow_id, task_id, key in entries:
            unit_id = new_id()
            unit_row = {
                "id": unit_id,
                "workflow_id": workflow_id,
                "task_id": None if task_id is None else str(task_id),
                "attempt": 1,
                "outcome": PREPARED,
                "started_at": started,
                "finished_at": None,
                "error": None,
                "run_id": run_id,
            }
            write = {"unit_id": unit_id, "key": str(key), "operation": PUT_OPERATION, "fingerprint": None, "checksum": None, "size": None}
            batch_entries.append(_Entry(unit_row, [write], None))
            reserved.append((unit_id, str(key)))
        if not reserved:
            return []
        self._write(*batch_entries)
        with self._lock:
            self._reserved.update(reserved)
        return [unit_id for unit_id, _ in reserved]

    def release(self, unit_ids: Iterable[str] | None = None) -> None:
        """Write the queued outcomes and delete the reservations never used, in one transaction.

        `unit_ids`: the reservations of one run (the end of a dotflow run passes its own); None:
        every unused reservation of this journal. A reservation whose unit has taken `prepare`
        is kept: its outcome completes it. Without any, this is `flush`.
        """
        with self._lock:
            candidates = list(self._reserved) if unit_ids is None else [u for u in unit_ids if u in self._reserved]
            unused = [u for u in candidates if u not in self._used]
            for unit_id in unused:
                del self._reserved[unit_id]
        if not unused:
            self.flush()
            return
        try:
            self._write(_Entry(None, [], None, dropped=unused))
        except BaseException:
            with self._lock:
                for unit_id in unused:  # still in the database: a later release retries
                    self._reserved.setdefault(unit_id, "")
            raise

    def record(self, unit: UnitFacts) -> None:
        """Record the final outcome of `unit`.

        The outcome of a unit this journal prepared (or reserved) is queued, and written by the
        next journal transaction of this process (the next unit's `prepare`, any read, `flush`,
        `release`, `close`, the end of a dotflow run), or once `batch_outcomes` are queued. Until then it reads as
        "prepared", which is also what a crash would leave: `verify` calls such keys unconfirmed.
        A unit that was never prepared is inserted at once.
        """
        entry = self._outcome(unit)
        if entry is None:
            return
        if entry.queued and unit.run_id is not None:
            with self._lock:
                self._pending.append(entry)
                full = len(self._pending) >= self._batch_outcomes
            if full:
                self._write()
            return
        self._write(entry)  # outside a run: in the journal when `commit()` (or the `with` block) returns

    def record_later(self, unit: UnitFacts) -> Callable[[], None]:
        """The outcome of `unit`, to be queued only when the returned callback is called.

        For a storage that buffers writes (`on_durable`): the unit's entry stays "prepared" (so
        `verify` calls its keys unconfirmed, never missing) until the storage has made its writes
        durable and calls back. The callback only queues the outcome under a short lock, no I/O, so
        a storage may call it from any thread, under its own lock; the next journal transaction
        writes it. A unit never prepared is queued whole (its row and its writes).
        """
        entry = self._outcome(unit)
        if entry is None:
            return _nothing
        entry.queued = True
        with self._lock:
            self._awaiting += 1
            full = len(self._pending) >= self._batch_outcomes
        if full:  # outcomes confirmed by the storage since: written here, not in its callback
            self._write()
        called = False
        alone = unit.run_id is None  # no run will write the queue at its end: the callback does

        def now_durable() -> None:
            nonlocal called
            with self._lock:
                if called:
                    return
                called = True
                self._awaiting -= 1
                self._pending.append(entry)
            if alone:
                self._write_after_durable()

        return now_durable

    def _write_after_durable(self) -> None:
        """Write the queue from a storage's durable callback (a unit outside a run); errors are logged,
        never raised into the storage (the next journal transaction retries the queue). A closed
        journal writes nothing: the outcome stays "prepared" (see `close`)."""
        if self._closed:
            return
        try:
            self._write()
        except Exception as error:
            logger.warning("journal %s: a confirmed outcome could not be written yet: %s", self.url, error)

    # -- runs ------------------------------------------------------------------------------------

    def begin_run(self, run: RunFacts) -> None:
        """Queue the row of a run that begins (status NULL: read as "unfinished" until it ends).

        Written by the journal's next transaction: a run's reservations, or the `flush` the run
        makes when it reserves nothing, so a run that never ends (a crash) still has its row.
        """
        with self._lock:
            self._pending.append(_Entry(None, [], None, run_row=_run_row(run)))

    def end_run(self, run: RunFacts) -> None:
        """Queue the final row of a run (status, end, counts), written with the run's last transaction."""
        with self._lock:
            self._pending.append(_Entry(None, [], None, run_row=_run_row(run)))

    # -- claims ----------------------------------------------------------------------------------

    def record_claims(self, events: Iterable[ClaimEvent]) -> None:
        """Queue claim events (`uow.contracts.ClaimEvent`), written by the journal's next transaction.

        No I/O here, unless `CLAIMS_QUEUED` events wait (a run whose units are written inside its
        storage's transactions writes nothing else until its end): then this call writes the queue,
        and a failure to do so is logged (the events stay queued for the next transaction).
        """
        if self.read_only:
            raise JournalError(f"journal {self.url} was opened read-only: it records nothing")
        rows = [_claim_row(event) for event in events]
        with self._lock:
            self._claims.extend(rows)
            full = len(self._claims) >= CLAIMS_QUEUED
        if full:
            try:
                self._write()
            except Exception as error:
                logger.warning("journal %s: %d queued claim event(s) could not be written yet: %s", self.url,
                               len(self._claims), error)  # fmt: skip

    def claims(
        self,
        *,
        run_id: str | None = None,
        workflow_id: str | None = None,
        task_id: str | None = None,
        event: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[JournalClaim]:
        """Recorded claim events matching every given filter, oldest first."""
        self.flush()
        table = self._schema.claim_table
        query = self._matching(table, table.select(), run_id, workflow_id, task_id=task_id, event=event)
        query = query.order_by(table.c.at, table.c.id)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self._reading() as connection:
            rows = connection.execute(query).all()
        return [_claim_from_row(row) for row in rows]

    def count_claims(self, *, run_id: str | None = None, workflow_id: str | None = None, task_id: str | None = None,
                     event: str | None = None) -> int:  # fmt: skip
        """How many events `claims` would give with these filters and no limit."""
        from sqlalchemy import func

        self.flush()
        table = self._schema.claim_table
        counted = table.select().with_only_columns(func.count()).select_from(table)
        query = self._matching(table, counted, run_id, workflow_id, task_id=task_id, event=event)
        with self._reading() as connection:
            return int(connection.execute(query).scalar_one())

    def flush(self) -> None:
        """Write the outcomes (and claim events) queued so far, now."""
        with self._lock:
            if not self._pending and not self._claims:
                return
        self._write()

    def _outcome(self, unit: UnitFacts) -> _Entry | None:
        """The entry that records the final outcome of `unit` (None: already written with the storage)."""
        unit_id = _unit_id(unit)
        with self._lock:
            in_transaction = unit_id in self._recorded_in_transaction
            self._recorded_in_transaction.discard(unit_id)
            prepared = self._prepared.pop(unit_id, None)
            reserved = self._reserved.pop(unit_id, None) is not None
            used = reserved and unit_id in self._used
            self._used.discard(unit_id)
        outcome = outcome_of(unit)
        if in_transaction and outcome == COMMITTED:
            return None
        if reserved:
            # A unit reserved ahead: its row gets the real times and outcome, its write row the
            # checksum (unless it never prepared: then its reserved write row goes).
            unit_row = self._unit_row(unit, outcome)
            unit_row.update(finished_at=_aware(unit.finished_at) or _now(), error=unit.error_text)
            fingerprint = self._fingerprint_to_save(unit) if outcome == COMMITTED else None
            writes = self._write_rows(unit_id, unit)
            return _Entry(unit_row, writes, fingerprint, queued=True, released=None if used else unit_id)
        unit_row = dict(prepared) if prepared is not None else self._unit_row(unit, outcome)
        unit_row.update(
            outcome=outcome,
            finished_at=_aware(unit.finished_at) or _now(),
            error=unit.error_text,
        )
        writes = [] if prepared is not None else self._write_rows(unit_id, unit)
        fingerprint = self._fingerprint_to_save(unit) if outcome == COMMITTED else None
        return _Entry(unit_row, writes, fingerprint, queued=prepared is not None)

    def _write(self, *entries: _Entry) -> None:
        """One transaction: the queued outcomes first, then `entries`; the queue empties only if it commits."""
        if self.read_only:
            raise JournalError(f"journal {self.url} was opened read-only: it records nothing")
        with self._write_lock:  # the queue must not be written twice, nor overtaken, by two threads

            def run() -> None:
                with self._lock:
                    pending = list(self._pending)
                    claims = list(self._claims)
                batch = Batch(claims=claims)
                for queued in [*pending, *entries]:
                    queued.add_to(batch)
                self._writer.run(batch)
                with self._lock:
                    del self._pending[: len(pending)]
                    del self._claims[: len(claims)]

            with self._database_errors():
                retry_locked(run)

    def _database_errors(self) -> AbstractContextManager[None]:
        return database_errors(self.engine, JournalError, "journal")

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection that only reads (no lock on SQLite); driver errors become `JournalError`."""
        with self._database_errors(), read_only(self.engine) as connection:
            yield connection

    def shares(self, storage: Any) -> bool:
        """True if `storage` keeps its checkpoints in this journal's database and offers `transaction()`
        (its transactions have a `connection`), so one database commit covers the writes and the entry."""
        from sqlalchemy.engine import Engine

        return (
            isinstance(storage, _SQLStorage)
            and isinstance(storage.engine, Engine)
            and _same_database(storage.engine, self.engine)
        )

    def record_in(self, transaction: Any, unit: UnitFacts) -> None:
        """Write `unit` as committed inside the storage's `transaction` (see `shares`)."""
        connection: Connection = transaction.connection
        unit_row = self._unit_row(unit, COMMITTED)
        unit_row["finished_at"] = _now()
        entry = _Entry(unit_row, self._write_rows(unit_row["id"], unit), self._fingerprint_to_save(unit))
        batch = Batch()
        entry.add_to(batch)
        self._writer.run(batch, connection=connection)
        with self._lock:
            self._recorded_in_transaction.add(unit_row["id"])

    def _unit_row(self, unit: UnitFacts, outcome: str) -> dict[str, Any]:
        task_id = unit.task_id
        return {
            "id": _unit_id(unit),
            "workflow_id": unit.workflow_id,
            "task_id": None if task_id is None else str(task_id),
            "attempt": unit.attempt,
            "outcome": outcome,
            "started_at": _aware(unit.started_at) or _now(),
            "finished_at": None,
            "error": None,
            "run_id": unit.run_id,
        }

    def _write_rows(self, unit_id: str, unit: UnitFacts) -> list[dict[str, Any]]:
        rows = []
        for key, change in unit.changes.items():
            put = change if isinstance(change, Put) else None
            checksum, size = (None, None) if put is None else self._digest(put.value)
            rows.append(
                {
                    "unit_id": unit_id,
                    "key": key,
                    "operation": DELETE_OPERATION if put is None else PUT_OPERATION,
                    "fingerprint": None if put is None else put.fingerprint,
                    "checksum": checksum,
                    "size": size,
                }
            )
        return rows

    def _digest(self, value: Any) -> tuple[str | None, int | None]:
        if self.encode is None:
            return None, None
        try:
            data = self.encode(value)
        except Exception:  # an unencodable value: its commit fails on its own, with its own error
            return None, None
        return hashlib.sha256(data).hexdigest(), len(data)

    @staticmethod
    def _fingerprint_to_save(unit: UnitFacts) -> tuple[str, str] | None:
        """(workflow id, fingerprint) a committed unit sets, or None when it sets none."""
        workflow_id = unit.workflow_id
        if workflow_id is None:
            return None
        prints = [c.fingerprint for c in unit.changes.values() if isinstance(c, Put) and c.fingerprint is not None]
        if not prints:
            return None
        return str(workflow_id), str(prints[-1])

    # -- per-workflow input fingerprint ----------------------------------------------------------

    def fingerprint(self, workflow_id: str) -> str | None:
        """The current input fingerprint of `workflow_id`, or None if none was recorded."""
        self.flush()
        table = self._schema.workflow_input_table
        with self._reading() as connection:
            return connection.execute(
                table.select().with_only_columns(table.c.fingerprint).where(table.c.workflow_id == workflow_id)
            ).scalar_one_or_none()

    def set_fingerprint(self, workflow_id: str, fingerprint: str) -> None:
        """Set the workflow's input fingerprint (each committed unit with a fingerprint also does)."""
        self._write(_Entry(None, [], (workflow_id, fingerprint)))

    def fingerprints(self) -> list[tuple[str, str, datetime]]:
        """(workflow id, fingerprint, when it last changed) of every workflow, by workflow id."""
        self.flush()
        table = self._schema.workflow_input_table
        with self._reading() as connection:
            rows = connection.execute(table.select().order_by(table.c.workflow_id)).all()
        return [(row.workflow_id, row.fingerprint, _utc(row.updated_at)) for row in rows]

    # -- reading ---------------------------------------------------------------------------------

    def units(
        self,
        *,
        workflow_id: str | None = None,
        task_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> list[JournalUnit]:
        """Entries matching every given filter, newest first (by start time) unless `oldest_first`."""
        self.flush()
        table = self._schema.unit_table
        query = self._filtered(table.select(), workflow_id, task_id, outcome, since, until, run_id)
        order = (table.c.started_at, table.c.id) if oldest_first else (table.c.started_at.desc(), table.c.id.desc())
        query = query.order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self._reading() as connection:
            rows = connection.execute(query).all()
        return [_unit_from_row(row) for row in rows]

    def count_units(
        self,
        *,
        workflow_id: str | None = None,
        task_id: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        run_id: str | None = None,
    ) -> int:
        """How many entries `units` would give with these filters and no limit."""
        from sqlalchemy import func

        self.flush()
        table = self._schema.unit_table
        query = self._filtered(table.select().with_only_columns(func.count()).select_from(table), workflow_id, task_id, outcome, since, until, run_id)
        with self._reading() as connection:
            return int(connection.execute(query).scalar_one())

    def _matching(self, table: Any, query: Any, run_id: str | None, workflow_id: str | None,
                  **equal: str | None) -> Any:  # fmt: skip
        """`query` on `table` narrowed to `run_id` and `workflow_id` (a run alone adds its workflow, so
        the per-workflow index finds its rows) and to each given column's value (None: any)."""
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
            run = self.run(run_id) if workflow_id is None else None
            if run is not None:
                recorded = run.workflow_id
                query = query.where(table.c.workflow_id.is_(None) if recorded is None else table.c.workflow_id == recorded)
        if workflow_id is not None:
            query = query.where(table.c.workflow_id == workflow_id)
        for column, value in equal.items():
            if value is not None:
                query = query.where(table.c[column] == value)
        return query

    def _filtered(self, query: Any, workflow_id: str | None, task_id: str | None, outcome: str | None,
                  since: datetime | None, until: datetime | None, run_id: str | None) -> Any:  # fmt: skip
        table = self._schema.unit_table
        query = self._matching(table, query, run_id, workflow_id, task_id=task_id, outcome=outcome)
        if since is not None:
            query = query.where(table.c.started_at >= _aware(since))
        if until is not None:
            query = query.where(table.c.started_at < _aware(until))
        return query

    def runs(self, *, workflow_id: str | None = None, limit: int | None = None, offset: int = 0) -> list[JournalRun]:
        """Recorded runs, newest first; a run that never ended reads RUN_UNFINISHED."""
        self.flush()
        table = self._schema.run_table
        query = table.select()
        if workflow_id is not None:
            query = query.where(table.c.workflow_id == workflow_id)
        query = query.order_by(table.c.started_at.desc(), table.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self._reading() as connection:
            rows = connection.execute(query).all()
        return [_run_from_row(row) for row in rows]

    def count_runs(self, *, workflow_id: str | None = None) -> int:
        """How many runs `runs` would give with this filter and no limit."""
        from sqlalchemy import func

        self.flush()
        table = self._schema.run_table
        query = table.select().with_only_columns(func.count()).select_from(table)
        if workflow_id is not None:
            query = query.where(table.c.workflow_id == workflow_id)
        with self._reading() as connection:
            return int(connection.execute(query).scalar_one())

    def run(self, run_id: str) -> JournalRun | None:
        """One recorded run, or None."""
        self.flush()
        table = self._schema.run_table
        with self._reading() as connection:
            row = connection.execute(table.select().where(table.c.id == run_id)).one_or_none()
        return None if row is None else _run_from_row(row)

    def run_ids(self, part: str) -> list[str]:
        """Ids of recorded runs that start or end with `part` (at most 2: enough to tell one from many)."""
        table = self._schema.run_table
        query = table.select().with_only_columns(table.c.id).where(_starts_or_ends(table.c.id, part))
        with self._reading() as connection:
            return [str(r) for r in connection.execute(query.limit(2)).scalars()]

    def unit_ids(self, part: str) -> list[str]:
        """Ids of units that start or end with `part` (at most 2). (A unit id starts with its time,
        `uow.ids`: the random end is what tells units apart, and what tables show.)"""
        table = self._schema.unit_table
        query = table.select().with_only_columns(table.c.id).where(_starts_or_ends(table.c.id, part))
        self.flush()
        with self._reading() as connection:
            return [str(r) for r in connection.execute(query.limit(2)).scalars()]

    def knows_workflow(self, workflow_id: str) -> bool:
        """True if any unit or run of `workflow_id` is recorded."""
        self.flush()
        units, runs = self._schema.unit_table, self._schema.run_table
        with self._reading() as connection:
            for table in (runs, units):
                found = connection.execute(
                    table.select().with_only_columns(table.c.id).where(table.c.workflow_id == workflow_id).limit(1)
                ).first()
                if found is not None:
                    return True
        return False

    def last_writes(self, keys: Iterable[str], *, workflow_id: str | None = None) -> dict[str, LastWrite]:
        """Each key's newest committed write, with the checksums of newer writes never confirmed
        (`LastWrite.pending`; None: reserved ahead, value unknown). Keys no entry wrote are left out.

        With `workflow_id` (a resume's question), that workflow's newest units are read first, until
        every key has its newest committed write: the cost follows the keys, not the number of runs
        that wrote them before. Keys it does not settle that way (written outside the workflow, or
        never) are looked up through the write-key index, one query per 500 keys. (A key settled by
        its workflow's units does not see a newer write by another workflow's unit: in dotflow a key
        belongs to one workflow, and if another overwrote it, a resume refuses what it finds.)"""
        self.flush()  # outcomes still queued are part of the answer
        wanted = list(dict.fromkeys(keys))
        found: dict[str, LastWrite] = {}
        with self._reading() as connection:
            if workflow_id is not None:
                self._newest_of_workflow(connection, workflow_id, wanted, found)
            rest = [key for key in wanted if key not in found]
            for start in range(0, len(rest), _KEYS_PER_QUERY):
                self._newest_by_key(connection, rest[start : start + _KEYS_PER_QUERY], found)
        return found

    def _newest_of_workflow(self, connection: Connection, workflow_id: str, wanted: list[str],
                            found: dict[str, LastWrite]) -> None:  # fmt: skip
        """Settle what it can of `wanted` from `workflow_id`'s units, newest first (see `last_writes`)."""
        left = set(wanted)
        newer: dict[str, list[str | None]] = {}  # key -> the unconfirmed writes met before its committed one
        query = self._last_write_queries()[0]
        # Rows come in batches of as many as there are keys: usually one batch is all it reads.
        # The query stops after a few rows per key (its LIMIT), settled or not: a key its units never
        # wrote (restored from before the journal existed) would otherwise make it read the workflow's
        # whole history.
        parameters = {"workflow_id": workflow_id, "budget": 4 * len(left) + 64}
        rows = query.rows(connection, parameters, batch=min(max(len(left), 16), 1000))
        try:
            for key, outcome, unit_id, run_id, operation, checksum in rows:
                if key not in left:
                    continue
                if outcome != COMMITTED:
                    newer.setdefault(key, []).append(_written(operation, checksum))
                    continue
                unconfirmed = newer.pop(key, None)
                if unconfirmed is None and operation == PUT_OPERATION:  # the usual row: made directly, it is cheaper
                    found[key] = LastWrite(key, checksum, unit_id, run_id)
                else:
                    found[key] = _last_write(key, unit_id, run_id, operation, checksum, (unconfirmed or [])[::-1])
                left.discard(key)
                if not left:
                    break  # the older units are never read
        finally:
            rows.close()

    def _newest_by_key(self, connection: Connection, keys: list[str], found: dict[str, LastWrite]) -> None:
        """Settle `keys` from every write of each, oldest first (see `last_writes`)."""
        newest: dict[str, tuple[Any, ...]] = {}  # key -> its newest committed write so far
        newer: dict[str, list[str | None]] = {}  # key -> the unconfirmed writes after it
        for key, outcome, unit_id, run_id, operation, checksum in connection.execute(
            self._last_write_queries()[1], {"keys": keys}
        ):
            if outcome == COMMITTED:
                newest[key] = (unit_id, run_id, operation, checksum)
                newer.pop(key, None)
            else:
                newer.setdefault(key, []).append(_written(operation, checksum))
        for key in keys:
            pending = tuple(newer.get(key, ()))
            if key in newest:
                unit_id, run_id, operation, checksum = newest[key]
                found[key] = _last_write(key, unit_id, run_id, operation, checksum, pending)
            elif pending:
                found[key] = LastWrite(key, None, None, None, pending=pending)

    def _last_write_queries(self) -> tuple[DriverQuery, Any]:
        """`last_writes`' two queries, built once: a workflow's writes newest first (the per-workflow
        index gives that order, so rows stream and reading can stop), and given keys' writes oldest first
        (the write-key index; the keys are one expanding parameter)."""
        if self._last_write_selects is None:
            from sqlalchemy import bindparam, select

            units, writes = self._schema.unit_table, self._schema.write_table
            columns = (writes.c.key, units.c.outcome, units.c.id, units.c.run_id, writes.c.operation, writes.c.checksum)
            recorded = select(*columns).select_from(units.join(writes, writes.c.unit_id == units.c.id))
            recorded = recorded.where(units.c.outcome.in_((COMMITTED, PREPARED, FAILED, CONFLICT)))
            self._last_write_selects = (
                DriverQuery(  # one row per restored key, all strings: read from the driver's cursor
                    recorded.where(units.c.workflow_id == bindparam("workflow_id", None))
                    .order_by(units.c.started_at.desc(), units.c.id.desc())
                    .limit(bindparam("budget", 0))
                ),
                recorded.where(writes.c.key.in_(bindparam("keys", expanding=True)))
                .order_by(units.c.started_at, units.c.id),
            )  # fmt: skip
        return self._last_write_selects

    def unit(self, unit_id: str) -> JournalUnit | None:
        """One entry with its writes, or None."""
        self.flush()
        units, writes = self._schema.unit_table, self._schema.write_table
        with self._reading() as connection:
            row = connection.execute(units.select().where(units.c.id == unit_id)).one_or_none()
            if row is None:
                return None
            write_rows = connection.execute(
                writes.select().where(writes.c.unit_id == unit_id).order_by(writes.c.key)
            ).all()
        return _unit_from_row(row, tuple(_write_from_row(w) for w in write_rows))

    # -- audit -----------------------------------------------------------------------------------

    def verify(
        self,
        storage: SupportsReadCheckpoint,
        *,
        prefix: str = "",
        encode: Encoder | None = None,
        run_id: str | None = None,
    ) -> list[VerifyFinding]:
        """Compare every key the journal wrote (and every key the storage holds) with the storage.

        Reads each key once through `storage.read_checkpoint`; keys the journal never mentions
        come from `storage.list_keys(prefix)` when the storage has it. `run_id`: only the keys
        that run's units wrote (each compared with its newest committed entry, whatever its run;
        the storage's other keys are not listed). Findings come sorted by key.
        """
        encode = encode or self.encode
        self.flush()
        if encode is None:
            raise ValueError("verify needs an encoder for stored values (Journal(encode=...))")
        keys = None if run_id is None else self._keys_of_run(run_id)
        history = self._history(prefix, keys=keys)
        findings = [self._classify(key, history[key], storage, encode) for key in sorted(history)]
        if keys is None:
            for key in sorted(set(_storage_keys(storage, prefix)) - set(history)):
                findings.append(VerifyFinding(key, UNBACKED, detail="no journal entry wrote this key"))
        return sorted(findings, key=lambda finding: finding.key)

    def _keys_of_run(self, run_id: str) -> list[str]:
        units, writes = self._schema.unit_table, self._schema.write_table
        query = (
            writes.join(units, writes.c.unit_id == units.c.id)
            .select()
            .with_only_columns(writes.c.key)
            .where(units.c.run_id == run_id)
            .distinct()
        )
        with self._reading() as connection:
            return [str(key) for key in connection.execute(query).scalars()]

    def _history(self, prefix: str, keys: list[str] | None = None) -> dict[str, _KeyHistory]:
        units, writes = self._schema.unit_table, self._schema.write_table
        query = (
            writes.join(units, writes.c.unit_id == units.c.id)
            .select()
            .with_only_columns(units.c.id, units.c.outcome, units.c.started_at, units.c.run_id, *writes.c)
            .where(units.c.outcome.in_((COMMITTED, PREPARED, FAILED, CONFLICT)))
        )
        if prefix:
            query = query.where(writes.c.key.startswith(prefix, autoescape=True))
        with self._reading() as connection:
            if keys is None:
                rows = list(connection.execute(query).all())
            else:
                rows = []
                for start in range(0, len(keys), _KEYS_PER_QUERY):
                    chunk = keys[start : start + _KEYS_PER_QUERY]
                    rows.extend(connection.execute(query.where(writes.c.key.in_(chunk))).all())
        history: dict[str, _KeyHistory] = {}
        for row in rows:
            entry = (_utc(row.started_at), str(row.id), _write_from_row(row))
            keyed = history.setdefault(row.key, _KeyHistory())
            keyed.runs[str(row.id)] = row.run_id
            if row.outcome == COMMITTED:
                keyed.committed.append(entry)
            elif row.outcome == PREPARED and row.operation == PUT_OPERATION and row.checksum is None:
                keyed.reserved.append(entry)
            else:
                keyed.unconfirmed.append(entry)
        return history

    def _classify(self, key: str, history: _KeyHistory, storage: SupportsReadCheckpoint, encode: Encoder) -> VerifyFinding:
        try:
            checkpoint = storage.read_checkpoint(key=key)
            stored = None if checkpoint is None else hashlib.sha256(encode(checkpoint.context)).hexdigest()
        except Exception as error:
            return VerifyFinding(key, CHANGED, detail=f"cannot be read: {type(error).__name__}: {error}")
        latest = max(history.committed, key=lambda entry: entry[:2], default=None)
        newer = [e for e in history.unconfirmed if latest is None or e[:2] > latest[:2]]
        if latest is not None:
            started, unit_id, write = latest
            expected = None if write.operation == DELETE_OPERATION else write.checksum
            if stored == expected:
                return VerifyFinding(key, BACKED, unit_id)
        for _, pending_id, pending in sorted(newer, key=lambda entry: entry[:2], reverse=True):
            if stored == (None if pending.operation == DELETE_OPERATION else pending.checksum):
                return VerifyFinding(key, UNCONFIRMED, pending_id, CRASH_WINDOW)
        reserved = [e for e in history.reserved if latest is None or e[:2] > latest[:2]]
        if reserved and stored is not None:
            # An intent recorded ahead whose outcome never came: the value it put is not known.
            return VerifyFinding(
                key,
                UNCONFIRMED,
                max(reserved, key=lambda entry: entry[:2])[1],
                f"{CRASH_WINDOW}; reserved ahead, so its value is not compared",
            )
        if latest is None:
            if stored is None:
                return VerifyFinding(key, BACKED, detail="never committed, and absent")
            return VerifyFinding(key, UNBACKED, detail="no committed entry wrote this value")
        unit_id = latest[1]
        if stored is None:
            return VerifyFinding(key, MISSING, unit_id, "committed, but absent from the storage")
        if latest[2].operation == DELETE_OPERATION:
            return VerifyFinding(key, UNBACKED, unit_id, "deleted by the newest committed entry, but present")
        return VerifyFinding(key, CHANGED, unit_id, "the stored value differs from the committed one")



def _require_existing_sqlite(url: str) -> None:
    """A read-only journal on a SQLite file that does not exist is an error (opening would create it)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return  # make_engine says what is wrong with it
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:"):
        import os

        if not os.path.isfile(database):
            raise JournalError(f"no journal at {database!r} (the file does not exist)")


def _puts_only(unit: UnitFacts, key: str) -> bool:
    """True if the unit's changes are exactly one put to `key`."""
    changes = unit.changes
    return len(changes) == 1 and isinstance(changes.get(key), Put)


def _unit_id(unit: UnitFacts) -> str:
    return str(unit.id)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime | None) -> datetime | None:
    """UTC-aware (SQLite hands back naive datetimes; the journal only ever stores UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _release_connections(writer: JournalWriter, engine: Engine) -> None:
    writer.close()
    engine.dispose()


def _nothing() -> None:
    """The callback of an outcome already written (with the storage's own transaction)."""


@dataclass
class _Entry:
    """What one transaction writes for one unit: its row, its write rows, the fingerprint it sets."""

    unit_row: dict[str, Any] | None
    writes: list[dict[str, Any]]
    fingerprint: tuple[str, str] | None
    queued: bool = False  # the outcome of a prepared unit, or one waiting for its storage
    released: str | None = None  # a reserved unit whose reserved write row goes first
    dropped: list[str] = field(default_factory=list)  # reserved units never used: both rows go
    run_row: dict[str, Any] | None = None  # a run that begins or ends

    def add_to(self, batch: Batch) -> None:
        if self.run_row is not None:
            batch.runs[self.run_row["id"]] = self.run_row
        if self.released is not None:
            batch.released.append({"unit_id": self.released})
        for unit_id in self.dropped:
            batch.released.append({"unit_id": unit_id})
            batch.dropped.append({"id": unit_id})
        if self.unit_row is not None:
            batch.units.append(self.unit_row)
        batch.writes.extend(self.writes)
        if self.fingerprint is not None:
            workflow_id, fingerprint = self.fingerprint
            batch.fingerprints[workflow_id] = {"workflow_id": workflow_id, "fingerprint": fingerprint, "updated_at": _now()}


def _starts_or_ends(column: Any, part: str) -> Any:
    from sqlalchemy import or_

    return or_(column.startswith(part, autoescape=True), column.endswith(part, autoescape=True))


def _written(operation: str, checksum: str | None) -> str | None:
    """What an unconfirmed write wrote, for `LastWrite.pending`: its checksum (None: reserved ahead)."""
    return None if checksum is None and operation == PUT_OPERATION else checksum


def _last_write(key: str, unit_id: Any, run_id: str | None, operation: str, checksum: str | None,
                pending: Iterable[str | None]) -> LastWrite:  # fmt: skip
    deleted = operation == DELETE_OPERATION
    return LastWrite(key, None if deleted else checksum, str(unit_id), run_id, pending=tuple(pending), deleted=deleted)


def _utc(moment: datetime) -> datetime:
    """`_aware` of a NOT NULL column."""
    aware = _aware(moment)
    assert aware is not None
    return aware


def _unit_from_row(row: Any, writes: tuple[JournalWrite, ...] = ()) -> JournalUnit:
    return JournalUnit(
        id=row.id,
        workflow_id=row.workflow_id,
        task_id=row.task_id,
        attempt=row.attempt,
        outcome=row.outcome,
        started_at=_aware(row.started_at),  # type: ignore[arg-type]
        finished_at=_aware(row.finished_at),
        error=row.error,
        writes=writes,
        run_id=row.run_id,
    )


def _run_row(run: RunFacts) -> dict[str, Any]:
    counts = run.counts or {}
    ended = run.ended_at
    storage = run.storage
    return {
        "id": run.run_id,
        "workflow_id": run.workflow_id,
        "mode": run.mode,
        "status": run.status if ended is not None else None,
        "started_at": datetime.fromtimestamp(run.started_at, timezone.utc),
        "finished_at": None if ended is None else datetime.fromtimestamp(ended, timezone.utc),
        "tasks_completed": counts.get(TASK_COMPLETED),
        "tasks_restored": counts.get(TASK_RESTORED),
        "tasks_failed": counts.get(TASK_FAILED),
        "tasks_adopted": counts.get(TASK_ADOPTED),
        "host": run.host,
        "pid": run.pid,
        "storage": None if storage is None else json.dumps(dict(storage), sort_keys=True),
    }


def _claim_row(event: ClaimEvent) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "workflow_id": event.workflow_id,
        "task_id": event.task_id,
        "key": event.key,
        "event": event.event,
        "owner": event.owner,
        "epoch": event.epoch,
        "at": datetime.fromtimestamp(event.at, timezone.utc),
        "previous_owner": event.previous_owner,
        "late": event.late,
    }


def _claim_from_row(row: Any) -> JournalClaim:
    return JournalClaim(
        id=row.id,
        run_id=row.run_id,
        workflow_id=row.workflow_id,
        task_id=row.task_id,
        key=row.key,
        event=row.event,
        owner=row.owner,
        epoch=row.epoch,
        at=_utc(row.at),
        previous_owner=row.previous_owner,
        late=row.late,
    )


def _run_from_row(row: Any) -> JournalRun:
    storage = None
    if row.storage:
        try:
            loaded = json.loads(row.storage)
        except ValueError:
            loaded = None
        storage = loaded if isinstance(loaded, dict) else None
    return JournalRun(
        id=row.id,
        workflow_id=row.workflow_id,
        mode=row.mode,
        status=row.status if row.finished_at is not None and row.status else RUN_UNFINISHED,
        started_at=_utc(row.started_at),
        finished_at=_aware(row.finished_at),
        completed=row.tasks_completed,
        restored=row.tasks_restored,
        failed=row.tasks_failed,
        adopted=row.tasks_adopted,
        host=row.host,
        pid=row.pid,
        storage=storage,
    )


def _write_from_row(row: Any) -> JournalWrite:
    return JournalWrite(row.key, row.operation, row.fingerprint, row.checksum, row.size)


def _same_database(first: Engine, second: Engine) -> bool:
    if first is second:
        return True
    if first.url.get_backend_name() == "sqlite" and first.url.database in (None, "", ":memory:"):
        return False  # each engine's in-memory database is its own
    return first.url.render_as_string(hide_password=False) == second.url.render_as_string(hide_password=False)


def _storage_keys(storage: object, prefix: str) -> Iterable[str]:
    if not isinstance(storage, SupportsListKeys):
        return ()
    try:
        return list(storage.list_keys(prefix))
    except NotImplementedError:
        return ()


@runtime_checkable
class _SQLStorage(Protocol):
    """A storage that keeps its checkpoints in an SQL database (StorageSQL): it may share the journal's."""

    engine: Any
