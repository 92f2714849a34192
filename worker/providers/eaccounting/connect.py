"""Connecting an eAccounting tenant: Visma Connect's consent page, the code exchange,
the granted scopes, and which company the customer picked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.auth.connect import CallbackRefused, Connected, MissingScopes, complete, read_company
from worker.auth.state import check_state, spend_state
from worker.providers.eaccounting import auth
from worker.providers.eaccounting.company import company_of
from worker.providers.eaccounting.settings import provider_settings
from worker.tenancy import connections


def url(state: str) -> str:
    return auth.authorize_url(state, auth.scopes_for())


def missing_scopes(granted: str) -> list[str]:
    have = set(granted.split())
    return [scope for scope in auth.scopes_for() if scope not in have]


def finish_from_callback(query: Mapping[str, str]) -> Connected:
    """The customer's browser back from Visma: `code` and `state`, or an `error`."""
    if query.get("error"):
        answer = f"{query['error']} {query.get('error_description', '')}".strip()
        raise CallbackRefused(f"Visma answered: {answer}")
    return finish(query.get("code", ""), query.get("state", ""))


def finish(code: str, state: str) -> Connected:
    """Exchange the code, check the company, store the tokens, resume parked jobs.

    The state is spent only once the code was exchanged: a failing token endpoint
    leaves the customer's link usable, while a replayed callback is still refused
    before the token endpoint is asked. A consent without every required scope leaves
    the tenant `needs_reauth`, naming the scopes, and raises `MissingScopes`; a company
    the tenant may not book into raises `CompanyRefused` (see worker/tenancy/binding.py). In
    both cases the tokens are not stored."""
    claim = check_state(state, "eaccounting")
    credentials: dict[str, Any] = auth.exchange_code(code)
    spend_state(claim)
    # Token responses may leave out `scope` when it is what was asked for (RFC 6749 5.1).
    missing = missing_scopes(credentials["scope"]) if credentials.get("scope") else []
    if missing:
        error = MissingScopes(claim.tenant_id, missing)
        connections.tenant_needs_reauth(claim.tenant_id, str(error))
        raise error
    ea = provider_settings()
    company = company_of(
        read_company(
            f"{ea.api_url.rstrip('/')}/companysettings",
            {"Authorization": f"Bearer {credentials['access_token']}"},
        )
    )
    return complete(claim.tenant_id, company, credentials, "oauth")
