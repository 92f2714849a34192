"""Operator actions on jobs, shared by the CLI, the dashboard and the JSON API.
Each is audited (who, when) in the job's history and refused with a clear reason
when not allowed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from worker import dependents
from worker.jobs import INVALID_PAYLOAD
from worker.ledger import store
from worker.ledger.models import (
    BOOKED,
    CANCELLED,
    FAILED,
    RECEIVED,
    RETRY_SCHEDULED,
    WAITING_FOR_REAUTH,
    Job,
)
from worker.ledger.operations import failed_jobs_and_parked_tenants
from worker.providers.base import NeedsReview
from worker.tenancy.tenants import find_tenant, needs_reauth
from worker.transport import poison
from worker.transport.lease import lease_key
from worker.transport.producer import enqueue, send
from worker.transport.redis_client import get_redis

RETRYABLE = frozenset({FAILED, RETRY_SCHEDULED})
CANCELLABLE = frozenset({RECEIVED, RETRY_SCHEDULED, WAITING_FOR_REAUTH, FAILED})


class ActionRefused(ValueError):
    """The action is not allowed for this job now; the message says why."""


@contextmanager
def _holding_lease(job_id: str) -> Iterator[Job]:
    """The job, read while holding its lease: no copy of it runs while the action
    decides and records, and a copy that starts afterwards sees the new state."""
    lock = get_redis().lock(lease_key(job_id), timeout=30, blocking=False)
    if not lock.acquire():
        raise ActionRefused("the job is running right now; try again when it has stopped")
    try:
        yield store.get_job(job_id)
    finally:
        lock.release()


def _refuse_if_purged(job: Job) -> None:
    if job.purged_at is not None:
        raise ActionRefused(
            "this job's payload was purged (data retention); send the job again with a "
            "new idempotency key"
        )


def retry(job_id: str, actor: str) -> Job:
    """Run a failed or waiting job again now, continuing where it stopped."""
    with _holding_lease(job_id) as job:
        _refuse_if_purged(job)
        if job.state not in RETRYABLE:
            raise ActionRefused(
                f"only failed or retry-scheduled jobs can be retried; this one is {job.state}"
            )
        _refuse_if_invalid(job)
        _refuse_if_tenant_parked(job)
        updated = _reset(job, actor, "retry requested")
    send(job.payload, job.kind, job.id)
    return updated


def replay(job_id: str, actor: str) -> Job:
    """Start a job again from the beginning after a fix (mapping, tenant, data).

    Remote results already recorded are kept and an unfinished write is still looked
    up before it is repeated, so a replay never creates a second document."""
    with _holding_lease(job_id) as job:
        _refuse_if_purged(job)
        _refuse_replay(job)
        _refuse_if_tenant_parked(job)
        store.update_job(job.id, attempts=0)
        updated = _reset(job, actor, "replay requested")
    send(job.payload, job.kind, job.id)
    return updated


def _refuse_replay(job: Job) -> None:
    if job.state == BOOKED:
        raise ActionRefused(
            "this job is booked; booked invoices are immutable - issue a credit note instead"
        )
    if job.state == CANCELLED:
        raise ActionRefused("this job was cancelled; enqueue it again with a new idempotency key")
    _refuse_if_invalid(job)


def _refuse_if_invalid(job: Job) -> None:
    if job.error_code == INVALID_PAYLOAD:
        raise ActionRefused(
            "the payload is invalid; fix it at the producer and send it with a new key"
        )


def cancel(job_id: str, actor: str) -> Job:
    with _holding_lease(job_id) as job:
        if job.state not in CANCELLABLE:
            raise ActionRefused(
                f"a job that is {job.state} cannot be cancelled"
                + (
                    "; booked documents are corrected with a credit note"
                    if job.state == BOOKED
                    else ""
                )
            )
        if job.error_code == NeedsReview.category:
            # The lookup has run (after the write settled) and an operator has looked at
            # its candidates: the decision is theirs; the documents stay as they are remotely.
            return store.transition(
                job.id,
                CANCELLED,
                actor=actor,
                note="cancelled by operator after reviewing the remote candidates; "
                "documents already in the accounting system are left as they are",
            )
        if job.remote:
            raise ActionRefused(
                "this job already wrote to the accounting system "
                f"({', '.join(job.remote)}); replay it or clean up remotely before cancelling"
            )
        if job.intent:
            raise ActionRefused(
                "a write of this job to the accounting system is unanswered and may have "
                "been applied; retry or replay it so that it is looked up, not cancelled"
            )
        cancelled = store.transition(job.id, CANCELLED, actor=actor, note="cancelled by operator")
    if cancelled.kind == "invoice":  # its waiting credit notes and payments fail now
        dependents.wake(cancelled.tenant_id, cancelled.idempotency_key)
    return cancelled


def _refuse_if_tenant_parked(job: Job) -> None:
    tenant = find_tenant(job.tenant_id)
    if tenant is not None and needs_reauth(tenant):
        raise ActionRefused(
            f"tenant {tenant.id} needs re-authorization ({tenant.connection_reason}); reconnect it first"
        )


def _reset(job: Job, actor: str, note: str) -> Job:
    return store.transition(
        job.id,
        RECEIVED,
        actor=actor,
        note=note,
        error_category=None,
        error_code=None,
        error_message=None,
        error_fields=None,
        next_retry_at=None,
        retrying_since=None,  # a new retry horizon
        finished_at=None,
    )


def bulk_candidates(
    tenant_id: str | None = None, error_code: str | None = None
) -> tuple[list[Job], list[Job]]:
    """Failed jobs of a tenant or with an error code: those a bulk retry would send again,
    and those it would skip (what `replay` refuses: an invalid payload, a tenant that
    waits for re-authorization)."""
    failed, parked = failed_jobs_and_parked_tenants(tenant_id, error_code)
    retried: list[Job] = []
    skipped: list[Job] = []
    for job in failed:
        refused = (
            job.error_code == INVALID_PAYLOAD
            or job.tenant_id in parked
            or job.purged_at is not None
        )
        (skipped if refused else retried).append(job)
    return retried, skipped


def bulk_retry(actor: str, tenant_id: str | None = None, error_code: str | None = None) -> int:
    if not tenant_id and not error_code:
        raise ActionRefused("a bulk retry needs a tenant or an error code")
    count = 0
    for job in bulk_candidates(tenant_id, error_code)[0]:
        try:
            replay(job.id, actor)
            count += 1
        except ActionRefused:
            continue
    return count


def reinject_poison_job(entry_id: str, actor: str, job: Any) -> str:
    """Enqueue a fixed job (no envelope: ledgerpush builds it) in place of the entry.
    JobValidationError names the bad fields; nothing changes then."""
    poison.get(entry_id)
    job_id = enqueue(job)
    taken = poison.take(entry_id)
    poison.audit(actor, f"re-enqueued as job {job_id}", taken)
    return job_id
