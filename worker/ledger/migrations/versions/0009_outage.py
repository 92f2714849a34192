"""jobs.retrying_since: the start of a job's retry horizon

Revision ID: 0009_outage
Revises: 0008_purge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_outage"
down_revision = "0008_purge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retrying_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("retrying_since")
