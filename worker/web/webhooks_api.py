"""Webhook endpoints over the JSON API: list, add, change, rotate the secret, remove and
test-send. The same functions as `ledgerpush webhooks endpoints` (worker/ops/webhooks.py).

Changing endpoints needs `webhooks:admin` (an endpoint receives tenants' data); reading
them also `jobs:read`; a test-send also `jobs:operate`. A secret is in the answer of the
call that made it (add, rotate) and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from worker.ops import webhooks
from worker.ops.events import EventError
from worker.web.access import JOBS_OPERATE, JOBS_READ, WEBHOOKS_ADMIN, allow
from worker.web.auth import Principal, require_auth
from worker.web.schemas import FieldProblems, Problem

router = APIRouter(
    prefix="/api/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(require_auth)],
    responses={403: {"model": Problem, "description": "the missing scope, named"}},
)
log = logging.getLogger("ledgerpush.web")
ADMIN = allow(WEBHOOKS_ADMIN)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
CHANGE: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 422: {"model": FieldProblems}}
#: The API's names for the fields worker/ops/webhooks.py names in its errors.
FIELD_NAMES = {"types": "events", "id": "endpoint_id"}
EventType = Annotated[str, Field(max_length=50)]
EndpointId = Annotated[int, Path(ge=1, le=2**62)]


class EndpointOut(BaseModel):
    id: int
    url: str
    #: The subscribed event types; `["*"]` for every type.
    events: list[str]
    #: Only this tenant's events; null for every tenant.
    tenant_id: str | None
    #: "api" (added by an operator) or "settings" (LEDGERPUSH_WEBHOOK_URL).
    source: str
    enabled: bool
    #: Failing for `LEDGERPUSH_WEBHOOK_FAILING_HOURS` (alerted once).
    failing: bool
    failing_since: dt.datetime | None
    created_at: dt.datetime | None
    #: During a rotation's overlap: when the previous secret stops signing.
    previous_secret_until: dt.datetime | None


class EndpointIn(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = Field(max_length=500, description="http:// or https://")
    events: list[EventType] | None = Field(
        default=None, max_length=20, description="event types; omitted or empty: every type"
    )
    tenant_id: str | None = Field(default=None, max_length=64, description="only its events")


class EndpointChange(BaseModel):
    """Only the fields sent change; `tenant_id: null` means every tenant."""

    model_config = {"extra": "forbid"}

    events: list[EventType] | None = Field(default=None, max_length=20)
    tenant_id: str | None = Field(default=None, max_length=64)
    enabled: bool | None = None


class SecretOut(BaseModel):
    endpoint: EndpointOut
    #: The `whsec_…` signing secret: shown in this answer only.
    secret: str


class RotateIn(BaseModel):
    model_config = {"extra": "forbid"}

    overlap_hours: float = Field(
        default=webhooks.DEFAULT_OVERLAP_HOURS,
        ge=0,
        le=webhooks.MAX_OVERLAP_HOURS,
        description="how long the previous secret also signs",
    )


class TestSendOut(BaseModel):
    ok: bool
    #: The endpoint's HTTP status; null when it did not answer.
    status_code: int | None
    latency_ms: float
    error: str | None


def endpoint_out(endpoint: Any) -> EndpointOut:
    described = webhooks.describe(endpoint)
    return EndpointOut(**{**described, "events": described["events"].split()})


def refused(exc: EventError) -> JSONResponse:
    field, _, message = str(exc).partition(": ")
    body = {"detail": [{"field": FIELD_NAMES.get(field, field), "message": message}]}
    return JSONResponse(body, status_code=422)


def not_found(exc: webhooks.EndpointNotFound) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


def _types(events: list[str] | None) -> str | None:
    return None if events is None else ",".join(e for e in events if e != "*")


@router.get(
    "/endpoints",
    response_model=list[EndpointOut],
    summary="Webhook endpoints and their health",
    dependencies=allow(JOBS_READ, WEBHOOKS_ADMIN),
)
def list_endpoints() -> Any:
    return [endpoint_out(e) for e in webhooks.list_endpoints()]


@router.get(
    "/endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=NOT_FOUND,
    summary="One webhook endpoint",
    dependencies=allow(JOBS_READ, WEBHOOKS_ADMIN),
)
def get_endpoint(endpoint_id: EndpointId) -> Any:
    try:
        return endpoint_out(webhooks.get_endpoint(endpoint_id))
    except webhooks.EndpointNotFound as exc:
        return not_found(exc)


@router.post(
    "/endpoints",
    status_code=201,
    response_model=SecretOut,
    responses={422: {"model": FieldProblems}},
    summary="Subscribe an endpoint; the answer carries its secret (shown only now)",
    dependencies=ADMIN,
)
def add_endpoint(body: EndpointIn, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    try:
        endpoint, secret = webhooks.add_endpoint(body.url, _types(body.events), body.tenant_id)
    except EventError as exc:
        return refused(exc)
    log.info("webhook endpoint %d added by %s", endpoint.id, principal.actor)
    return SecretOut(endpoint=endpoint_out(endpoint), secret=secret)


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=EndpointOut,
    responses=CHANGE,
    summary="Change an endpoint's event types, tenant, or enable/disable it",
    dependencies=ADMIN,
)
def change_endpoint(
    endpoint_id: EndpointId,
    body: EndpointChange,
    principal: Annotated[Principal, Depends(require_auth)],
) -> Any:
    tenant: Any = body.tenant_id if "tenant_id" in body.model_fields_set else webhooks.UNCHANGED
    try:
        endpoint = webhooks.update_endpoint(endpoint_id, _types(body.events), tenant, body.enabled)
    except webhooks.EndpointNotFound as exc:
        return not_found(exc)
    except EventError as exc:
        return refused(exc)
    log.info("webhook endpoint %d changed by %s", endpoint_id, principal.actor)
    return endpoint_out(endpoint)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response_model=SecretOut,
    responses=CHANGE,
    summary="A new secret; the previous one also signs during the overlap",
    dependencies=ADMIN,
)
def rotate_secret(
    endpoint_id: EndpointId,
    principal: Annotated[Principal, Depends(require_auth)],
    body: Annotated[RotateIn | None, Body()] = None,
) -> Any:
    overlap = (body or RotateIn()).overlap_hours
    try:
        secret = webhooks.rotate_secret(endpoint_id, overlap)
        endpoint = webhooks.get_endpoint(endpoint_id)
    except webhooks.EndpointNotFound as exc:
        return not_found(exc)
    except EventError as exc:
        return refused(exc)
    log.info("secret of webhook endpoint %d rotated by %s", endpoint_id, principal.actor)
    return SecretOut(endpoint=endpoint_out(endpoint), secret=secret)


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=204,
    responses=NOT_FOUND,
    summary="Remove an endpoint and its deliveries",
    dependencies=ADMIN,
)
def remove_endpoint(
    endpoint_id: EndpointId, principal: Annotated[Principal, Depends(require_auth)]
) -> Response:
    try:
        webhooks.remove_endpoint(endpoint_id)
    except webhooks.EndpointNotFound as exc:
        return not_found(exc)
    log.info("webhook endpoint %d removed by %s", endpoint_id, principal.actor)
    return Response(status_code=204)


@router.post(
    "/endpoints/{endpoint_id}/test",
    response_model=TestSendOut,
    responses=NOT_FOUND,
    summary="Send a signed webhook.test event now; the endpoint's answer and latency",
    dependencies=allow(JOBS_OPERATE, WEBHOOKS_ADMIN),
)
async def test_send(endpoint_id: EndpointId) -> Any:
    try:
        attempt = await run_in_threadpool(webhooks.send_test, endpoint_id)
    except webhooks.EndpointNotFound as exc:
        return not_found(exc)
    return TestSendOut(
        ok=attempt.ok,
        status_code=attempt.status_code,
        latency_ms=round(attempt.seconds * 1000, 1),
        error=attempt.error,
    )
