"""OAuth connect routes. `router` starts a connection (behind sign-in and the
`tenants:admin` scope, given where the app includes it);
`callback_router` receives the customer's browser back from Visma (public)."""

from __future__ import annotations

import html
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.auth.app_credentials import AppCredentialsRejected
from worker.auth.connect import (
    CallbackRefused,
    Connected,
    MissingScopes,
    connect_url,
    missing_app_setting,
)
from worker.auth.state import StateRefused
from worker.auth.tokens import InvalidGrant
from worker.providers import registry
from worker.providers.base import ProviderError
from worker.tenancy.binding import CompanyRefused
from worker.tenancy.tenants import UnknownTenant, get_tenant
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
    if provider not in registry.names():
        raise HTTPException(404, "unknown provider")
    try:
        missing = missing_app_setting(get_tenant(tenant_id).provider)
        if missing:
            text = f"{missing} is not set, so no connect link can work; set it and restart."
            return _page("Cannot connect", text, 503)
        return RedirectResponse(connect_url(tenant_id, START_TTL), status_code=302)
    except UnknownTenant as exc:
        raise HTTPException(404, str(exc)) from None
    except ValueError as exc:  # a provider without a consent page (Visma.net)
        return _page("Cannot connect", str(exc), 400)


@callback_router.get("/connect/{provider}/callback", include_in_schema=False, dependencies=public())
def callback(provider: str, request: Request) -> HTMLResponse:
    """The customer's browser back from the provider's consent page."""
    if provider not in registry.names():
        raise HTTPException(404, "unknown provider")
    flow = registry.spec_for(provider).connect
    return _finish(lambda: flow.finish_from_callback(dict(request.query_params)))


def _finish(complete: Callable[[], Connected]) -> HTMLResponse:
    try:
        done = complete()
    except CallbackRefused as exc:
        return _page("Not connected", str(exc), 400)
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
