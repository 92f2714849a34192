"""Connecting an e-conomic tenant: the app's installation page, the agreement grant
token it sends back, and which agreement (company) it is for."""

from __future__ import annotations

from collections.abc import Mapping

from worker.auth.connect import CallbackRefused, Connected, complete, read_company
from worker.auth.state import consume_state
from worker.providers.economic import auth
from worker.providers.economic.company import company_of
from worker.providers.economic.settings import provider_settings


def url(state: str) -> str:
    return auth.installation_url(state)


def finish_from_callback(query: Mapping[str, str]) -> Connected:
    """The customer's browser back from e-conomic with `token` (the grant) and `state`."""
    if not query.get("token"):
        raise CallbackRefused("e-conomic did not send a grant token.")
    return finish(query["token"], query.get("state", ""))


def finish(grant_token: str, state: str) -> Connected:
    tenant_id = consume_state(state, "economic")
    ec = provider_settings()
    company = company_of(
        read_company(
            f"{ec.api_url.rstrip('/')}/self",
            {
                "X-AppSecretToken": ec.app_secret_token.get_secret_value(),
                "X-AgreementGrantToken": grant_token,
            },
        )
    )
    return complete(tenant_id, company, {"grant_token": grant_token}, "installation")
