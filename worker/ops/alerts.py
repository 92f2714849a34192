"""What to alert, on transitions, not per job: one Sentry event and one webhook when a
tenant's connection breaks, one when it is back, one when a job is dead-lettered, one
when an accounting system's circuit opens (down for many tenants) and one when it closes.

A webhook alert is recorded in the ledger and queued here; worker/ops/alert_delivery.py
signs and delivers it (retried with backoff), worker/signing.py holds the signatures.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import sentry_sdk

from worker.ledger import alerts as deliveries
from worker.ledger.models import Job, Tenant
from worker.ops import alert_delivery
from worker.ops.alert_delivery import NotResendable as NotResendable
from worker.ops.alert_delivery import list_deliveries as list_deliveries
from worker.ops.alert_delivery import resend as resend
from worker.ops.alert_delivery import subject_of as subject_of
from worker.settings import get_settings
from worker.signing import SIGNATURE_HEADER as SIGNATURE_HEADER
from worker.signing import sign as sign
from worker.signing import verify as verify

# Re-exported above (`x as x`): the deliveries and signatures were here before they had
# their own modules, and the dashboard and receivers' tests read them here.


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
    """A provider is down for many tenants: its jobs are held (worker/ops/circuit.py)."""
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
    # The `job.failed` webhook is an outbound event (worker/ops/events.py), written with the
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
    """Once per burst of poison messages (worker/transport/poison.py), not once per message."""
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
    alert_delivery.queue(deliveries.insert_webhook_delivery(event, url, payload))
