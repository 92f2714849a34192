"""The lean worker: what a careful team would write instead of ledgerpush.

A Celery task on the same thread pool (prefetch 1, task events as the benchmark asks),
references cached in process memory, then draft and book with ledgerpush's own provider
clients (`lean.booking`). No ledger, no lease, no outbox, no rate limiter: delivery is at
most once (acks early) and a lost answer is simply lost.

    LEAN_BROKER_URL=redis://... LEAN_WARM=jobs.json \\
        celery -A lean.tasks worker --pool threads --concurrency 8

At start-up (`worker_init`) it resolves the references of every tenant and customer in
LEAN_WARM, so the measured run does not include them. Each booked invoice is recorded in
Redis (`lean:done`, job key -> "picked-up finished" epoch seconds) for the benchmark.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_init

from lean.booking import Prepared, draft_and_book, key_of, prepare, prepare_all
from worker.jobs import InvoiceJob, parse_job

EVENTS = os.environ.get("LEDGERPUSH_TASK_EVENTS", "false") == "true"
app = Celery("lean", broker=os.environ.get("LEAN_BROKER_URL", "redis://127.0.0.1/2"))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    worker_pool="threads",
    worker_prefetch_multiplier=1,
    worker_disable_rate_limits=True,
    worker_send_task_events=EVENTS,
    task_send_sent_event=EVENTS,
)

_prepared: dict[tuple[str, str], Prepared] = {}
_done: redis.Redis | None = None


@worker_init.connect
def _preload(**_: Any) -> None:
    path = os.environ.get("LEAN_WARM")
    if path:
        with open(path) as handle:
            _prepared.update(prepare_all(json.load(handle)))


def done_store() -> redis.Redis:
    global _done
    if _done is None:
        _done = redis.Redis.from_url(os.environ["LEAN_BROKER_URL"])
    return _done


@app.task(name="lean.book_invoice")
def book_invoice(payload: dict[str, Any]) -> None:
    started = time.time()
    job = parse_job(payload)
    assert isinstance(job, InvoiceJob)
    prepared = _prepared.get(key_of(job))
    if prepared is None:
        prepared = _prepared[key_of(job)] = prepare(job)
    draft_and_book(prepared, job)
    done_store().hset(
        "lean:done", f"{job.idempotency_key}@{job.tenant_id}", f"{started} {time.time()}"
    )
