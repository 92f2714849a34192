"""Connecting a tenant: the link a customer opens, and what happens when they come back."""

from __future__ import annotations

from typing import Any

from worker import connections, tenants
from worker.auth import eaccounting, economic
from worker.auth.state import LINK_TTL, check_state, consume_state, make_state, spend_state


def connect_url(tenant_id: str, ttl: int = LINK_TTL) -> str:
    """The provider's consent page for this tenant, with a signed state."""
    tenant = tenants.get_tenant(tenant_id)
    state = make_state(tenant.id, tenant.provider, ttl)
    if tenant.provider == "eaccounting":
        return eaccounting.authorize_url(state, eaccounting.scopes_for())
    return economic.installation_url(state)


class MissingScopes(Exception):
    """The customer's consent does not grant every scope the connection needs."""

    def __init__(self, tenant_id: str, missing: list[str]) -> None:
        self.tenant_id = tenant_id
        self.missing = missing
        super().__init__(
            f"Visma granted access without the permission{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}, which ledgerpush needs; connect again with a new link "
            "and allow everything that is asked for"
        )


def missing_scopes(granted: str) -> list[str]:
    have = set(granted.split())
    return [scope for scope in eaccounting.scopes_for() if scope not in have]


def finish_eaccounting(code: str, state: str) -> tuple[str, int]:
    """Exchange the code, store the tokens, resume parked jobs; (tenant id, resumed).

    The state is spent only once the code was exchanged: a failing token endpoint
    leaves the customer's link usable, while a replayed callback is still refused
    before the token endpoint is asked. A consent without every required scope leaves
    the tenant `needs_reauth`, naming the scopes, and raises `MissingScopes`."""
    claim = check_state(state, "eaccounting")
    credentials: dict[str, Any] = eaccounting.exchange_code(code)
    spend_state(claim)
    # Token responses may leave out `scope` when it is what was asked for (RFC 6749 5.1).
    missing = missing_scopes(credentials["scope"]) if credentials.get("scope") else []
    if missing:
        error = MissingScopes(claim.tenant_id, missing)
        connections.tenant_needs_reauth(claim.tenant_id, str(error))
        raise error
    return claim.tenant_id, connections.tenant_reconnected(
        claim.tenant_id, credentials, actor="oauth"
    )


def finish_economic(grant_token: str, state: str) -> tuple[str, int]:
    tenant_id = consume_state(state, "economic")
    credentials = {"grant_token": grant_token}
    return tenant_id, connections.tenant_reconnected(tenant_id, credentials, actor="installation")
