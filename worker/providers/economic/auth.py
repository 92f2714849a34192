"""Visma e-conomic: app secret token + agreement grant token on every request (no OAuth,
no expiry). The grant token arrives at our callback after the customer accepts the
installation URL."""

from __future__ import annotations

from collections.abc import Generator
from urllib.parse import urlencode

import httpx

from worker.providers.economic.settings import provider_settings


def installation_url(state: str) -> str:
    ec = provider_settings()
    redirect = f"{ec.redirect_uri}?{urlencode({'state': state})}"
    query = {"appPublicToken": ec.app_public_token, "redirectUrl": redirect}
    return f"{ec.install_url}?{urlencode(query)}"


class EconomicAuth(httpx.Auth):
    def __init__(self, grant_token: str) -> None:
        self.grant_token = grant_token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-AppSecretToken"] = (
            provider_settings().app_secret_token.get_secret_value()
        )
        request.headers["X-AgreementGrantToken"] = self.grant_token
        yield request
