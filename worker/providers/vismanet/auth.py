"""Visma Connect client credentials for the Visma.net ERP service API.

A token is asked for with the app's client id and secret and the tenant's **company**
tenant id (`tenant_id`); there is no refresh token, so a new token is simply asked for
a minute before the old one expires and once on a 401, single-flight across workers
(worker/auth/tokens.py). The token endpoint refusing the tenant (the app not approved
for it, or the approval withdrawn) needs the customer: `NeedsReauth` with the reason.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx

from worker.auth import app_credentials
from worker.auth.tokens import post_token_form, refresh_single_flight
from worker.providers.base import NeedsReauth
from worker.providers.vismanet.settings import provider_settings

log = logging.getLogger("ledgerpush.auth.vismanet")
SCOPES = (
    "vismanet_erp_service_api:read",
    "vismanet_erp_service_api:create",
    "vismanet_erp_service_api:update",
    "vismanet_erp_service_api:delete",
)
#: The credential a new token is asked with (see refresh_single_flight's grant_key).
TENANT_KEY = "tenant_id"
#: A token this close to its expiry is replaced before it is used.
EXPIRY_MARGIN = 60.0


def request_token(company_tenant_id: str) -> dict[str, Any]:
    """A new access token for the company; raises NeedsReauth when Visma Connect refuses
    the tenant, AppCredentialsRejected when it refuses the application itself."""
    vn = provider_settings()
    form = {
        "grant_type": "client_credentials",
        "client_id": vn.client_id,
        "client_secret": vn.client_secret.get_secret_value(),
        "scope": " ".join(SCOPES),
        "tenant_id": company_tenant_id,
    }
    response, body = post_token_form(f"{vn.identity_url.rstrip('/')}/connect/token", form)
    error = str(body.get("error") or "")
    if error == "invalid_client":
        # The application's own id or secret: the same for every tenant.
        raise app_credentials.rejected("vismanet", error)
    if response.status_code >= 400 or not body.get("access_token"):
        reason = " ".join(str(body.get(k) or "") for k in ("error", "error_description")).strip()
        raise NeedsReauth(
            f"Visma Connect refused a token for company tenant {company_tenant_id} "
            f"({reason or response.status_code}): the company's administrator must approve "
            "the app in Visma App Store, or the tenant id is wrong",
            "tenant_not_approved",
        )
    app_credentials.accepted("vismanet")
    return {
        "access_token": body["access_token"],
        "expires_at": time.time() + float(body.get("expires_in") or 3600),
        "scope": body.get("scope", ""),
    }


def fresh(credentials: dict[str, Any], margin: float = EXPIRY_MARGIN) -> bool:
    return bool(credentials.get("access_token")) and (
        float(credentials.get("expires_at") or 0) > time.time() + margin
    )


class VismaNetAuth(httpx.Auth):
    """Bearer token of the tenant's company; a new one before expiry, and once on a 401
    (the request is then sent again once). A 401 on a token this flow just got is
    returned to the caller: the tenant id is wrong, not the token."""

    def __init__(self, tenant_id: str, credentials: dict[str, Any]) -> None:
        self.tenant_id = tenant_id
        self.credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self.credentials.get(TENANT_KEY):
            raise NeedsReauth(
                "no Visma.net company tenant id stored for this tenant; add it with "
                "`ledgerpush tenants add ID --provider vismanet --tenant-id <company tenant id>`",
                "no_tenant_id",
            )
        renewed = False
        if not fresh(self.credentials):
            renewed = self._renew(lambda current: not fresh(current))
        request.headers["Authorization"] = f"Bearer {self.credentials['access_token']}"
        response = yield request
        # A refused token that another worker got (and that may have been revoked since)
        # is replaced once more; only a token this flow asked for itself being refused
        # means the tenant id is wrong.
        for _ in range(2):
            if response.status_code != 401 or renewed:
                return
            renewed = self._renew(functools.partial(_holds, self.credentials.get("access_token")))
            request.headers["Authorization"] = f"Bearer {self.credentials['access_token']}"
            response = yield request

    def _renew(self, still_needed: Callable[[dict[str, Any]], bool]) -> bool:
        """Newer credentials (single-flight); whether this flow asked for the token."""
        asked = False

        def ask(company_tenant_id: str) -> dict[str, Any]:
            nonlocal asked
            asked = True
            return request_token(company_tenant_id)

        self.credentials = refresh_single_flight(
            self.tenant_id, self.credentials, ask, still_needed=still_needed, grant_key=TENANT_KEY
        )
        return asked


def _holds(token: str | None, current: dict[str, Any]) -> bool:
    """The stored credentials still hold `token` (refused): nobody has replaced it."""
    return current.get("access_token") == token
