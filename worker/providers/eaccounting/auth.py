"""Visma eAccounting OAuth 2.0 (Visma Connect): authorize URL, code exchange, refresh,
and an `httpx.Auth` that refreshes once on a 401 and replays the request."""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import urlencode

import httpx

from worker.auth import app_credentials
from worker.auth.tokens import InvalidGrant, post_token_form, refresh_single_flight
from worker.providers.base import NeedsReauth
from worker.providers.eaccounting.settings import provider_settings

log = logging.getLogger("ledgerpush.auth.eaccounting")
BASE_SCOPES = ("ea:api", "offline_access", "ea:sales", "ea:accounting_readonly")
PAYMENT_SCOPES = ("ea:purchase_readonly",)
ACR_VALUES = "service:44643EB1-3F76-4C1C-A672-402AE8085934"


def scopes_for(needs_payments: bool = True) -> list[str]:
    return [*BASE_SCOPES, *(PAYMENT_SCOPES if needs_payments else ())]


def authorize_url(state: str, scopes: list[str] | None = None) -> str:
    ea = provider_settings()
    query = {
        "client_id": ea.client_id,
        "redirect_uri": ea.redirect_uri,
        "response_type": "code",
        "scope": " ".join(scopes or scopes_for()),
        "state": state,
        "prompt": "select_account",
        "acr_values": ACR_VALUES,
    }
    return f"{ea.identity_url}/connect/authorize?{urlencode(query)}"


def _token_request(form: dict[str, str]) -> dict[str, Any]:
    ea = provider_settings()
    response, body = post_token_form(
        f"{ea.token_url or ea.identity_url}/connect/token",
        form,
        auth=(ea.client_id, ea.client_secret.get_secret_value()),
    )
    error = str(body.get("error") or "")
    if response.status_code == 400 and error == "invalid_grant":
        raise InvalidGrant(str(body.get("error_description") or "invalid_grant"))
    if error in app_credentials.CLIENT_ERRORS:
        raise app_credentials.rejected("eaccounting", error)
    if response.status_code >= 400:
        raise NeedsReauth(
            f"token endpoint refused the request: {body.get('error', response.status_code)} "
            "(check LEDGERPUSH_EACCOUNTING_CLIENT_ID/SECRET)",
            "token_request_refused",
        )
    app_credentials.accepted("eaccounting")
    return _credentials(body)


def _credentials(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token"),
        "expires_at": time.time() + float(body.get("expires_in", 3600)),
        "scope": body.get("scope", ""),
    }


def exchange_code(code: str) -> dict[str, Any]:
    return _token_request(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": provider_settings().redirect_uri,
        }
    )


def refresh(refresh_token: str) -> dict[str, Any]:
    return _token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})


class EAccountingAuth(httpx.Auth):
    """Bearer token from the ledger; on a 401 refresh once (single-flight) and replay once.
    A second 401 with a fresh token is returned to the caller: a real authorization
    problem, not a reason to loop."""

    def __init__(self, tenant_id: str, credentials: dict[str, Any]) -> None:
        self.tenant_id = tenant_id
        self.credentials = credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        refreshed = False
        if float(self.credentials.get("expires_at") or 0) < time.time():
            # Known to be expired: refresh first instead of spending a call on a 401.
            self.credentials = refresh_single_flight(self.tenant_id, self.credentials, refresh)
            refreshed = True
        request.headers["Authorization"] = f"Bearer {self.credentials.get('access_token', '')}"
        response = yield request
        if response.status_code != 401 or refreshed:
            # A 401 on a token this very flow just got is not cured by another refresh.
            return
        self.credentials = refresh_single_flight(self.tenant_id, self.credentials, refresh)
        request.headers["Authorization"] = f"Bearer {self.credentials['access_token']}"
        yield request
