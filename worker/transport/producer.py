"""Enqueue helpers for Python producers.

Re-enqueueing the same (tenant, idempotency key) is harmless: the worker accepts the
first copy and acknowledges later ones without doing anything.
"""

from __future__ import annotations

import time
from typing import Any

from worker.jobs import CreditNoteJob, InvoiceJob, PaymentJob, parse_job
from worker.providers import limits
from worker.tasknames import QUEUE_FOR_TASK, TASK_FOR_KIND
from worker.transport import fairness
from worker.transport.app import app

AnyJob = InvoiceJob | CreditNoteJob | PaymentJob


def enqueue(job: AnyJob | dict[str, Any] | str) -> str:
    """Validate and send one job; returns its id. Raises JobValidationError for a bad job,
    also for one its tenant's accounting system would refuse (worker/providers/limits.py)."""
    parsed = job if isinstance(job, InvoiceJob | CreditNoteJob | PaymentJob) else parse_job(job)
    limits.check_enqueued(parsed)
    return send(parsed.model_dump(mode="json"), parsed.kind, parsed.job_id)


def _kwargs(created_by_key: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"enqueued_at": time.time()}
    if created_by_key is not None:
        kwargs["created_by_key"] = created_by_key
    return kwargs


def send(
    payload: dict[str, Any],
    kind: str,
    job_id: str,
    countdown: float | None = None,
    created_by_key: int | None = None,
) -> str:
    """Publish an already validated payload (also used to resume and retry jobs). The
    message is kept in the outbox until its job is in the ledger (worker/transport/outbox.py).
    `created_by_key`: the API key that sent it, recorded when the worker accepts it."""
    task = TASK_FOR_KIND[kind]
    # A tenant with a backlog overflows to the bulk queue (worker/transport/fairness.py).
    queue = fairness.route(str(payload.get("tenant_id", "")), job_id, QUEUE_FOR_TASK[task])
    app.send_task(
        task,
        args=[payload],
        kwargs=_kwargs(created_by_key),
        queue=queue,
        task_id=job_id,
        countdown=countdown,
    )
    return job_id
