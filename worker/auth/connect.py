"""Connecting a tenant: the link a customer opens, and what happens when they come back.

The provider's connect flow (`ProviderSpec.connect`) builds its consent link and turns
its callback into credentials and the company they are for; `complete` then binds the
company, stores the credentials and resumes the tenant's parked jobs."""

from __future__ import annotations

from typing import Any, NamedTuple

import httpx
from pydantic import SecretStr

from worker.auth.state import LINK_TTL, make_state
from worker.providers.base import NeedsReauth, Transient
from worker.providers.registry import spec_for
from worker.settings import get_settings
from worker.tenancy import binding, connections, tenants
from worker.tenancy.binding import Company, CompanyRefused


def connect_url(tenant_id: str, ttl: int = LINK_TTL) -> str:
    """The provider's consent page for this tenant, with a signed state."""
    tenant = tenants.get_tenant(tenant_id)
    state = make_state(tenant.id, tenant.provider, ttl)
    url: str = spec_for(tenant.provider).connect.url(state)
    return url


def missing_app_setting(provider: str) -> str | None:
    """The first unset setting the provider's connect link needs, as its variable name."""
    spec = spec_for(provider)
    settings = spec.settings
    for name in spec.app_settings:
        value = getattr(settings, name)
        if not (value.get_secret_value() if isinstance(value, SecretStr) else value):
            prefix = settings.model_config.get("env_prefix", "") if settings else ""
            return f"{prefix}{name.upper()}"
    return None


class CallbackRefused(Exception):
    """The provider sent the customer back without what the connection needs (an error,
    no code or grant); the message is for the customer."""


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


class Connected(NamedTuple):
    tenant_id: str
    resumed: int
    company: Company


def complete(
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


def read_company(url: str, headers: dict[str, str]) -> dict[str, Any]:
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
