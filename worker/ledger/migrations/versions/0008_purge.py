"""purge: jobs.purged_at, and an index on attempts.ended_at for the metrics fold

Revision ID: 0008_purge
Revises: 0007_access_scopes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_purge"
down_revision = "0007_access_scopes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_attempts_ended_at"), "attempts", ["ended_at"])
    op.create_index("ix_jobs_state_finished", "jobs", ["state", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_finished", table_name="jobs")
    op.drop_index(op.f("ix_attempts_ended_at"), table_name="attempts")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("purged_at")
