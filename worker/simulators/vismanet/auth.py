"""Visma Connect client credentials for the ERP service API: registered apps and their
secrets, tenant ids (company tenants, and customer/contract tenants whose tokens are
issued but useless), per-tenant app approval, and the access tokens handed out."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.simulators.common import OAuthError

SCOPES = frozenset(
    {
        "vismanet_erp_service_api:read",
        "vismanet_erp_service_api:create",
        "vismanet_erp_service_api:update",
        "vismanet_erp_service_api:delete",
    }
)


@dataclass(frozen=True)
class Grant:
    client_id: str
    tenant_id: str
    #: None for a customer (contract) tenant: the token is valid, the API refuses it.
    company_id: str | None
    scopes: tuple[str, ...]
    expires_at: float


@dataclass
class Identity:
    """Apps, tenants, approvals and tokens of the simulated Visma Connect."""

    clock: Callable[[], float]
    token_lifetime_seconds: float = 3600
    apps: dict[str, str] = field(default_factory=dict)
    #: tenant id -> company id (None: a customer/contract tenant)
    tenants: dict[str, str | None] = field(default_factory=dict)
    withdrawn: set[tuple[str, str]] = field(default_factory=set)
    tokens: dict[str, Grant] = field(default_factory=dict)
    calls: int = 0

    def issue(self, form: dict[str, str]) -> dict[str, Any]:
        self.calls += 1
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", "Only client_credentials is supported.")
        client_id = form.get("client_id", "")
        if client_id not in self.apps or not secrets.compare_digest(
            self.apps[client_id], form.get("client_secret", "")
        ):
            raise OAuthError("invalid_client", "Client authentication failed.")
        scopes = tuple(dict.fromkeys(form.get("scope", "").split()))
        unknown = [s for s in scopes if s not in SCOPES]
        if not scopes or unknown:
            raise OAuthError("invalid_scope", f"Invalid scope: {' '.join(unknown) or '(none)'}.")
        tenant_id = form.get("tenant_id", "")
        if not tenant_id:
            raise OAuthError("invalid_request", "tenant_id is required for this client.")
        if tenant_id not in self.tenants or (client_id, tenant_id) in self.withdrawn:
            raise OAuthError(
                "unauthorized_client", "The client is not approved for the requested tenant."
            )
        token = secrets.token_urlsafe(32)
        lifetime = self.token_lifetime_seconds
        self.tokens[token] = Grant(
            client_id, tenant_id, self.tenants[tenant_id], scopes, self.clock() + lifetime
        )
        return {
            "access_token": token,
            "expires_in": int(lifetime),
            "token_type": "Bearer",
            "scope": " ".join(scopes),
        }

    def grant_for(self, token: str) -> Grant | None:
        grant = self.tokens.get(token)
        if grant is None or grant.expires_at <= self.clock():
            return None
        return grant

    def expire(self, tenant_id: str | None = None) -> None:
        for token, grant in list(self.tokens.items()):
            if tenant_id is None or grant.tenant_id == tenant_id:
                del self.tokens[token]

    def set_approval(self, client_id: str, tenant_id: str, approved: bool) -> None:
        if approved:
            self.withdrawn.discard((client_id, tenant_id))
        else:
            self.withdrawn.add((client_id, tenant_id))
            self.expire_for(client_id, tenant_id)

    def expire_for(self, client_id: str, tenant_id: str) -> None:
        for token, grant in list(self.tokens.items()):
            if grant.client_id == client_id and grant.tenant_id == tenant_id:
                del self.tokens[token]
