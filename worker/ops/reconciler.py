"""The reconciler: finds jobs that stopped moving (worker died, message lost, lease
expired) and sends them through the pipeline again, where the lookup-before-write
rule decides what still needs doing."""

from __future__ import annotations

import datetime as dt
import logging

from worker.ledger import store
from worker.ledger.models import Job, utcnow
from worker.ledger.reconcile import quiet_or_overdue_jobs
from worker.settings import get_settings
from worker.transport import outbox
from worker.transport.lease import lease_key
from worker.transport.producer import send
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.reconciler")
LOST_RETRY_GRACE = 120.0
__all__ = ["lease_key", "reconcile_stuck_jobs", "resend_lost_messages", "stuck_jobs"]


def stuck_jobs(limit: int = 500, lost_retry_grace: float = LOST_RETRY_GRACE) -> list[Job]:
    """Jobs in flight or received but quiet for a lease period, and retries overdue by
    `lost_retry_grace` (their message was lost, e.g. published while Redis was down)."""
    settings = get_settings()
    now = utcnow()
    quiet_since = now - dt.timedelta(seconds=settings.lease_seconds)
    lost_retry = now - dt.timedelta(seconds=lost_retry_grace)
    return quiet_or_overdue_jobs(quiet_since, lost_retry, limit)


def reconcile_stuck_jobs(lost_retry_grace: float = LOST_RETRY_GRACE) -> int:
    """Re-send stuck jobs whose lease nobody holds; returns how many were re-sent."""
    redis = get_redis()
    resent = 0
    candidates = stuck_jobs(lost_retry_grace=lost_retry_grace)
    on_the_way = outbox.pending([job.id for job in candidates])
    for job in candidates:
        if redis.exists(lease_key(job.id)) or job.id in on_the_way:
            continue  # running, or a message for it is queued (a retry behind a backlog)
        # One resend per job per lease period, however many beat ticks see it.
        if not redis.set(f"lp:reconciled:{job.id}", 1, nx=True, ex=get_settings().lease_seconds):
            continue
        send(job.payload, job.kind, job.id)
        resent += 1
        log.info("re-sent stuck job %s (was %s since %s)", job.id, job.state, job.updated_at)
    return resent + resend_lost_messages(lost_retry_grace)


def resend_lost_messages(grace: float = LOST_RETRY_GRACE) -> int:
    """Jobs sent but never accepted, although the queue has been read past them."""
    resent = 0
    for queue in outbox.queues():
        for job_id, kind, payload in outbox.overdue(queue, grace):
            if store.find_job(job_id) is not None:
                outbox.accepted(queue, job_id)  # accepted; the entry outlived a crash
                continue
            send(payload, kind, job_id)
            resent += 1
            log.warning("re-sent job %s: its message was lost before a worker accepted it", job_id)
    return resent
