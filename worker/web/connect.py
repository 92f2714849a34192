"""OAuth connect routes. `router` starts a connection (behind sign-in and the
`tenants:admin` scope, given where the app includes it);
`callback_router` receives the customer's browser back from Visma (public)."""

from __future__ import annotations

import html
from collections.abc import Callable

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.auth.app_credentials import AppCredentialsRejected
from worker.auth.connect import (
    Connected,
    MissingScopes,
    connect_url,
    finish_eaccounting,
    finish_economic,
)
from worker.auth.eaccounting import InvalidGrant
from worker.auth.state import StateRefused
from worker.binding import CompanyRefused
from worker.providers.base import ProviderError
from worker.settings import get_settings
from worker.tenants import UnknownTenant, get_tenant
from worker.web.access import public

router = APIRouter(tags=["connect"])
callback_router = APIRouter(tags=["connect"])
START_TTL = 15 * 60


def _page(title: str, text: str, status: int = 200, page_id: str = "result") -> HTMLResponse:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>ledgerpush</title></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:4em auto'><h1>{title}</h1>"
        f"<p id='{page_id}'>{html.escape(text)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status)


@router.get("/connect/{provider}/{tenant_id}", include_in_schema=False)
def start(provider: str, tenant_id: str) -> Response:
    if provider not in ("eaccounting", "economic"):
        raise HTTPException(404, "unknown provider")
    try:
        missing = get_settings().missing_provider_app(get_tenant(tenant_id).provider)
        if missing:
            text = f"{missing} is not set, so no connect link can work; set it and restart."
            return _page("Cannot connect", text, 503)
        return RedirectResponse(connect_url(tenant_id, START_TTL), status_code=302)
    except UnknownTenant as exc:
        raise HTTPException(404, str(exc)) from None


@callback_router.get(
    "/connect/eaccounting/callback", include_in_schema=False, dependencies=public()
)
def eaccounting_callback(
    state: str = "", code: str = "", error: str = "", error_description: str = ""
) -> HTMLResponse:
    if error:
        return _page("Not connected", f"Visma answered: {error} {error_description}".strip(), 400)
    return _finish(lambda: finish_eaccounting(code, state))


@callback_router.get("/connect/economic/callback", include_in_schema=False, dependencies=public())
def economic_callback(state: str = "", token: str = "") -> HTMLResponse:
    if not token:
        return _page("Not connected", "e-conomic did not send a grant token.", 400)
    return _finish(lambda: finish_economic(token, state))


def _finish(complete: Callable[[], Connected]) -> HTMLResponse:
    try:
        done = complete()
    except StateRefused as exc:
        return _page("Link refused", str(exc), 400)
    except MissingScopes as exc:
        return _page("Not connected", str(exc), 400)
    except CompanyRefused as exc:
        return _page("Not connected: another company", exc.customer_text(), 409, "wrong-company")
    except InvalidGrant:
        return _page(
            "Not connected",
            "Visma did not accept the sign-in (the code was already used or has expired); "
            "open the connect link again.",
            400,
        )
    except AppCredentialsRejected:
        return _page(
            "Not connected",
            "The accounting system refused ledgerpush's own application credentials (not "
            "your sign-in). The operator has been alerted; please try the link again later.",
            502,
        )
    except ProviderError as exc:
        return _page("Not connected", exc.message, 502)
    return _page(
        "Connected",
        f"Tenant {done.tenant_id} is connected to {done.company.label()}. "
        f"{done.resumed} waiting jobs were resumed. You can close this window.",
    )
