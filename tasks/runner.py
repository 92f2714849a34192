"""What every job task does: run the pipeline, then retry through Celery when told to."""

from __future__ import annotations

import sys
from typing import Any

from celery import Task

from worker import fairness, pipeline

NO_CELERY_LIMIT = sys.maxsize


def run_job(
    task: Task, payload: Any, enqueued_at: float | None, created_by_key: int | None = None
) -> str:
    queue = (task.request.delivery_info or {}).get("routing_key")
    outcome = pipeline.process(
        payload,
        enqueued_at,
        worker=str(task.request.hostname),
        queue=queue,
        created_by_key=created_by_key,
    )
    if outcome.retry_in is None:
        # Booked, failed or parked: it no longer counts toward its tenant's backlog.
        fairness.settled(payload, task.request.id)
    else:
        # The pipeline owns the retry limit (settings.max_retries, then dead letter); Celery's
        # must not cut it short. (`max_retries=None` here would mean Celery's default, 3.)
        raise task.retry(countdown=outcome.retry_in, max_retries=NO_CELERY_LIMIT)
    return outcome.state
