"""Operator actions on jobs, shared by the CLI, the dashboard and the JSON API.
Each is audited (who, when) in the job's history and refused with a clear reason
when not allowed."""

from __future__ import annotations

from sqlalchemy import select

from worker.ledger import store
from worker.ledger.db import session
from worker.ledger.models import (
    BOOKED,
    CANCELLED,
    FAILED,
    RECEIVED,
    RETRY_SCHEDULED,
    WAITING_FOR_REAUTH,
    Job,
)
from worker.producer import send
from worker.tenants import find_tenant

RETRYABLE = frozenset({FAILED, RETRY_SCHEDULED})
CANCELLABLE = frozenset({RECEIVED, RETRY_SCHEDULED, WAITING_FOR_REAUTH, FAILED})


class ActionRefused(ValueError):
    """The action is not allowed for this job now; the message says why."""


def retry(job_id: str, actor: str) -> Job:
    """Run a failed or waiting job again now, continuing where it stopped."""
    job = store.get_job(job_id)
    if job.state not in RETRYABLE:
        raise ActionRefused(
            f"only failed or retry-scheduled jobs can be retried; this one is {job.state}"
        )
    _refuse_if_tenant_parked(job)
    return _resend(job, actor, "retry requested")


def replay(job_id: str, actor: str) -> Job:
    """Start a job again from the beginning after a fix (mapping, tenant, data).

    Remote results already recorded are kept and an unfinished write is still looked
    up before it is repeated, so a replay never creates a second document."""
    job = store.get_job(job_id)
    if job.state == BOOKED:
        raise ActionRefused(
            "this job is booked; booked invoices are immutable - issue a credit note instead"
        )
    if job.state == CANCELLED:
        raise ActionRefused("this job was cancelled; enqueue it again with a new idempotency key")
    if job.error_code == "invalid_payload":
        raise ActionRefused(
            "the payload is invalid; fix it at the producer and send it with a new key"
        )
    _refuse_if_tenant_parked(job)
    store.update_job(job.id, attempts=0)
    return _resend(job, actor, "replay requested")


def cancel(job_id: str, actor: str) -> Job:
    job = store.get_job(job_id)
    if job.state not in CANCELLABLE:
        raise ActionRefused(
            f"a job that is {job.state} cannot be cancelled"
            + ("; booked documents are corrected with a credit note" if job.state == BOOKED else "")
        )
    if job.remote:
        raise ActionRefused(
            "this job already wrote to the accounting system "
            f"({', '.join(job.remote)}); replay it or clean up remotely before cancelling"
        )
    return store.transition(job.id, CANCELLED, actor=actor, note="cancelled by operator")


def _refuse_if_tenant_parked(job: Job) -> None:
    tenant = find_tenant(job.tenant_id)
    if tenant is not None and tenant.connection_state == "needs_reauth":
        raise ActionRefused(
            f"tenant {tenant.id} needs re-authorization ({tenant.connection_reason}); reconnect it first"
        )


def _resend(job: Job, actor: str, note: str) -> Job:
    updated = store.transition(
        job.id,
        RECEIVED,
        actor=actor,
        note=note,
        error_category=None,
        error_code=None,
        error_message=None,
        error_fields=None,
        next_retry_at=None,
        finished_at=None,
    )
    send(job.payload, job.kind, job.id)
    return updated


def bulk_candidates(tenant_id: str | None = None, error_code: str | None = None) -> list[Job]:
    """Failed jobs of a tenant or with an error code: what a bulk retry would touch."""
    query = select(Job).where(Job.state == FAILED).order_by(Job.created_at)
    if tenant_id:
        query = query.where(Job.tenant_id == tenant_id)
    if error_code:
        query = query.where(Job.error_code == error_code)
    with session() as db:
        return list(db.scalars(query))


def bulk_retry(actor: str, tenant_id: str | None = None, error_code: str | None = None) -> int:
    if not tenant_id and not error_code:
        raise ActionRefused("a bulk retry needs a tenant or an error code")
    count = 0
    for job in bulk_candidates(tenant_id, error_code):
        try:
            replay(job.id, actor)
            count += 1
        except ActionRefused:
            continue
    return count
