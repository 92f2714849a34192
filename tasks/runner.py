"""What every job task does: run the pipeline, then retry through Celery when told to.

A delivery that fails because the ledger's database or Redis is unreachable is not the
job's failure and is never acknowledged away: it is sent again with backoff until the
store answers (see "Acknowledgements and the outbox" in worker/transport/app.py).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any, NoReturn

from celery import Task
from celery.exceptions import Reject
from redis.exceptions import RedisError

from worker import pipeline
from worker.store_outage import StoreUnavailable, describe, is_store_outage
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.tasks")
NO_CELERY_LIMIT = sys.maxsize
# How long a delivery keeps trying to publish its retry while Redis is away before it
# leaves its own message to the visibility timeout (a thread waiting here costs nothing:
# without Redis the worker receives no other message either).
PUBLISH_PATIENCE_SECONDS = 30.0
PUBLISH_PAUSE_SECONDS = 2.0


def run_job(
    task: Task, payload: Any, enqueued_at: float | None, created_by_key: int | None = None
) -> str:
    queue = (task.request.delivery_info or {}).get("routing_key")
    try:
        outcome = pipeline.process(
            payload,
            enqueued_at,
            worker=str(task.request.hostname),
            queue=queue,
            created_by_key=created_by_key,
            delivery_id=task.request.id,
        )
    except Exception as exc:
        if not is_store_outage(exc):
            raise
        delay = pipeline.backoff_seconds(int(task.request.retries or 0) + 1)
        log.warning("the ledger or Redis is unreachable (%s); retry in %.1fs", describe(exc), delay)
        _retry(task, delay, StoreUnavailable(describe(exc)))
    # Booked, failed or parked, it left its tenant's backlog already (see `delivery_id`).
    if outcome.retry_in is not None:
        _retry(task, outcome.retry_in)
    return outcome.state


def _retry(task: Task, countdown: float, reason: Exception | None = None) -> NoReturn:
    """Publish the job's next message (Celery then acknowledges this one). The pipeline
    owns the job's retry limit; Celery's must not cut it short (`max_retries=None` would
    mean Celery's default, 3). When the new message cannot be published, Celery would
    reject this one without requeueing, and on Redis that is an acknowledgement: the job
    would be gone. So this message is kept instead: requeued, or, while Redis stays
    away, left unacknowledged for the visibility timeout to hand out again."""
    deadline = time.monotonic() + PUBLISH_PATIENCE_SECONDS
    while True:
        try:
            raise task.retry(countdown=countdown, max_retries=NO_CELERY_LIMIT, exc=reason)
        except Reject as refused:
            if time.monotonic() >= deadline or not _redis_answers_before(deadline):
                log.warning("could not publish the retry (%s); the message is kept", refused)
                raise Reject(refused.reason, requeue=True) from None


def _redis_answers_before(deadline: float) -> bool:
    """Pause, then wait until Redis answers (True) or the deadline passes (False)."""
    while time.monotonic() < deadline:
        time.sleep(PUBLISH_PAUSE_SECONDS)
        with contextlib.suppress(RedisError):
            if get_redis().ping():
                return True
    return False
