"""Job outcome events for producers: written by the ledger (worker/ledger/events.py) in
the same transaction as the state change that causes them (a transactional outbox), then
delivered to webhook endpoints (worker/ops/webhooks.py) and readable as a feed
(`GET /api/events`).

This module checks what callers ask of events (types, filters) and has the events a
committed transaction wrote delivered soon.
"""

from __future__ import annotations

import logging
import time

from worker.ledger.events import (
    EVENT_TYPES,
    INVOICE_PAID,
    INVOICE_PAYMENT_CHANGED,
    JOB_BOOKED,
    JOB_CANCELLED,
    JOB_FAILED,
    JOB_NEEDS_REVIEW,
    JOB_WAITING_FOR_REAUTH,
    OUTCOME_STATES,
    SETTLE_SECONDS,
    WEBHOOK_TEST,
    after_commit,
    aware,
    booked_details,
    feed,
    purge_expired,
    record_job_outcome,
    record_payment_change,
)
from worker.tasknames import DELIVER_EVENTS_TASK
from worker.transport import dispatch
from worker.transport.redis_client import get_redis

__all__ = [
    "EVENT_TYPES",
    "INVOICE_PAID",
    "INVOICE_PAYMENT_CHANGED",
    "JOB_BOOKED",
    "JOB_CANCELLED",
    "JOB_FAILED",
    "JOB_NEEDS_REVIEW",
    "JOB_WAITING_FOR_REAUTH",
    "OUTCOME_STATES",
    "SETTLE_SECONDS",
    "WEBHOOK_TEST",
    "EventError",
    "aware",
    "booked_details",
    "feed",
    "kick",
    "parse_types",
    "purge_expired",
    "record_job_outcome",
    "record_payment_change",
    "written",
]

log = logging.getLogger("ledgerpush.events")
KICK_KEY = "lp:events-kick"


class EventError(ValueError):
    """Bad input to the feed or to a subscription (names the field and the rule)."""


def parse_types(value: str | None) -> tuple[str, ...]:
    """Comma-separated event types, checked against the ones ledgerpush sends."""
    chosen = [part.strip() for part in (value or "").split(",") if part.strip()]
    unknown = [name for name in chosen if name not in EVENT_TYPES]
    if unknown:
        raise EventError(
            f"types: unknown event type {', '.join(unknown)}; valid: {', '.join(EVENT_TYPES)}"
        )
    return tuple(chosen)


# Sets the kick key unless it exists: -1 if it was set now, else its remaining time (ms).
_KICK = """
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then return -1 end
return math.max(redis.call('PTTL', KEYS[1]), 0)
"""
# Until when (monotonic) the kick key is known to exist: setting it before then would
# find it there, so this process does not ask (a booked job each would).
_kick_key_until = 0.0


def kick() -> None:
    """Have a delivery run start shortly (at most one queued per settle period; it
    starts once the events written until then are settled)."""
    global _kick_key_until
    now = time.monotonic()
    if now < _kick_key_until:
        return
    period_ms = int(SETTLE_SECONDS * 1000)
    left_ms = int(get_redis().eval(_KICK, 1, KICK_KEY, period_ms))  # type: ignore[arg-type, unused-ignore]
    _kick_key_until = now + (period_ms if left_ms < 0 else left_ms) / 1000
    if left_ms < 0:
        dispatch.send(DELIVER_EVENTS_TASK, countdown=SETTLE_SECONDS + 0.5)


def written() -> None:
    """After the transaction that wrote events committed: have them delivered soon."""
    try:
        kick()
    except Exception as exc:  # Redis or the broker away: the change itself stands
        # The events are in the ledger; the periodic delivery run sends them.
        log.warning("could not schedule event delivery (%s); the beat will", type(exc).__name__)


# Every process that imports the operations package kicks deliveries after its commits.
after_commit(written)
