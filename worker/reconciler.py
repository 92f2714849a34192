"""The reconciler: finds jobs that stopped moving (worker died, message lost, lease
expired) and sends them through the pipeline again, where the lookup-before-write
rule decides what still needs doing."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select

from worker.ledger.db import session
from worker.ledger.models import IN_FLIGHT_STATES, RECEIVED, RETRY_SCHEDULED, Job, utcnow
from worker.redis_client import get_redis
from worker.settings import get_settings

log = logging.getLogger("ledgerpush.reconciler")
LOST_RETRY_GRACE = 120.0


def lease_key(job_id: str) -> str:
    return f"lp:lease:{job_id}"


def stuck_jobs(limit: int = 500) -> list[Job]:
    settings = get_settings()
    now = utcnow()
    quiet_since = now - dt.timedelta(seconds=settings.lease_seconds)
    lost_retry = now - dt.timedelta(seconds=LOST_RETRY_GRACE)
    query = (
        select(Job)
        .where(
            or_(
                Job.state.in_([*IN_FLIGHT_STATES, RECEIVED]) & (Job.updated_at < quiet_since),
                (Job.state == RETRY_SCHEDULED) & (Job.next_retry_at < lost_retry),
            )
        )
        .order_by(Job.updated_at)
        .limit(limit)
    )
    with session() as db:
        return list(db.scalars(query))


def reconcile_stuck_jobs() -> int:
    from worker.producer import send

    redis = get_redis()
    resent = 0
    for job in stuck_jobs():
        if redis.exists(lease_key(job.id)):
            continue
        # One resend per job per lease period, however many beat ticks see it.
        if not redis.set(f"lp:reconciled:{job.id}", 1, nx=True, ex=get_settings().lease_seconds):
            continue
        send(job.payload, job.kind, job.id)
        resent += 1
        log.info("re-sent stuck job %s (was %s since %s)", job.id, job.state, job.updated_at)
    return resent
