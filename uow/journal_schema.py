"""The journal's tables, as SQLAlchemy Core `Table`s on one `MetaData` (Alembic owns their DDL).

dotflow_journal_run       one row per run of a workflow (`DotFlow.start()`): recorded when it begins, completed when it ends
dotflow_journal_unit      one row per top-level unit of work (with the id of its run, if any)
dotflow_journal_write     one row per key a unit writes or deletes (what was stored: checksum, size)
dotflow_workflow_input    one row per workflow: its current input fingerprint
dotflow_journal_claim     one row per thing that happened to a claim (a lease): taken, renewed late, expired, ...

Each commit writes few pages: on SQLite both journal tables are WITHOUT ROWID (clustered on their
primary key), and the only indexes are the per-workflow ones and the write key's (which verified resume
needs). A unit's `outcome` is one of `uow.outcomes.JOURNAL_OUTCOMES`: PREPARED from just before its storage writes until the outcome is
final, then a final one (committed, rolled_back, failed or conflict). Importing this module needs
SQLAlchemy (the `sql` extra); `uow` itself does not import it until a journal is used.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "claim_table",
    "metadata",
    "run_table",
    "unit_table",
    "workflow_input_table",
    "write_table",
]

metadata = MetaData()

run_table = Table(
    "dotflow_journal_run",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workflow_id", String(255), nullable=True),
    Column("mode", String(32), nullable=True),
    Column("status", String(16), nullable=True),  # completed or failed; NULL until the run ends (unfinished)
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("tasks_completed", Integer, nullable=True),
    Column("tasks_restored", Integer, nullable=True),
    Column("tasks_failed", Integer, nullable=True),
    Column("tasks_adopted", Integer, nullable=True),
    Column("host", String(255), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("storage", Text, nullable=True),  # JSON: the storage described without credentials
    Index("ix_dotflow_journal_run_workflow", "workflow_id", "started_at"),
)

unit_table = Table(
    "dotflow_journal_unit",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("workflow_id", String(255), nullable=True),
    Column("task_id", String(255), nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=True),
    # no index of its own: a run's units are found through the workflow index (one page write less per unit)
    Column("run_id", String(32), nullable=True),
    Index("ix_dotflow_journal_unit_workflow", "workflow_id", "started_at"),
    sqlite_with_rowid=False,  # the id is the key: one B-tree, not a table plus an index
)

write_table = Table(
    "dotflow_journal_write",
    metadata,
    Column(
        "unit_id",
        String(32),
        ForeignKey("dotflow_journal_unit.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(1024), primary_key=True),
    Column("operation", String(8), nullable=False),  # "put" or "delete"
    Column("fingerprint", String(255), nullable=True),
    Column("checksum", String(64), nullable=True),  # SHA-256 hex of the stored encoding
    Column("size", Integer, nullable=True),  # bytes of that encoding
    # a resume asks for each restored key's newest write: without it, a scan of every write ever made
    Index("ix_dotflow_journal_write_key", "key"),
    sqlite_with_rowid=False,
)

workflow_input_table = Table(
    "dotflow_workflow_input",
    metadata,
    Column("workflow_id", String(255), primary_key=True),
    Column("fingerprint", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

claim_table = Table(
    "dotflow_journal_claim",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the order events were written in
    Column("run_id", String(32), nullable=True),
    Column("workflow_id", String(255), nullable=True),
    Column("task_id", String(255), nullable=True),  # NULL: a claim on the whole workflow
    Column("key", String(1024), nullable=False),  # the checkpoint key the lease guards (the workflow id for a workflow's)
    Column("event", String(16), nullable=False),  # one of uow.outcomes.CLAIM_EVENTS
    Column("owner", Text, nullable=False),  # the lease's owner (for "expired": the previous owner)
    Column("epoch", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("previous_owner", Text, nullable=True),  # a takeover: whose lease had expired
    Column("late", Float, nullable=True),  # seconds: past the expiry (takeover), past the due time (renewed late)
    # one index: a workflow's events in time (a run's are found through it, as its units are)
    Index("ix_dotflow_journal_claim_workflow", "workflow_id", "at"),
)
