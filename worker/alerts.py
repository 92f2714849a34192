"""Alerts on transitions, not per job: one Sentry event and one signed webhook when a
tenant's connection breaks, one when it is back, one when a job is dead-lettered, one
when an accounting system's circuit opens (down for many tenants) and one when it closes.

Webhooks are JSON bodies signed with HMAC-SHA256 over `"{timestamp}.{body}"`, sent in
the header `X-Ledgerpush-Signature: t=<unix seconds>,v1=<hex digest>`; delivery is
retried with backoff by a Celery task and every delivery is recorded in the ledger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import httpx
import sentry_sdk

from worker import dispatch
from worker.backoff import webhook_backoff as webhook_backoff  # re-exported
from worker.ledger import alerts as deliveries
from worker.ledger.models import Job, Tenant, WebhookDelivery, utcnow
from worker.redis_client import get_redis
from worker.settings import get_settings
from worker.tasknames import DELIVER_WEBHOOK_TASK

log = logging.getLogger("ledgerpush.alerts")
SIGNATURE_HEADER = "X-Ledgerpush-Signature"
UNDELIVERED = ("pending", "retrying")
RESEND_GRACE = 180.0  # seconds a delivery's next attempt may be late before it is re-sent
RESEND_EVERY = 900  # at most one re-send per delivery in this many seconds


def tenant_reauth_required(tenant: Tenant, reason: str) -> None:
    _sentry(
        f"Tenant {tenant.id} needs re-authorization",
        fingerprint=["tenant-reauth", tenant.id],
        tags={"tenant": tenant.id, "provider": tenant.provider, "reason": reason[:200]},
    )
    _webhook(
        "tenant.reauth_required",
        {"tenant_id": tenant.id, "provider": tenant.provider, "reason": reason},
    )


def tenant_reconnected(tenant: Tenant, actor: str) -> None:
    _webhook(
        "tenant.reconnected", {"tenant_id": tenant.id, "provider": tenant.provider, "by": actor}
    )


def tenant_company_refused(tenant: Tenant, reason: str, bound: str, picked: str) -> None:
    """A connect or check returned another company than the tenant's: nothing was stored."""
    _sentry(
        f"Tenant {tenant.id}: company refused",
        fingerprint=["tenant-company", tenant.id],
        tags={"tenant": tenant.id, "provider": tenant.provider, "reason": reason[:200]},
    )
    _webhook(
        "tenant.company_refused",
        {
            "tenant_id": tenant.id,
            "provider": tenant.provider,
            "reason": reason,
            "bound_company": bound,
            "picked_company": picked,
        },
    )


def app_credentials_rejected(provider: str, setting: str, error: str) -> None:
    """The provider refused ledgerpush's own application credentials: every tenant waits."""
    _sentry(
        f"{provider} refused the application credentials ({error}); check {setting}",
        fingerprint=["app-credentials", provider],
        tags={"provider": provider, "setting": setting, "error": error},
    )
    _webhook(
        "system.app_credentials_rejected",
        {"provider": provider, "setting": setting, "error": error},
    )


def app_credentials_accepted(provider: str) -> None:
    _webhook("system.app_credentials_accepted", {"provider": provider})


def provider_circuit_opened(provider: str, reason: str) -> None:
    """A provider is down for many tenants: its jobs are held (worker/circuit.py)."""
    _sentry(
        f"Provider {provider} is unreachable; its jobs are held",
        fingerprint=["provider-circuit", provider],
        tags={"provider": provider, "reason": reason[:200]},
    )
    _webhook("provider.circuit_opened", {"provider": provider, "reason": reason})


def provider_circuit_closed(provider: str, down_seconds: float) -> None:
    _sentry(
        f"Provider {provider} answers again; held jobs resume",
        fingerprint=["provider-circuit-closed", provider],
        tags={"provider": provider},
        level="info",
    )
    _webhook("provider.circuit_closed", {"provider": provider, "down_seconds": round(down_seconds)})


def job_failed(job: Job) -> None:
    _sentry(
        f"Job dead-lettered: {job.error_code}",
        fingerprint=["job-failed", job.tenant_id, job.error_code or ""],
        tags={"tenant": job.tenant_id, "provider": job.provider or "", "kind": job.kind},
        level="warning",
    )
    # The `job.failed` webhook is an outbound event (worker/events.py), written with the
    # state change and delivered to every subscribed endpoint.


def webhook_endpoint_failing(endpoint_id: int, url: str, since: dt.datetime) -> None:
    """A webhook endpoint has failed every delivery since `since` (alerted once)."""
    _sentry(
        f"Webhook endpoint {endpoint_id} failing since {since.isoformat()}",
        fingerprint=["webhook-endpoint-failing", str(endpoint_id)],
        tags={"endpoint": str(endpoint_id)},
    )
    _webhook(
        "system.webhook_endpoint_failing",
        {"endpoint_id": endpoint_id, "url": url, "failing_since": since.isoformat()},
    )


def poison_messages(queue: str, reason: str) -> None:
    """Once per burst of poison messages (worker/poison.py), not once per message."""
    _sentry(
        f"Poison messages on {queue}: {reason}",
        fingerprint=["poison-messages", queue],
        tags={"queue": queue, "reason": reason},
        level="warning",
    )
    _webhook(
        "poison.received",
        {"queue": queue, "first_reason": reason, "list": "ledgerpush.poison"},
    )


def _sentry(
    message: str, fingerprint: list[str], tags: dict[str, str], level: str = "error"
) -> None:
    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = fingerprint
        for key, value in tags.items():
            scope.set_tag(key, value)
        scope.level = level
        sentry_sdk.capture_message(message)


def _webhook(event: str, data: dict[str, Any]) -> None:
    url = get_settings().webhook_url
    if not url:
        return
    payload = {"id": str(uuid.uuid4()), "type": event, "created": int(time.time()), "data": data}
    _send(deliveries.insert_webhook_delivery(event, url, payload))


def _send(delivery_id: int) -> bool:
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
        if _send(delivery.id):
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
    if not _send(delivery_id):
        raise NotResendable("the broker is unreachable; the reconciler will send it later")


def sign(body: bytes, timestamp: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(body: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    """For receivers: check the signature and that it is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(body, timestamp, secret), header)


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
        from worker.webhooks import signed_headers  # webhooks imports this module

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
