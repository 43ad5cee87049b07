"""`StorageSQL`: checkpoints in one SQL table (SQLite or PostgreSQL), with versions for optimistic concurrency."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, MetaData, String, Table, Text

__all__ = ["DEFAULT_TABLE", "checkpoint_table", "metadata"]

DEFAULT_TABLE = "dotflow_checkpoint"


def checkpoint_table(name: str, meta: MetaData) -> Table:
    """The checkpoint table's definition under `name` (the migrations create `DEFAULT_TABLE`)."""
    return Table(
        name,
        meta,
        Column("key", String(1024), primary_key=True),
        Column("document", Text, nullable=False),  # the checkpoint document of checkpoint_format
        Column("expires_at", Float, nullable=True),  # unix time, copied from the document
        Column("version", String(32), nullable=False),  # changes on every write
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


metadata = MetaData()
checkpoint_table(DEFAULT_TABLE, metadata)
