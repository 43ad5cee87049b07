"""The SQL storage's table, as a SQLAlchemy Core `Table` (Alembic owns its DDL, like the journal's).

dotflow_checkpoint      one row per key: an opaque text document, its expiry, a version token

The table lives in `uow`, beside the journal's tables, so the migrations (`uow/migrations` in an
installed copy, `migrations/` in a checkout) describe every table from `uow` alone and never import
`dotflow`. To `uow` the document is opaque text; `dotflow.storage.sql` writes and reads it.
Importing this module needs SQLAlchemy (the `sql` extra).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text

__all__ = ["DEFAULT_TABLE", "MAX_KEY", "checkpoint_table", "metadata"]

DEFAULT_TABLE = "dotflow_checkpoint"
MAX_KEY = 1024  # characters of a key


def checkpoint_table(name: str, meta: MetaData) -> Table:
    """The checkpoint table's definition under `name` (the migrations create `DEFAULT_TABLE`)."""
    return Table(
        name,
        meta,
        Column("key", String(MAX_KEY), primary_key=True),
        Column("document", Text, nullable=False),  # an opaque text document (dotflow's checkpoint format)
        Column("expires_at", Float, nullable=True),  # unix time, copied from the document
        Column("version", String(32), nullable=False),  # changes on every write
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


metadata = MetaData()
checkpoint_table(DEFAULT_TABLE, metadata)
