"""What every job task does: run the pipeline, then retry through Celery when told to."""

from __future__ import annotations

from typing import Any

from celery import Task

from worker import pipeline


def run_job(task: Task, payload: Any, enqueued_at: float | None) -> str:
    outcome = pipeline.process(payload, enqueued_at, worker=str(task.request.hostname))
    if outcome.retry_in is not None:
        raise task.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.state
