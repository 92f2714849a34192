"""Alerts on transitions, not per job: one Sentry event and one signed webhook when a
tenant's connection breaks, one when it is back, one when a job is dead-lettered.

Webhooks are JSON bodies signed with HMAC-SHA256 over `"{timestamp}.{body}"`, sent in
the header `X-Ledgerpush-Signature: t=<unix seconds>,v1=<hex digest>`; delivery is
retried with backoff by a Celery task and every delivery is recorded in the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import httpx
import sentry_sdk

from worker.ledger.db import session
from worker.ledger.models import Job, Tenant, WebhookDelivery, utcnow
from worker.settings import get_settings

log = logging.getLogger("ledgerpush.alerts")
SIGNATURE_HEADER = "X-Ledgerpush-Signature"


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


def job_failed(job: Job) -> None:
    _sentry(
        f"Job dead-lettered: {job.error_code}",
        fingerprint=["job-failed", job.tenant_id, job.error_code or ""],
        tags={"tenant": job.tenant_id, "provider": job.provider or "", "kind": job.kind},
        level="warning",
    )
    _webhook(
        "job.failed",
        {
            "job_id": job.id,
            "tenant_id": job.tenant_id,
            "idempotency_key": job.idempotency_key,
            "kind": job.kind,
            "error": {
                "category": job.error_category,
                "code": job.error_code,
                "message": job.error_message,
            },
        },
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
    with session() as db:
        delivery = WebhookDelivery(event=event, url=url, payload=payload)
        db.add(delivery)
        db.flush()
        delivery_id = delivery.id
    from tasks.maintenance import deliver_webhook

    deliver_webhook.delay(delivery_id)


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
    """One delivery attempt; True when the receiver accepted it (2xx)."""
    settings = get_settings()
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    with session() as db:
        delivery = db.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status == "delivered":
            return True
        body = json.dumps(delivery.payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "ledgerpush-webhooks"}
        if secret:
            headers[SIGNATURE_HEADER] = sign(body, int(time.time()), secret)
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
    with session() as db:
        delivery = db.get(WebhookDelivery, delivery_id)
        if delivery is not None:
            delivery.status = "failed"
