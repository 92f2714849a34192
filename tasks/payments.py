"""Payment jobs: parse, hand to the pipeline, act on its outcome."""

from __future__ import annotations

from typing import Any

from celery import Task

from tasks.runner import run_job
from worker.tasknames import PAYMENT_TASK
from worker.transport.app import app


@app.task(name=PAYMENT_TASK, bind=True)
def process_payment(
    self: Task, payload: Any, enqueued_at: float | None = None, created_by_key: int | None = None
) -> str:
    return run_job(self, payload, enqueued_at, created_by_key)
