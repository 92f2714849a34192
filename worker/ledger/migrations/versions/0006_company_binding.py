"""company binding: each tenant is bound to one remote company; tenant audit trail

Revision ID: 0006_company_binding
Revises: 0001

Existing tenants get no binding: they are bound on their next successful call.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_company_binding"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("company_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("company", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("company_bound_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("company_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("company_refused", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "company_sharing_allowed", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.create_index(batch_op.f("ix_tenants_company_id"), ["company_id"], unique=False)
    op.create_table(
        "tenant_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_events")),
    )
    with op.batch_alter_table("tenant_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenant_events_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tenant_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_events_tenant_id"))
    op.drop_table("tenant_events")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenants_company_id"))
        batch_op.drop_column("company_sharing_allowed")
        batch_op.drop_column("company_refused")
        batch_op.drop_column("company_checked_at")
        batch_op.drop_column("company_bound_at")
        batch_op.drop_column("company")
        batch_op.drop_column("company_id")
