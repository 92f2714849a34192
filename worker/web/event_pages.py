"""Dashboard: webhook endpoints with their health, their latest deliveries (request and
response) and a button to send one again."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker import webhooks
from worker.web.access import JOBS_OPERATE, JOBS_READ, allow
from worker.web.auth import require_auth
from worker.web.templating import flash, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])


@router.get("/webhooks", response_class=HTMLResponse, dependencies=allow(JOBS_READ))
def endpoints_page(request: Request) -> Response:
    context = {"endpoints": webhooks.endpoints_with_deliveries()}
    return render(request, "webhooks.html", context)


@router.post("/webhooks/deliveries/{delivery_id}/resend", dependencies=allow(JOBS_OPERATE))
def resend_delivery(request: Request, delivery_id: int) -> Response:
    try:
        webhooks.resend_delivery(delivery_id)
    except webhooks.EndpointNotFound as exc:
        flash(request, str(exc))
    else:
        flash(request, f"Delivery {delivery_id} is sent again shortly.")
    return RedirectResponse("/webhooks", status_code=303)
