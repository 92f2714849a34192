"""The few functions that change the ledger. Every state change leaves a JobEvent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.ledger.db import session
from worker.ledger.models import (
    FAILED,
    RECEIVED,
    TERMINAL_STATES,
    Attempt,
    Job,
    JobEvent,
    utcnow,
)


class JobNotFound(LookupError):
    pass


def accept_job(
    job_id: str,
    tenant_id: str,
    idempotency_key: str,
    kind: str,
    payload: dict[str, Any],
    enqueued_at: dt.datetime | None = None,
) -> tuple[Job, bool]:
    """Insert the job row, or return the existing one for this (tenant, key).

    Uniqueness is the database's: when two workers race, one insert fails and
    that worker reads the winner's row.
    """
    existing = find_job(job_id)
    if existing is not None:
        return existing, False
    try:
        with session() as db:
            job = Job(
                id=job_id,
                tenant_id=tenant_id,
                idempotency_key=idempotency_key,
                kind=kind,
                payload=payload,
                state=RECEIVED,
                enqueued_at=enqueued_at,
            )
            db.add(job)
            db.flush()
            db.add(JobEvent(job_id=job_id, from_state=None, to_state=RECEIVED, note="accepted"))
        return job, True
    except IntegrityError:
        winner = find_job(job_id)
        if winner is None:
            raise
        return winner, False


def find_job(job_id: str) -> Job | None:
    with session() as db:
        return db.get(Job, job_id)


def get_job(job_id: str) -> Job:
    job = find_job(job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    return job


def find_job_by_key(tenant_id: str, idempotency_key: str) -> Job | None:
    with session() as db:
        return db.scalars(
            select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == idempotency_key)
        ).first()


def transition(
    job_id: str,
    to_state: str,
    *,
    actor: str = "worker",
    note: str | None = None,
    **changes: Any,
) -> Job:
    """Move a job to `to_state`, setting any other columns given, in one transaction."""
    with session() as db:
        job = db.get(Job, job_id, with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        _apply(db, job, to_state, actor, note, changes)
        return job


def _apply(
    db: Session, job: Job, to_state: str, actor: str, note: str | None, changes: dict[str, Any]
) -> None:
    from_state = job.state
    for name, value in changes.items():
        setattr(job, name, value)
    job.state = to_state
    job.updated_at = utcnow()
    if to_state in TERMINAL_STATES:
        job.finished_at = utcnow()
        job.next_retry_at = None
    if from_state != to_state or note:
        db.add(
            JobEvent(
                job_id=job.id, from_state=from_state, to_state=to_state, actor=actor, note=note
            )
        )


def update_job(job_id: str, **changes: Any) -> Job:
    """Change columns without a state change (remote ids, intents)."""
    with session() as db:
        job = db.get(Job, job_id, with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        for name, value in changes.items():
            setattr(job, name, value)
        job.updated_at = utcnow()
        return job


def fail_job(
    job_id: str,
    category: str,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    actor: str = "worker",
) -> Job:
    return transition(
        job_id,
        FAILED,
        actor=actor,
        note=f"{code}: {message}",
        error_category=category,
        error_code=code,
        error_message=message,
        error_fields=fields,
    )


def begin_attempt(job_id: str, worker: str) -> tuple[int, int]:
    """Count a new attempt; returns (attempt row id, attempt number)."""
    with session() as db:
        job = db.get(Job, job_id, with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        job.attempts += 1
        attempt = Attempt(job_id=job_id, number=job.attempts, worker=worker)
        db.add(attempt)
        db.flush()
        return attempt.id, attempt.number


def end_attempt(
    attempt_id: int, outcome: str, calls: list[dict[str, Any]], error: dict[str, Any] | None
) -> None:
    with session() as db:
        attempt = db.get(Attempt, attempt_id)
        if attempt is None:
            return
        attempt.ended_at = utcnow()
        attempt.outcome = outcome
        attempt.calls = calls
        attempt.error = error


def list_jobs(
    tenant_id: str | None = None, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[Job]:
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    if tenant_id:
        query = query.where(Job.tenant_id == tenant_id)
    if state:
        query = query.where(Job.state == state)
    with session() as db:
        return list(db.scalars(query))


def count_by_state(tenant_id: str | None = None) -> dict[str, int]:
    query = select(Job.state, func.count()).group_by(Job.state)
    if tenant_id:
        query = query.where(Job.tenant_id == tenant_id)
    with session() as db:
        return {state: count for state, count in db.execute(query).tuples()}


def attempts_of(job_id: str) -> list[Attempt]:
    with session() as db:
        return list(
            db.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.id))
        )


def events_of(job_id: str) -> list[JobEvent]:
    with session() as db:
        return list(
            db.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        )
