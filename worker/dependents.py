"""Credit notes and payments waiting for their invoice are sent again when it settles.

A job whose invoice is not booked yet registers itself under the invoice (a Redis set),
then reads the invoice's state once more; the invoice's run marks it booked (or failed,
or cancelled) in the ledger first and reads the set after. So either the waiting job
sees the new state, or the invoice's run sees the waiting job: no wake-up is lost. The
waiting job's own retry (with backoff) stays scheduled as a safety net; a copy that
arrives after the job finished is acknowledged without doing anything.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from redis.client import Pipeline
from redis.exceptions import RedisError

from worker.ledger import store
from worker.ledger.models import TERMINAL_STATES
from worker.transport.producer import send
from worker.transport.redis_client import Finish, get_redis

log = logging.getLogger("ledgerpush.dependents")
WAIT_TTL_SECONDS = 7 * 24 * 3600


def waiting_key(tenant_id: str, invoice_key: str) -> str:
    return f"lp:waiting-for:{tenant_id}:{invoice_key}"


def wait_for_invoice(tenant_id: str, invoice_key: str, job_id: str) -> None:
    """Best effort: without Redis the job still retries with backoff."""
    key = waiting_key(tenant_id, invoice_key)
    try:
        pipe = get_redis().pipeline()
        pipe.sadd(key, job_id)
        pipe.expire(key, WAIT_TTL_SECONDS)
        pipe.execute()
    except RedisError as exc:
        log.warning("job %s will retry with backoff instead of waking up: %s", job_id, exc)


def wake(tenant_id: str, invoice_key: str) -> list[str]:
    """Send the jobs waiting for this invoice again now; returns their ids."""
    pipe = get_redis().pipeline()
    _queue_take(pipe, tenant_id, invoice_key)
    try:
        answers = pipe.execute()
    except RedisError as exc:
        answers = [exc, exc]
    return _send_again(invoice_key, answers)


def queue_wake(pipe: Pipeline, tenant_id: str, invoice_key: str) -> Finish:
    """`wake` on a batch of the job's last commands (after its terminal state is
    committed). Not in a transaction: a job that registers between the read and the
    delete is not sent again, but it reads the invoice's state after registering and
    finds it settled."""
    _queue_take(pipe, tenant_id, invoice_key)
    return functools.partial(_woken, invoice_key)


def _woken(invoice_key: str, answers: list[Any]) -> None:
    _send_again(invoice_key, answers)


def _queue_take(pipe: Pipeline, tenant_id: str, invoice_key: str) -> None:
    key = waiting_key(tenant_id, invoice_key)
    pipe.smembers(key)
    pipe.delete(key)


def _send_again(invoice_key: str, answers: list[Any]) -> list[str]:
    members = answers[0]
    if isinstance(members, Exception):
        log.warning("jobs waiting for invoice %r retry with backoff: %s", invoice_key, members)
        return []
    woken: list[str] = []
    for raw in sorted(members):
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            job = store.find_job(job_id)
            if job is None or job.state in TERMINAL_STATES:
                continue
            send(dict(job.payload), job.kind, job.id)
        except Exception as exc:  # ledger or broker away: the job's own retry still comes
            log.warning("could not wake job %s (it retries with backoff): %s", job_id, exc)
            continue
        woken.append(job_id)
    if woken:
        log.info("invoice %r settled: sent %s waiting job(s) again", invoice_key, len(woken))
    return woken
