"""The journal (units, their writes, each workflow's input fingerprint) and the SQL storage's table.

Revision ID: 0001
Revises:
Created: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dotflow_journal_unit",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workflow_id", sa.String(255), nullable=True),
        sa.Column("task_id", sa.String(255), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_dotflow_journal_unit_workflow", "dotflow_journal_unit", ["workflow_id", "started_at"])
    op.create_table(
        "dotflow_journal_write",
        sa.Column(
            "unit_id",
            sa.String(32),
            sa.ForeignKey("dotflow_journal_unit.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("operation", sa.String(8), nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=True),
        sa.Column("checksum", sa.String(64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "dotflow_workflow_input",
        sa.Column("workflow_id", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dotflow_checkpoint",
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dotflow_checkpoint")
    op.drop_table("dotflow_workflow_input")
    op.drop_table("dotflow_journal_write")
    op.drop_index("ix_dotflow_journal_unit_workflow", table_name="dotflow_journal_unit")
    op.drop_table("dotflow_journal_unit")
