"""webhooks scope: the API key scope `webhooks:admin` (managing webhook endpoints)

Keys that held every scope before keep holding every scope; other keys do not gain it.

Revision ID: 0011_webhooks_scope
Revises: 0010_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_webhooks_scope"
down_revision = "0010_events"
branch_labels = None
depends_on = None

EVERY_SCOPE_BEFORE = "jobs:write jobs:read jobs:operate tenants:admin"
EVERY_SCOPE_NOW = EVERY_SCOPE_BEFORE + " webhooks:admin"


def _replace(old: str, new: str) -> None:
    op.get_bind().execute(
        sa.text("UPDATE api_keys SET scopes = :new WHERE scopes = :old"), {"new": new, "old": old}
    )


def upgrade() -> None:
    _replace(EVERY_SCOPE_BEFORE, EVERY_SCOPE_NOW)


def downgrade() -> None:
    _replace(EVERY_SCOPE_NOW, EVERY_SCOPE_BEFORE)
