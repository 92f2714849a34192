"""access scopes: API key scopes, user roles, the API key that sent a job

Existing keys and users could do everything before, so they keep every scope (keys)
and the admin role (users); new ones get what `apikeys create --scope` and
`users add --role` say.

Revision ID: 0007_access_scopes
Revises: 0006_company_binding
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_access_scopes"
down_revision = "0006_company_binding"
branch_labels = None
depends_on = None

ALL_SCOPES = "jobs:write jobs:read jobs:operate tenants:admin"


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scopes", sa.String(length=200), nullable=False, server_default=ALL_SCOPES)
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=20), nullable=False, server_default="admin")
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by_key", sa.Integer(), nullable=True))
    # The defaults above only carried existing rows over; new rows say what they get.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("scopes", server_default=None)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.alter_column("role", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("created_by_key")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("scopes")
