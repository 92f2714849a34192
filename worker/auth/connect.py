"""Connecting a tenant: the link a customer opens, and what happens when they come back."""

from __future__ import annotations

from typing import Any, NamedTuple

import httpx

from worker import binding, connections, tenants
from worker.auth import eaccounting, economic
from worker.auth.state import LINK_TTL, check_state, consume_state, make_state, spend_state
from worker.binding import Company, CompanyRefused
from worker.providers.base import NeedsReauth, Transient
from worker.settings import get_settings


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


class Connected(NamedTuple):
    tenant_id: str
    resumed: int
    company: Company


def finish_eaccounting(code: str, state: str) -> Connected:
    """Exchange the code, check the company, store the tokens, resume parked jobs.

    The state is spent only once the code was exchanged: a failing token endpoint
    leaves the customer's link usable, while a replayed callback is still refused
    before the token endpoint is asked. A consent without every required scope leaves
    the tenant `needs_reauth`, naming the scopes, and raises `MissingScopes`; a company
    the tenant may not book into raises `CompanyRefused` (see worker/binding.py). In
    both cases the tokens are not stored."""
    claim = check_state(state, "eaccounting")
    credentials: dict[str, Any] = eaccounting.exchange_code(code)
    spend_state(claim)
    # Token responses may leave out `scope` when it is what was asked for (RFC 6749 5.1).
    missing = missing_scopes(credentials["scope"]) if credentials.get("scope") else []
    if missing:
        error = MissingScopes(claim.tenant_id, missing)
        connections.tenant_needs_reauth(claim.tenant_id, str(error))
        raise error
    settings = get_settings()
    company = binding.eaccounting_company(
        _read(
            f"{settings.eaccounting_api_url.rstrip('/')}/companysettings",
            {"Authorization": f"Bearer {credentials['access_token']}"},
        )
    )
    return _connect(claim.tenant_id, company, credentials, "oauth")


def finish_economic(grant_token: str, state: str) -> Connected:
    tenant_id = consume_state(state, "economic")
    settings = get_settings()
    company = binding.economic_company(
        _read(
            f"{settings.economic_api_url.rstrip('/')}/self",
            {
                "X-AppSecretToken": settings.economic_app_secret_token.get_secret_value(),
                "X-AgreementGrantToken": grant_token,
            },
        )
    )
    return _connect(tenant_id, company, {"grant_token": grant_token}, "installation")


def _connect(
    tenant_id: str, company: Company, credentials: dict[str, Any], actor: str
) -> Connected:
    tenant = tenants.get_tenant(tenant_id)
    try:
        binding.accept(tenant, company, actor)
    except CompanyRefused as refused:
        binding.refuse_connect(tenant, refused, actor)
        raise
    resumed = connections.tenant_reconnected(tenant_id, credentials, actor=actor)
    return Connected(tenant_id, resumed, company)


def _read(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Which company the new credentials are for, asked before they are stored."""
    try:
        response = httpx.get(url, headers=headers, timeout=get_settings().http_timeout)
    except httpx.HTTPError as exc:
        raise Transient(
            f"the accounting system could not be reached to read the company "
            f"({type(exc).__name__}); open the link again",
            "company_read_failed",
        ) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise Transient(
            f"the accounting system answered {response.status_code} when asked which company "
            "was picked; open the link again",
            "company_read_failed",
        )
    if response.status_code != 200:
        raise NeedsReauth(
            f"the accounting system refused to say which company was picked "
            f"({response.status_code}); connect again",
            "company_read_refused",
        )
    body: dict[str, Any] = response.json()
    return body
