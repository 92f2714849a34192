"""The JSON API's response shapes (documented in the OpenAPI at /api/docs), built
from ledger rows. Tenants are shown without credentials; payloads are scrubbed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from worker.explain import explain_error, explain_job
from worker.ledger.models import Attempt, Job, JobEvent
from worker.ledger.queries import TenantHealth
from worker.logs import scrub


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; the ledger stores UTC, so say so (RFC 3339)."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


Timestamp = Annotated[dt.datetime, AfterValidator(_utc)]


class FieldProblem(BaseModel):
    field: str
    message: str


class FieldProblems(BaseModel):
    detail: list[FieldProblem]


class Problem(BaseModel):
    detail: str


class ErrorOut(BaseModel):
    category: str | None
    code: str | None
    message: str | None
    fields: list[Any] | None
    explanation: str | None
    fix: str | None
    original: str | None = Field(
        default=None, description="What the accounting system answered, as it said it"
    )


class JobOut(BaseModel):
    id: str
    tenant_id: str
    idempotency_key: str
    kind: str
    provider: str | None
    state: str
    attempts: int
    remote: dict[str, Any]
    error: ErrorOut | None
    next_retry_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    finished_at: Timestamp | None


class EventOut(BaseModel):
    at: Timestamp
    from_state: str | None
    to_state: str
    actor: str
    note: str | None


class CallOut(BaseModel):
    method: str | None = None
    path: str | None = None
    status: int | None = None
    ms: float | None = None


class AttemptOut(BaseModel):
    number: int
    worker: str | None
    started_at: Timestamp
    ended_at: Timestamp | None
    outcome: str | None
    error: ErrorOut | None
    calls: list[CallOut]


class JobDetailOut(JobOut):
    payload: dict[str, Any]
    history: list[EventOut]
    attempt_log: list[AttemptOut]


class JobListOut(BaseModel):
    items: list[JobOut]
    total: int
    page: int
    per_page: int


class SubmittedOut(BaseModel):
    """`created` is false when the key was seen before; `job` is the ledger row once the
    worker accepted it (null while it is still waiting in the queue)."""

    id: str
    tenant_id: str
    idempotency_key: str
    kind: str
    state: str
    created: bool
    job: JobOut | None


class TenantOut(BaseModel):
    id: str
    provider: str
    country: str
    name: str | None
    connection_state: str
    connection_reason: str | None
    has_credentials: bool
    token_expires_at: Timestamp | None
    mapping: dict[str, Any]
    capabilities: dict[str, Any]
    last_success_at: Timestamp | None
    booked_24h: int
    failed_24h: int
    failure_rate_24h: float | None
    failed_jobs: int
    parked_jobs: int
    connect_path: str
    company: dict[str, Any] | None = None
    company_bound_at: Timestamp | None = None
    company_checked_at: Timestamp | None = None
    company_refused: dict[str, Any] | None = None
    company_sharing_allowed: bool = False


def job_error(job: Job) -> ErrorOut | None:
    if not job.error_code and not job.error_category:
        return None
    plain = explain_job(job)
    return ErrorOut(
        category=job.error_category,
        code=job.error_code,
        message=scrub(job.error_message),
        fields=scrub(job.error_fields),
        explanation=f"{plain.title}. {plain.text}" if plain else None,
        fix=plain.fix if plain else None,
    )


def job_out(job: Job, provider: str | None = None) -> JobOut:
    return JobOut(
        id=job.id,
        tenant_id=job.tenant_id,
        idempotency_key=job.idempotency_key,
        kind=job.kind,
        provider=job.provider or provider,
        state=job.state,
        attempts=job.attempts,
        remote=scrub(job.remote or {}),
        error=job_error(job),
        next_retry_at=job.next_retry_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
    )


def _attempt_error(error: dict[str, Any] | None) -> ErrorOut | None:
    if not error:
        return None
    plain = explain_error(error)
    return ErrorOut(
        category=error.get("category"),
        code=error.get("code"),
        message=scrub(error.get("message")),
        fields=None,
        explanation=f"{plain.title}. {plain.text}" if plain else None,
        fix=plain.fix if plain else None,
        original=scrub(error.get("original")),
    )


def _calls(calls: list[Any]) -> list[CallOut]:
    out = []
    for call in calls or []:
        if isinstance(call, dict):
            out.append(
                CallOut(
                    method=str(call.get("method") or "") or None,
                    path=scrub(str(call.get("path") or "")) or None,
                    status=call.get("status") if isinstance(call.get("status"), int) else None,
                    ms=call.get("ms") if isinstance(call.get("ms"), int | float) else None,
                )
            )
    return out


def attempt_out(attempt: Attempt) -> AttemptOut:
    return AttemptOut(
        number=attempt.number,
        worker=attempt.worker,
        started_at=attempt.started_at,
        ended_at=attempt.ended_at,
        outcome=attempt.outcome,
        error=_attempt_error(attempt.error),
        calls=_calls(attempt.calls),
    )


def event_out(event: JobEvent) -> EventOut:
    return EventOut(
        at=event.at,
        from_state=event.from_state,
        to_state=event.to_state,
        actor=event.actor,
        note=scrub(event.note),
    )


def job_detail_out(
    job: Job, provider: str | None, events: list[JobEvent], attempts: list[Attempt]
) -> JobDetailOut:
    return JobDetailOut(
        **job_out(job, provider).model_dump(),
        payload=scrub(job.payload),
        history=[event_out(e) for e in events],
        attempt_log=[attempt_out(a) for a in attempts],
    )


def connect_path(tenant_id: str, provider: str) -> str:
    return f"/connect/{provider}/{tenant_id}"


def tenant_out(health: TenantHealth) -> TenantOut:
    t = health.tenant
    return TenantOut(
        id=t.id,
        provider=t.provider,
        country=t.country,
        name=t.display_name,
        connection_state=t.connection_state,
        connection_reason=scrub(t.connection_reason),
        has_credentials=t.credentials is not None,
        token_expires_at=t.token_expires_at,
        mapping=dict(t.mapping or {}),
        capabilities=scrub(dict(t.capabilities or {})),
        last_success_at=t.last_success_at,
        booked_24h=health.booked_24h,
        failed_24h=health.failed_24h,
        failure_rate_24h=health.failure_rate,
        failed_jobs=health.failed_now,
        parked_jobs=health.parked,
        connect_path=connect_path(t.id, t.provider),
        company=t.company,
        company_bound_at=t.company_bound_at,
        company_checked_at=t.company_checked_at,
        company_refused=t.company_refused,
        company_sharing_allowed=bool(t.company_sharing_allowed),
    )
