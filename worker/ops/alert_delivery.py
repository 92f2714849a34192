"""Delivery of the alert webhooks (worker/ops/alerts.py decides what to alert): the one
LEDGERPUSH_WEBHOOK_URL receiver, signed (worker/signing.py), retried with backoff by a
Celery task, every delivery recorded in the ledger; the reconciler re-sends deliveries
whose attempt is overdue, and operators list and re-send them."""

from __future__ import annotations

import datetime as dt
import json
import logging

import httpx

from worker.backoff import webhook_backoff
from worker.ledger import alerts as deliveries
from worker.ledger.models import WebhookDelivery, utcnow
from worker.settings import get_settings
from worker.signing import signed_headers
from worker.tasknames import DELIVER_WEBHOOK_TASK
from worker.transport import dispatch
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.alerts")
UNDELIVERED = ("pending", "retrying")
RESEND_GRACE = 180.0  # seconds a delivery's next attempt may be late before it is re-sent
RESEND_EVERY = 900  # at most one re-send per delivery in this many seconds


def queue(delivery_id: int) -> bool:
    """Queue a delivery attempt. The row is committed first: should the broker be
    unreachable, the transition that raised the alert stands, and the reconciler sends
    the delivery once its attempt is overdue (`resend_overdue`)."""
    try:
        dispatch.send(DELIVER_WEBHOOK_TASK, (delivery_id,))
    except Exception as exc:
        log.warning(
            "could not queue webhook delivery %d (%s: %s); the reconciler will send it",
            delivery_id,
            type(exc).__name__,
            exc,
        )
        return False
    return True


def next_attempt_due(delivery: WebhookDelivery) -> dt.datetime:
    """When the next attempt of an undelivered delivery should have started at the
    latest: each attempt (up to 10 s) and the backoff of `deliver_webhook` after it."""
    waited = sum(webhook_backoff(number) + 10 for number in range(1, delivery.attempts + 1))
    created = delivery.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created + dt.timedelta(seconds=waited)


def overdue_deliveries(grace: float = RESEND_GRACE, limit: int = 200) -> list[WebhookDelivery]:
    """Pending or retrying deliveries whose next attempt is overdue by `grace` seconds:
    their message was lost (published while the broker was down, or never published)."""
    cutoff = utcnow() - dt.timedelta(seconds=grace)
    candidates = deliveries.deliveries_created_before(UNDELIVERED, cutoff, limit)
    return [d for d in candidates if next_attempt_due(d) < cutoff]


def resend_overdue(grace: float = RESEND_GRACE) -> int:
    """Run by the periodic reconcile task: queue overdue deliveries again, each at most
    once per `RESEND_EVERY` however many ticks see it; returns how many were queued."""
    redis = get_redis()
    resent = 0
    for delivery in overdue_deliveries(grace):
        if not redis.set(f"lp:webhook-resent:{delivery.id}", 1, nx=True, ex=RESEND_EVERY):
            continue
        if queue(delivery.id):
            resent += 1
            log.info(
                "re-sent webhook %s delivery %d (%s, %d attempts)",
                delivery.event,
                delivery.id,
                delivery.status,
                delivery.attempts,
            )
    return resent


def list_deliveries(status: str | None = None, limit: int = 50) -> list[WebhookDelivery]:
    """Webhook deliveries, newest first, optionally of one status."""
    return deliveries.newest_deliveries(status, limit)


def subject_of(delivery: WebhookDelivery) -> tuple[str, str | None]:
    """The tenant and (for `job.failed`) the job a delivery is about."""
    data = delivery.payload.get("data") or {}
    return str(data.get("tenant_id") or ""), data.get("job_id")


class NotResendable(LookupError):
    """No such delivery, or it was delivered already."""


def resend(delivery_id: int, actor: str) -> None:
    """Queue a delivery again (a failed one gets a fresh round of retries)."""

    def reopen(delivery: WebhookDelivery | None) -> None:
        if delivery is None:
            raise NotResendable(f"no webhook delivery {delivery_id}")
        if delivery.status == "delivered":
            raise NotResendable(f"webhook delivery {delivery_id} was delivered already")
        if delivery.status == "failed":
            delivery.status = "retrying"

    deliveries.change_webhook_delivery(delivery_id, reopen)
    log.info("webhook delivery %d re-sent by %s", delivery_id, actor)
    if not queue(delivery_id):
        raise NotResendable("the broker is unreachable; the reconciler will send it later")


def deliver(delivery_id: int) -> bool:
    """One delivery attempt; True when the receiver accepted it (2xx). The attempt is
    made and recorded in one transaction on the delivery's row."""
    settings = get_settings()
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    return deliveries.change_webhook_delivery(
        delivery_id, lambda delivery: _attempt(delivery_id, delivery, secret)
    )


def _attempt(delivery_id: int, delivery: WebhookDelivery | None, secret: str) -> bool:
    if delivery is None or delivery.status == "delivered":
        return True
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "ledgerpush-webhooks"}
    if secret:
        event_id = str(delivery.payload.get("id") or delivery.id)
        headers = signed_headers(event_id, body, {"current": secret}, legacy=True)
    delivery.attempts += 1
    try:
        response = httpx.post(delivery.url, content=body, headers=headers, timeout=10)
        delivery.last_status_code = response.status_code
        ok = response.is_success
        delivery.last_error = None if ok else f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok = False
        delivery.last_error = f"{type(exc).__name__}: {exc}"[:500]
    delivery.status = "delivered" if ok else "retrying"
    delivery.delivered_at = utcnow() if ok else None
    if not ok:
        log.warning(
            "webhook %s delivery %d failed: %s",
            delivery.event,
            delivery_id,
            delivery.last_error,
        )
    return ok


def mark_undeliverable(delivery_id: int) -> None:
    def fail(delivery: WebhookDelivery | None) -> None:
        if delivery is not None:
            delivery.status = "failed"

    deliveries.change_webhook_delivery(delivery_id, fail)
