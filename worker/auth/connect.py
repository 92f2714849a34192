"""Connecting a tenant: the link a customer opens, and what happens when they come back."""

from __future__ import annotations

from typing import Any

from worker import connections, tenants
from worker.auth import eaccounting, economic
from worker.auth.state import LINK_TTL, consume_state, make_state


def connect_url(tenant_id: str, ttl: int = LINK_TTL) -> str:
    """The provider's consent page for this tenant, with a signed state."""
    tenant = tenants.get_tenant(tenant_id)
    state = make_state(tenant.id, tenant.provider, ttl)
    if tenant.provider == "eaccounting":
        return eaccounting.authorize_url(state, eaccounting.scopes_for())
    return economic.installation_url(state)


def missing_scopes(granted: str) -> list[str]:
    have = set(granted.split())
    return [scope for scope in eaccounting.scopes_for() if scope not in have]


def finish_eaccounting(code: str, state: str) -> tuple[str, int]:
    """Exchange the code, store the tokens, resume parked jobs; (tenant id, resumed)."""
    tenant_id = consume_state(state, "eaccounting")
    credentials: dict[str, Any] = eaccounting.exchange_code(code)
    return tenant_id, connections.tenant_reconnected(tenant_id, credentials, actor="oauth")


def finish_economic(grant_token: str, state: str) -> tuple[str, int]:
    tenant_id = consume_state(state, "economic")
    credentials = {"grant_token": grant_token}
    return tenant_id, connections.tenant_reconnected(tenant_id, credentials, actor="installation")
