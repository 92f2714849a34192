"""Connecting a Visma.net tenant. Service apps use client credentials: there is no
consent page to send the customer to. The company's administrator approves the app in
Visma App Store, and the operator gives ledgerpush the company tenant id
(`ledgerpush tenants add ID --provider vismanet --tenant-id ...`); `connect` checks it
(a token, then the organisation it opens) and resumes the tenant's parked jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from worker.auth.connect import CallbackRefused, Connected, complete
from worker.providers.base import NeedsReauth, Transient
from worker.providers.vismanet import auth
from worker.providers.vismanet.company import company_of
from worker.providers.vismanet.errors import WRONG_TENANT
from worker.providers.vismanet.settings import provider_settings
from worker.settings import get_settings


class NoConsentLink(ValueError):
    """Visma.net service apps have no consent page."""


def url(state: str) -> str:
    raise NoConsentLink(
        "Visma.net ERP connects with client credentials, not a consent link: the company's "
        "administrator approves the app in Visma App Store, then the tenant is given its "
        "company tenant id (`ledgerpush tenants add ID --provider vismanet --tenant-id ...`)"
    )


def finish_from_callback(query: Mapping[str, str]) -> Connected:
    raise CallbackRefused("Visma.net ERP has no consent callback; nothing was changed.")


def connect(tenant_id: str, company_tenant_id: str, actor: str) -> Connected:
    """Ask for a token for the company tenant id, read which company it opens, bind the
    tenant to it, store the credentials and resume its parked jobs."""
    credentials: dict[str, Any] = {**auth.request_token(company_tenant_id),
                                   auth.TENANT_KEY: company_tenant_id}  # fmt: skip
    organization = _organization(credentials["access_token"])
    return complete(tenant_id, company_of(company_tenant_id, organization), credentials, actor)


def _organization(token: str) -> dict[str, Any]:
    settings = get_settings()
    vn = provider_settings()
    try:
        response = httpx.get(
            f"{vn.api_url.rstrip('/')}/v1/organization",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=settings.http_timeout,
        )
    except httpx.HTTPError as exc:
        raise Transient(f"Visma.net unreachable: {type(exc).__name__}", "company_read_failed"
                        ) from None  # fmt: skip
    if response.status_code == 401:
        raise NeedsReauth(WRONG_TENANT, "wrong_tenant_id")
    if response.status_code != 200:
        raise Transient(f"Visma.net answered {response.status_code} for the organisation",
                        "company_read_failed")  # fmt: skip
    body = response.json()
    first = body[0] if isinstance(body, list) and body else body
    return first if isinstance(first, dict) else {}
