"""The JSON API: producers submit jobs; scripts and operators inspect and act.

Authenticated with `Authorization: Bearer <api key>` (or a dashboard session plus the
X-CSRF-Token header for changes). Field errors always have the shape
`{"detail": [{"field": ..., "message": ...}]}`; refusals `{"detail": "..."}`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field

from worker import operations, safejson
from worker.jobs import KINDS, FieldError, JobValidationError
from worker.ledger import store
from worker.ledger.models import JOB_STATES, Job
from worker.mapping import MappingError
from worker.mapping import validate as validate_mapping
from worker.refcache import invalidate
from worker.tenants import PROVIDERS, UnknownTenant, update_mapping
from worker.web.auth import Principal, require_auth
from worker.web.batch import BatchOut, BatchRefused, read_batch, submit_batch
from worker.web.queries import JobFilter, find_jobs, providers_of, tenant_health
from worker.web.schemas import (
    FieldProblems,
    JobDetailOut,
    JobListOut,
    JobOut,
    Problem,
    SubmittedOut,
    TenantOut,
    job_detail_out,
    job_out,
    tenant_out,
)
from worker.web.submit import submit

router = APIRouter(prefix="/api", tags=["api"], dependencies=[Depends(require_auth)])
log = logging.getLogger("ledgerpush.web")

State = Literal[JOB_STATES]  # type: ignore[valid-type]
Kind = Literal[KINDS]  # type: ignore[valid-type]
Provider = Literal[PROVIDERS]  # type: ignore[valid-type]
SortKey = Literal["created", "updated", "tenant", "key", "kind", "state", "attempts"]
MappingValue = Annotated[str, Field(max_length=200)] | int | None
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
REFUSED: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}


def field_problems(errors: list[FieldError], status: int = 422) -> JSONResponse:
    body = {"detail": [{"field": e.field, "message": e.message} for e in errors]}
    return JSONResponse(body, status_code=status)


def problem(message: str, status: int) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _job_schema_ref() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Job"}


@router.post(
    "/jobs",
    status_code=201,
    response_model=SubmittedOut,
    responses={200: {"model": SubmittedOut}, 422: {"model": FieldProblems}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _job_schema_ref()}},
        }
    },
    summary="Submit a job (invoice, credit note or payment)",
)
async def create_job(request: Request) -> Any:
    """Validated like a queue message. 201 for a new key; 200 with the existing job for a
    key seen before (nothing is sent twice); 422 naming each bad field."""
    try:
        data = safejson.loads(await request.body())
    except safejson.UnsafeJSON as exc:
        return field_problems([FieldError(field=p.field, message=p.message) for p in exc.problems])
    try:
        sub = submit(data)
    except JobValidationError as exc:
        return field_problems(exc.errors)
    providers = providers_of([sub.job]) if sub.job else {}
    out = SubmittedOut(
        id=sub.id,
        tenant_id=sub.tenant_id,
        idempotency_key=sub.idempotency_key,
        kind=sub.kind,
        state=sub.state,
        created=sub.created,
        job=job_out(sub.job, providers.get(sub.tenant_id)) if sub.job else None,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if sub.created else 200)


@router.post(
    "/jobs:batch",
    response_model=BatchOut,
    responses={422: {"model": FieldProblems}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["jobs"],
                        "properties": {
                            "jobs": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 500,
                                "items": _job_schema_ref(),
                            }
                        },
                    }
                }
            },
        }
    },
    summary="Submit up to 500 jobs, each accepted or refused on its own",
)
async def create_jobs(request: Request) -> Any:
    """`{"jobs": [...]}` in, one result per job out, in order: each is validated and sent
    as by POST /api/jobs, and a bad job never fails the others (its result says 422 and
    names the fields). 422 for the whole request only when it is not such an object."""
    try:
        jobs = read_batch(await request.body())
    except BatchRefused as exc:
        return field_problems([exc.error])
    result = await run_in_threadpool(submit_batch, jobs)
    return JSONResponse(result.model_dump(mode="json"))


@router.get("/jobs", response_model=JobListOut, summary="List jobs (filtered, paginated)")
def list_jobs(
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    provider: Provider | None = None,
    kind: Kind | None = None,
    state: State | None = None,
    error_code: Annotated[str | None, Query(max_length=100)] = None,
    key: Annotated[str | None, Query(max_length=200, description="part of the key")] = None,
    since: Annotated[dt.date | None, Query(description="created on or after (UTC)")] = None,
    until: Annotated[dt.date | None, Query(description="created on or before (UTC)")] = None,
    sort: SortKey = "created",
    order: Literal["asc", "desc"] = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobListOut:
    f = JobFilter(tenant, provider, kind, state, error_code, key, since, until, sort, order)
    f.page, f.per_page = page, per_page
    result = find_jobs(f)
    return JobListOut(
        items=[job_out(j, result.providers.get(j.tenant_id)) for j in result.jobs],
        total=result.total,
        page=page,
        per_page=per_page,
    )


@router.get("/jobs/{job_id}", response_model=JobDetailOut, responses=NOT_FOUND)
def get_job(job_id: str) -> Any:
    """One job: payload (secrets masked), state history, attempts with provider calls."""
    job = store.find_job(job_id)
    if job is None:
        return problem(f"no job with id {job_id}", 404)
    provider = providers_of([job]).get(job.tenant_id)
    return job_detail_out(job, provider, store.events_of(job.id), store.attempts_of(job.id))


def _act(action: Callable[[str, str], Job], job_id: str, principal: Principal) -> Any:
    try:
        job = action(job_id, principal.actor)
    except store.JobNotFound as exc:
        return problem(str(exc), 404)
    except operations.ActionRefused as exc:
        return problem(str(exc), 409)
    return job_out(job, providers_of([job]).get(job.tenant_id))


@router.post("/jobs/{job_id}/retry", response_model=JobOut, responses=REFUSED)
def retry_job(job_id: str, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    """Run a failed or retry-scheduled job again now (409 with the reason when not allowed)."""
    return _act(operations.retry, job_id, principal)


@router.post("/jobs/{job_id}/replay", response_model=JobOut, responses=REFUSED)
def replay_job(job_id: str, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    """Start again from the beginning after a fix; never for a booked or cancelled job."""
    return _act(operations.replay, job_id, principal)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=REFUSED)
def cancel_job(job_id: str, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    """Cancel a job that has not written anything to the accounting system."""
    return _act(operations.cancel, job_id, principal)


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants() -> list[TenantOut]:
    """Tenants with connection health (never credentials)."""
    return [tenant_out(h) for h in tenant_health()]


@router.get("/tenants/{tenant_id}", response_model=TenantOut, responses=NOT_FOUND)
def get_tenant(tenant_id: str) -> Any:
    found = tenant_health(tenant_id)
    if not found:
        return problem(f"no tenant {tenant_id!r}", 404)
    return tenant_out(found[0])


def mapping_problems(mapping: dict[str, Any]) -> list[FieldError]:
    problems = []
    for key, value in mapping.items():
        try:
            validate_mapping({key: value})
        except MappingError as exc:
            problems.append(FieldError(field=key, message=str(exc)))
    return problems


@router.put(
    "/tenants/{tenant_id}/mapping",
    response_model=TenantOut,
    responses={404: {"model": Problem}, 422: {"model": FieldProblems}},
)
def put_mapping(
    tenant_id: str,
    mapping: dict[str, MappingValue],
    principal: Annotated[Principal, Depends(require_auth)],
) -> Any:
    """Replace the tenant's mapping (keys as in `ledgerpush tenants map`; null drops a key).
    The tenant's cached references are dropped so the next job resolves afresh."""
    problems = mapping_problems(mapping)
    if problems:
        return field_problems(problems)
    try:
        update_mapping(tenant_id, validate_mapping(mapping), replace=True)
    except UnknownTenant as exc:
        return problem(str(exc), 404)
    except MappingError as exc:
        return field_problems([FieldError(field=exc.key or "mapping", message=str(exc))])
    invalidate(tenant_id)
    log.info("mapping of tenant %s replaced by %s", tenant_id, principal.actor)
    return tenant_out(tenant_health(tenant_id)[0])
