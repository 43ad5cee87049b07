"""An index on the key of each journal write: a resume asks for the newest write of each key it restores.

Without it that question scans every write ever recorded (a resume on a journal of 10,000 writes cost
twice as much with the check as without); with it, each key is one index lookup. It costs one more
index entry per write a unit records.

Revision ID: 0003
Revises: 0002
Created: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_dotflow_journal_write_key", "dotflow_journal_write", ["key"])


def downgrade() -> None:
    op.drop_index("ix_dotflow_journal_write_key", table_name="dotflow_journal_write")
