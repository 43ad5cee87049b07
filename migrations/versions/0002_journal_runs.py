"""Runs in the journal: one row per run of a workflow, and each unit's run id.

Revision ID: 0002
Revises: 0001
Created: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dotflow_journal_run",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("workflow_id", sa.String(255), nullable=True),
        sa.Column("mode", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tasks_completed", sa.Integer(), nullable=True),
        sa.Column("tasks_restored", sa.Integer(), nullable=True),
        sa.Column("tasks_failed", sa.Integer(), nullable=True),
        sa.Column("tasks_adopted", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("storage", sa.Text(), nullable=True),
    )
    op.create_index("ix_dotflow_journal_run_workflow", "dotflow_journal_run", ["workflow_id", "started_at"])
    op.add_column("dotflow_journal_unit", sa.Column("run_id", sa.String(32), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35+ drops a column in place. Alembic's batch mode would copy the table and drop the
        # old one, whose ON DELETE CASCADE would take every write row with it.
        op.execute("ALTER TABLE dotflow_journal_unit DROP COLUMN run_id")
    else:
        op.drop_column("dotflow_journal_unit", "run_id")
    op.drop_index("ix_dotflow_journal_run_workflow", table_name="dotflow_journal_run")
    op.drop_table("dotflow_journal_run")
