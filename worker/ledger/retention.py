"""The rows data retention (worker/ops/purge.py) reads and rewrites: jobs settled before a
cutoff and not purged yet, their attempts and the worker's notes in their history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from worker.ledger.db import read_session, session
from worker.ledger.models import BOOKED, CANCELLED, FAILED, Attempt, Job, JobEvent

SETTLED = (BOOKED, CANCELLED, FAILED)


def _due_jobs(cutoff: dt.datetime) -> Any:
    return select(Job.id).where(
        Job.state.in_(SETTLED), Job.finished_at < cutoff, Job.purged_at.is_(None)
    )


def due_job_and_attempt_counts(cutoff: dt.datetime) -> tuple[int, int]:
    """How many jobs settled before `cutoff` are not purged yet, and their attempts."""
    with read_session() as db:
        jobs = len(db.scalars(_due_jobs(cutoff)).all())
        attempts = len(
            db.scalars(select(Attempt.id).where(Attempt.job_id.in_(_due_jobs(cutoff)))).all()
        )
    return jobs, attempts


def purge_due_batch(
    cutoff: dt.datetime,
    limit: int,
    purge_job: Callable[[Job], None],
    purge_attempt: Callable[[Attempt], None],
) -> tuple[int, int]:
    """In one transaction: up to `limit` due jobs rewritten by `purge_job`, their
    attempts by `purge_attempt`, and the worker's notes in their history cleared.
    Returns (jobs, attempts); (0, 0) when none is due."""
    attempts = 0
    with session() as db:
        ids = list(db.scalars(_due_jobs(cutoff).limit(limit)))
        if not ids:
            return 0, 0
        for job in db.scalars(select(Job).where(Job.id.in_(ids))):
            purge_job(job)
        db.execute(
            update(JobEvent)
            .where(JobEvent.job_id.in_(ids), JobEvent.actor == "worker")
            .values(note=None)
        )
        for attempt in db.scalars(select(Attempt).where(Attempt.job_id.in_(ids))):
            purge_attempt(attempt)
            attempts += 1
    return len(ids), attempts
