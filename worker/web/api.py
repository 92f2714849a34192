"""The JSON API: producers submit jobs; scripts and operators inspect and act.

Authenticated with `Authorization: Bearer <api key>` (or a dashboard session plus the
X-CSRF-Token header for changes). Field errors always have the shape
`{"detail": [{"field": ..., "message": ...}]}`; refusals `{"detail": "..."}`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from worker import safejson
from worker.jobs import KINDS, FieldError, JobValidationError
from worker.ledger import store
from worker.ledger.models import JOB_STATES, Job
from worker.ledger.queries import JobFilter, find_jobs, providers_of, tenant_health
from worker.ops import operations
from worker.tenancy import binding
from worker.tenancy.mapping import MappingError
from worker.tenancy.mapping import validate as validate_mapping
from worker.tenancy.refcache import invalidate
from worker.tenancy.tenants import PROVIDERS, TenantError, UnknownTenant, update_mapping
from worker.web.access import JOBS_OPERATE, JOBS_READ, JOBS_WRITE, TENANTS_ADMIN, allow
from worker.web.auth import Principal, require_auth
from worker.web.batch import BatchOut, BatchRefused, read_batch, submit_batch
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

router = APIRouter(
    prefix="/api",
    tags=["api"],
    dependencies=[Depends(require_auth)],
    # Every route: a key or role without the scope it needs (worker/web/access.py).
    responses={403: {"model": Problem, "description": "the missing scope, named"}},
)
log = logging.getLogger("ledgerpush.web")

State = Literal[JOB_STATES]  # type: ignore[valid-type]
Kind = Literal[KINDS]  # type: ignore[valid-type]
Provider = Literal[PROVIDERS]  # type: ignore[valid-type]
SortKey = Literal["created", "updated", "tenant", "key", "kind", "state", "attempts"]
MappingValue = Annotated[str, Field(max_length=200)] | int | None
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
REFUSED: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}
OPERATE = allow(JOBS_OPERATE)
READ_TENANTS = allow(JOBS_READ, TENANTS_ADMIN)


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
    responses={
        200: {"model": SubmittedOut},
        403: {"model": Problem},
        422: {"model": FieldProblems},
    },
    dependencies=allow(JOBS_WRITE),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _job_schema_ref()}},
        }
    },
    summary="Submit a job (invoice, credit note or payment)",
)
async def create_job(
    request: Request, principal: Annotated[Principal, Depends(require_auth)]
) -> Any:
    """Validated like a queue message. 201 for a new key; 200 with the existing job for a
    key seen before (nothing is sent twice; its details only to a key that may read it);
    422 naming each bad field."""
    try:
        data = safejson.loads(await request.body())
    except safejson.UnsafeJSON as exc:
        return field_problems([FieldError(field=p.field, message=p.message) for p in exc.problems])
    try:
        sub = submit(data, created_by_key=principal.key_id)
    except JobValidationError as exc:
        return field_problems(exc.errors)
    if sub.job is not None and not may_read(principal, sub.job):
        sub = replace(sub, job=None)
    providers = providers_of([sub.job]) if sub.job else {}
    job = job_out(sub.job, providers.get(sub.tenant_id)) if sub.job else None
    out = SubmittedOut(**sub.answer(), job=job)
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
    dependencies=allow(JOBS_WRITE),
)
async def create_jobs(
    request: Request, principal: Annotated[Principal, Depends(require_auth)]
) -> Any:
    """`{"jobs": [...]}` in, one result per job out, in order: each is validated and sent
    as by POST /api/jobs, and a bad job never fails the others (its result says 422 and
    names the fields). 422 for the whole request only when it is not such an object."""
    try:
        jobs = read_batch(await request.body())
    except BatchRefused as exc:
        return field_problems([exc.error])
    result = await run_in_threadpool(submit_batch, jobs, principal.key_id)
    return JSONResponse(result.model_dump(mode="json"))


@router.get(
    "/jobs",
    response_model=JobListOut,
    summary="List jobs (filtered, paginated)",
    dependencies=allow(JOBS_READ, JOBS_WRITE),
)
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
    *,
    principal: Annotated[Principal, Depends(require_auth)],
) -> JobListOut:
    """Every job for `jobs:read`; with only `jobs:write`, the jobs this key sent."""
    f = JobFilter(tenant, provider, kind, state, error_code, key, since, until, sort, order)
    f.page, f.per_page = page, per_page
    if JOBS_READ not in principal.scopes:
        f.created_by_key = principal.key_id if principal.key_id is not None else -1
    result = find_jobs(f)
    return JobListOut(
        items=[job_out(j, result.providers.get(j.tenant_id)) for j in result.jobs],
        total=result.total,
        page=page,
        per_page=per_page,
    )


@router.get(
    "/jobs/{job_id}",
    response_model=JobDetailOut,
    responses={**NOT_FOUND, 403: {"model": Problem}},
    dependencies=allow(JOBS_READ, JOBS_WRITE),
)
def get_job(job_id: str, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    """One job: payload (secrets masked), state history, attempts with provider calls.
    With only `jobs:write`, a job another key sent is refused (403)."""
    job = store.find_job(job_id)
    if job is None:
        return problem(f"no job with id {job_id}", 404)
    if not may_read(principal, job):
        return problem(
            f"this API key lacks the scope {JOBS_READ} (the job was sent by another key)", 403
        )
    provider = providers_of([job]).get(job.tenant_id)
    return job_detail_out(job, provider, store.events_of(job.id), store.attempts_of(job.id))


def may_read(principal: Principal, job: Job) -> bool:
    """`jobs:read` reads every job; `jobs:write` alone only those its key sent."""
    if JOBS_READ in principal.scopes:
        return True
    return principal.key_id is not None and job.created_by_key == principal.key_id


def _act(action: Callable[[str, str], Job], job_id: str, principal: Principal) -> Any:
    try:
        job = action(job_id, principal.actor)
    except store.JobNotFound as exc:
        return problem(str(exc), 404)
    except operations.ActionRefused as exc:
        return problem(str(exc), 409)
    return job_out(job, providers_of([job]).get(job.tenant_id))


@router.post("/jobs/{job_id}/retry", response_model=JobOut, responses=REFUSED, dependencies=OPERATE)
def retry_job(job_id: str, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    """Run a failed or retry-scheduled job again now (409 with the reason when not allowed)."""
    return _act(operations.retry, job_id, principal)


@router.post(
    "/jobs/{job_id}/replay", response_model=JobOut, responses=REFUSED, dependencies=OPERATE
)
def replay_job(job_id: str, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    """Start again from the beginning after a fix; never for a booked or cancelled job."""
    return _act(operations.replay, job_id, principal)


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobOut, responses=REFUSED, dependencies=OPERATE
)
def cancel_job(job_id: str, principal: Annotated[Principal, Depends(require_auth)]) -> Any:
    """Cancel a job that has not written anything to the accounting system."""
    return _act(operations.cancel, job_id, principal)


@router.get("/tenants", response_model=list[TenantOut], dependencies=READ_TENANTS)
def list_tenants() -> list[TenantOut]:
    """Tenants with connection health (never credentials)."""
    return [tenant_out(h) for h in tenant_health()]


@router.get(
    "/tenants/{tenant_id}", response_model=TenantOut, responses=NOT_FOUND, dependencies=READ_TENANTS
)
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
    dependencies=allow(TENANTS_ADMIN),
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


class RebindIn(BaseModel):
    company_id: str = Field(
        max_length=200,
        description="id of the company to move to: the tenant's refused company "
        "(`company_refused.id`), named to confirm it",
    )


class SharingIn(BaseModel):
    allowed: bool = Field(description="true: may bind a company another tenant is bound to")


@router.post(
    "/tenants/{tenant_id}/rebind",
    response_model=TenantOut,
    responses=REFUSED,
    dependencies=allow(TENANTS_ADMIN),
    summary="Move a tenant to the company last refused for it",
)
def rebind_tenant(
    tenant_id: str, body: RebindIn, principal: Annotated[Principal, Depends(require_auth)]
) -> Any:
    """As `ledgerpush tenants rebind`: the tenant books into its refused company from now
    on (audited); its cached references are dropped and it stays `needs_reauth` until the
    customer connects again with that company. 409 when there is no refused company, it is
    not the one named, or another tenant is bound to it and sharing is not allowed."""
    try:
        binding.rebind(tenant_id, principal.actor, expected=body.company_id)
    except UnknownTenant as exc:
        return problem(str(exc), 404)
    except TenantError as exc:
        return problem(str(exc), 409)
    return tenant_out(tenant_health(tenant_id)[0])


@router.put(
    "/tenants/{tenant_id}/company-sharing",
    response_model=TenantOut,
    responses=NOT_FOUND,
    dependencies=allow(TENANTS_ADMIN),
    summary="Allow (or stop allowing) a tenant to share a company with another tenant",
)
def put_company_sharing(
    tenant_id: str, body: SharingIn, principal: Annotated[Principal, Depends(require_auth)]
) -> Any:
    """As `ledgerpush tenants allow-shared-company [--revoke]` (audited)."""
    try:
        binding.allow_sharing(tenant_id, principal.actor, allowed=body.allowed)
    except UnknownTenant as exc:
        return problem(str(exc), 404)
    return tenant_out(tenant_health(tenant_id)[0])
