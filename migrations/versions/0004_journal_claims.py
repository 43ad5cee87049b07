"""Claims in the journal: one row per thing that happened to a claim (a lease on a task or a workflow).

Revision ID: 0004
Revises: 0003
Created: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dotflow_journal_claim",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("workflow_id", sa.String(255), nullable=True),
        sa.Column("task_id", sa.String(255), nullable=True),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous_owner", sa.Text(), nullable=True),
        sa.Column("late", sa.Float(), nullable=True),
    )
    op.create_index("ix_dotflow_journal_claim_workflow", "dotflow_journal_claim", ["workflow_id", "at"])


def downgrade() -> None:
    # A table of its own: dropping it leaves every run, unit and write as it was.
    op.drop_index("ix_dotflow_journal_claim_workflow", table_name="dotflow_journal_claim")
    op.drop_table("dotflow_journal_claim")
