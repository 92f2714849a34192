"""Dashboard: webhook endpoints with their health and their latest deliveries (request
and response, a button to send one again); adding, enabling/disabling, rotating the
secret of, removing and test-sending an endpoint. The same functions as the CLI and the
API (worker/ops/webhooks.py). A new secret is shown on the page that answers the form that
made it, and never again."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.logs import scrub_text
from worker.ops import webhooks
from worker.ops.events import EVENT_TYPES, EventError
from worker.web.access import JOBS_OPERATE, JOBS_READ, WEBHOOKS_ADMIN, allow
from worker.web.auth import Principal, require_auth
from worker.web.templating import flash, render
from worker.web.webhooks_api import EndpointId

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])
log = logging.getLogger("ledgerpush.web")
Actor = Annotated[Principal, Depends(require_auth)]


def _back(endpoint_id: int | None = None) -> RedirectResponse:
    anchor = f"#endpoint-{endpoint_id}" if endpoint_id else ""
    return RedirectResponse(f"/webhooks{anchor}", status_code=303)


def _page(request: Request, errors: list[str] | None = None, status: int = 200) -> Response:
    context = {
        "endpoints": webhooks.endpoints_with_deliveries(),
        "event_types": EVENT_TYPES,
        "errors": errors or [],
        "overlap_hours": webhooks.DEFAULT_OVERLAP_HOURS,
    }
    return render(request, "webhooks.html", context, status)


@router.get("/webhooks", response_class=HTMLResponse, dependencies=allow(JOBS_READ))
def endpoints_page(request: Request) -> Response:
    return _page(request)


@router.post("/webhooks/deliveries/{delivery_id}/resend", dependencies=allow(JOBS_OPERATE))
def resend_delivery(request: Request, delivery_id: int) -> Response:
    try:
        webhooks.resend_delivery(delivery_id)
    except webhooks.EndpointNotFound as exc:
        flash(request, str(exc))
    else:
        flash(request, f"Delivery {delivery_id} is sent again shortly.")
    return RedirectResponse("/webhooks", status_code=303)


def _secret_page(request: Request, endpoint_id: int, secret: str, what: str) -> Response:
    endpoint = webhooks.describe(webhooks.get_endpoint(endpoint_id))
    context = {"endpoint": endpoint, "secret": secret, "what": what}
    return render(request, "webhook_secret.html", context)


# Not `POST /webhooks/endpoints`: that is the shape of the inbound `/webhooks/{provider}`.
@router.post("/webhooks/endpoints/add", dependencies=allow(WEBHOOKS_ADMIN))
def add_endpoint(
    request: Request,
    principal: Actor,
    url: Annotated[str, Form(max_length=500)],
    events: Annotated[list[str] | None, Form()] = None,
    tenant_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    try:
        endpoint, secret = webhooks.add_endpoint(url.strip(), ",".join(events or []), tenant_id)
    except EventError as exc:
        return _page(request, [str(exc)], 422)
    log.info("webhook endpoint %d added by %s", endpoint.id, principal.actor)
    return _secret_page(request, endpoint.id, secret, "added")


@router.post("/webhooks/endpoints/{endpoint_id}/rotate-secret", dependencies=allow(WEBHOOKS_ADMIN))
def rotate_secret(
    request: Request,
    endpoint_id: EndpointId,
    principal: Actor,
    overlap_hours: Annotated[float, Form(ge=0, le=webhooks.MAX_OVERLAP_HOURS)] = 24.0,
) -> Response:
    try:
        secret = webhooks.rotate_secret(endpoint_id, overlap_hours)
    except (webhooks.EndpointNotFound, EventError) as exc:
        flash(request, str(exc), "error")
        return _back(endpoint_id)
    log.info("secret of webhook endpoint %d rotated by %s", endpoint_id, principal.actor)
    return _secret_page(request, endpoint_id, secret, "rotated")


@router.post("/webhooks/endpoints/{endpoint_id}/enable", dependencies=allow(WEBHOOKS_ADMIN))
def enable_endpoint(request: Request, endpoint_id: EndpointId, principal: Actor) -> Response:
    return _set_enabled(request, endpoint_id, True, principal.actor)


@router.post("/webhooks/endpoints/{endpoint_id}/disable", dependencies=allow(WEBHOOKS_ADMIN))
def disable_endpoint(request: Request, endpoint_id: EndpointId, principal: Actor) -> Response:
    return _set_enabled(request, endpoint_id, False, principal.actor)


def _set_enabled(request: Request, endpoint_id: int, enabled: bool, actor: str) -> Response:
    try:
        webhooks.set_enabled(endpoint_id, enabled)
    except webhooks.EndpointNotFound as exc:
        flash(request, str(exc), "error")
        return _back()
    done = "enabled (its backlog goes first)" if enabled else "disabled (events queue for it)"
    log.info("webhook endpoint %d %s by %s", endpoint_id, done.split()[0], actor)
    flash(request, f"Endpoint {endpoint_id} {done}.")
    return _back(endpoint_id)


@router.get(
    "/webhooks/endpoints/{endpoint_id}/remove",
    response_class=HTMLResponse,
    dependencies=allow(WEBHOOKS_ADMIN),
)
def confirm_remove(request: Request, endpoint_id: EndpointId) -> Response:
    try:
        endpoint = webhooks.describe(webhooks.get_endpoint(endpoint_id))
    except webhooks.EndpointNotFound as exc:
        flash(request, str(exc), "error")
        return _back()
    return render(request, "webhook_remove.html", {"endpoint": endpoint})


@router.post("/webhooks/endpoints/{endpoint_id}/remove", dependencies=allow(WEBHOOKS_ADMIN))
def remove_endpoint(request: Request, endpoint_id: EndpointId, principal: Actor) -> Response:
    try:
        webhooks.remove_endpoint(endpoint_id)
    except webhooks.EndpointNotFound as exc:
        flash(request, str(exc), "error")
        return _back()
    log.info("webhook endpoint %d removed by %s", endpoint_id, principal.actor)
    flash(request, f"Endpoint {endpoint_id} removed, with its deliveries.")
    return _back()


@router.post(
    "/webhooks/endpoints/{endpoint_id}/test", dependencies=allow(JOBS_OPERATE, WEBHOOKS_ADMIN)
)
def test_send(request: Request, endpoint_id: EndpointId) -> Response:
    try:
        attempt = webhooks.send_test(endpoint_id)
    except webhooks.EndpointNotFound as exc:
        flash(request, str(exc), "error")
        return _back()
    took = f"{attempt.seconds * 1000:.0f} ms"
    if attempt.ok:
        flash(
            request, f"Test event to endpoint {endpoint_id}: HTTP {attempt.status_code} in {took}."
        )
    else:
        answer = (
            f"HTTP {attempt.status_code}"
            if attempt.status_code
            else scrub_text(attempt.error or "no answer")
        )
        flash(
            request, f"Test event to endpoint {endpoint_id} failed: {answer} after {took}.", "error"
        )
    return _back(endpoint_id)
