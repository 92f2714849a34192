"""Webhook subscriptions and the delivery of outbound events (worker/ops/events.py).

Each endpoint gets the events it subscribed to, signed with the Standard Webhooks scheme
(`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`; secrets `whsec_…`),
at least once, in event order per tenant: a later event of a tenant waits until the
earlier one is delivered or has given up (after `LEDGERPUSH_WEBHOOK_GIVE_UP_HOURS`).
`LEDGERPUSH_WEBHOOK_URL`/`_SECRET` are one more endpoint, for every event.

One delivery run at a time (a Redis lock): it fans new events out to each endpoint's
deliveries, then sends every tenant's oldest due delivery per endpoint, in order.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis.exceptions import LockError

from worker import crypto
from worker.backoff import webhook_backoff
from worker.ledger import webhooks as ledger_webhooks
from worker.ledger.events import event_body
from worker.ledger.models import EventDelivery, OutboundEvent, WebhookEndpoint, utcnow
from worker.ledger.webhooks import (
    SETTINGS_SOURCE,
    EndpointNotFound,
    deliveries_of,
    endpoints_with_deliveries,
    get_endpoint,
    list_endpoints,
    remove_endpoint,
)
from worker.ops.alerts import webhook_endpoint_failing
from worker.ops.events import SETTLE_SECONDS, WEBHOOK_TEST, EventError, aware, kick, parse_types
from worker.settings import get_settings
from worker.signing import signed_headers, signing_secrets
from worker.tasknames import DELIVER_EVENTS_TASK
from worker.transport import dispatch
from worker.transport.redis_client import get_redis

__all__ = [
    "DEFAULT_OVERLAP_HOURS",
    "MAX_OVERLAP_HOURS",
    "SETTINGS_SOURCE",
    "UNCHANGED",
    "Attempt",
    "EndpointNotFound",
    "add_endpoint",
    "deliver_one",
    "deliveries_of",
    "describe",
    "endpoints_with_deliveries",
    "get_endpoint",
    "is_failing",
    "kick",
    "list_endpoints",
    "new_secret",
    "previous_secret_until",
    "remove_endpoint",
    "resend_delivery",
    "rotate_secret",
    "run_deliveries",
    "send_test",
    "set_enabled",
    "signed_headers",
    "signing_secrets",
    "sync_settings_endpoint",
    "update_endpoint",
]

log = logging.getLogger("ledgerpush.webhooks")
WAKEUP_KEY = "lp:events-wakeup"
LOCK_KEY = "lp:events-delivery"
RUN_BUDGET_SECONDS = 60.0
DEFAULT_OVERLAP_HOURS = 24.0
MAX_OVERLAP_HOURS = 24.0 * 30
MAX_WAKEUP_SECONDS = 10.0


# -- subscriptions ---------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise EventError(f"url: must start with http:// or https:// (got {url[:100]!r})")
    if len(url) > 500:
        raise EventError("url: at most 500 characters")
    try:
        host = httpx.URL(url).host
    except httpx.InvalidURL:
        host = ""
    if not host:
        raise EventError("url: not a URL with a host name")
    return url


def add_endpoint(
    url: str, types: str | None = None, tenant_id: str | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint, receiving events from now on; returns it and its secret (shown
    once)."""
    chosen = parse_types(types)
    secret = new_secret()
    endpoint = ledger_webhooks.add_endpoint(
        _check_url(url),
        " ".join(chosen) or "*",
        tenant_id or None,
        crypto.encrypt_json({"current": secret}),
    )
    return endpoint, secret


def describe(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """What the CLI, the API and the dashboard show of an endpoint (never its secrets)."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.event_types,
        "tenant_id": endpoint.tenant_id,
        "source": endpoint.source,
        "enabled": endpoint.enabled,
        "failing": endpoint.failing_alerted,
        "failing_since": _iso(endpoint.failing_since),
        "created_at": _iso(endpoint.created_at),
        "previous_secret_until": _iso(previous_secret_until(endpoint)),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return aware(value).isoformat() if value else None


def previous_secret_until(endpoint: WebhookEndpoint) -> dt.datetime | None:
    """While a rotation's overlap lasts: when the old secret stops signing."""
    if not endpoint.secrets:
        return None
    stored = crypto.decrypt_json(endpoint.secrets)
    until = stored.get("previous_until")
    if not until or str(stored["previous"]) not in signing_secrets(stored):
        return None
    return dt.datetime.fromisoformat(until)


def set_enabled(endpoint_id: int, enabled: bool) -> WebhookEndpoint:
    return ledger_webhooks.change_endpoint(endpoint_id, lambda endpoint: _enable(endpoint, enabled))


def _enable(endpoint: WebhookEndpoint, enabled: bool) -> None:
    endpoint.enabled = enabled
    if enabled:
        endpoint.failing_since, endpoint.failing_alerted = None, False


#: `update_endpoint`'s default for "leave the tenant filter as it is" (None: every tenant).
UNCHANGED = object()


def update_endpoint(
    endpoint_id: int,
    types: str | None = None,
    tenant_id: str | object | None = UNCHANGED,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what an endpoint receives from now on (`types`: comma-separated, "" for
    every type; None leaves them), whose events (`tenant_id`, None for every tenant), or
    whether it is delivered to."""
    chosen = None if types is None else parse_types(types)

    def change(endpoint: WebhookEndpoint) -> None:
        if endpoint.source == SETTINGS_SOURCE and (
            chosen is not None or tenant_id is not UNCHANGED
        ):
            raise EventError("id: the LEDGERPUSH_WEBHOOK_URL endpoint receives every event")
        if chosen is not None:
            endpoint.event_types = " ".join(chosen) or "*"
        if tenant_id is not UNCHANGED:
            endpoint.tenant_id = str(tenant_id) if tenant_id else None
        if enabled is not None:
            _enable(endpoint, enabled)

    return ledger_webhooks.change_endpoint(endpoint_id, change)


def rotate_secret(endpoint_id: int, overlap_hours: float = DEFAULT_OVERLAP_HOURS) -> str:
    """A new secret signs from now on; the old one also signs for `overlap_hours`."""
    if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        raise EventError(f"overlap_hours: between 0 and {MAX_OVERLAP_HOURS:g}")
    secret = new_secret()

    def rotate(endpoint: WebhookEndpoint) -> None:
        if endpoint.source == SETTINGS_SOURCE:
            raise EventError("id: this endpoint's secret is LEDGERPUSH_WEBHOOK_SECRET; change it")
        old = crypto.decrypt_json(endpoint.secrets)["current"]
        until = utcnow() + dt.timedelta(hours=overlap_hours)
        endpoint.secrets = crypto.encrypt_json(
            {"current": secret, "previous": old, "previous_until": until.isoformat()}
        )

    ledger_webhooks.change_endpoint(endpoint_id, rotate)
    return secret


def sync_settings_endpoint() -> None:
    """LEDGERPUSH_WEBHOOK_URL as an endpoint for every event (from when it is first seen)."""
    settings = get_settings()
    url = settings.webhook_url
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""

    def keep_secret(endpoint: WebhookEndpoint) -> None:
        if not secret:
            return
        current = endpoint.secrets and crypto.decrypt_json(endpoint.secrets).get("current")
        if current != secret:
            endpoint.secrets = crypto.encrypt_json({"current": secret})

    ledger_webhooks.sync_settings_endpoint(url, keep_secret)


# -- signing ---------------------------------------------------------------------------


# -- delivery --------------------------------------------------------------------------


def _wake_up_in(seconds: float) -> None:
    seconds = min(max(seconds, 1.0), MAX_WAKEUP_SECONDS)
    if get_redis().set(WAKEUP_KEY, 1, nx=True, px=int(seconds * 1000)):
        _queue_run(seconds)


def _queue_run(countdown: float) -> None:
    dispatch.send(DELIVER_EVENTS_TASK, countdown=countdown)


def run_deliveries() -> int:
    """One delivery run (skipped, and tried again shortly, while another is running);
    returns how many deliveries succeeded."""
    lock = get_redis().lock(LOCK_KEY, timeout=RUN_BUDGET_SECONDS + 60, blocking=False)
    if not lock.acquire():
        _wake_up_in(2.0)
        return 0
    try:
        sync_settings_endpoint()
        delivered = 0
        deadline = time.monotonic() + RUN_BUDGET_SECONDS
        unsettled = False
        for endpoint_id in ledger_webhooks.enabled_endpoint_ids():
            unsettled = ledger_webhooks.fan_out(endpoint_id) or unsettled
            for tenant in ledger_webhooks.tenants_pending(endpoint_id):
                delivered += _deliver_stream(endpoint_id, tenant, deadline)
                if time.monotonic() > deadline:
                    _wake_up_in(1.0)  # the rest in the next run
                    break
        due = ledger_webhooks.next_due()
        if unsettled:
            # Events written after the kick that queued this run (whose own kicks it
            # absorbed) are fanned out by the next one, once settled.
            due = min(due or _settled_at(), _settled_at())
        if due is not None:
            _wake_up_in((due - utcnow()).total_seconds())
        return delivered
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("the event delivery run outlived its lock")


def _settled_at() -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=SETTLE_SECONDS + 0.5)


@dataclass
class Attempt:
    """One post to an endpoint: its outcome and how long the endpoint took to answer."""

    ok: bool
    status_code: int | None
    error: str | None
    response: str | None
    seconds: float = 0.0


def _deliver_stream(endpoint_id: int, tenant_id: str, deadline: float) -> int:
    """The tenant's pending deliveries to the endpoint, oldest first, until one fails
    (or the run's time is up)."""
    delivered = 0
    for delivery_id in ledger_webhooks.pending_in_order(endpoint_id, tenant_id):
        if time.monotonic() > deadline:
            break
        outcome = deliver_one(delivery_id)
        if outcome is None:
            break  # not due yet, or failed now: later ones wait
        delivered += int(outcome)
    return delivered


def deliver_one(delivery_id: int, force: bool = False) -> bool | None:
    """Send one delivery if due (or `force`d): True when delivered, False when it gave up
    (the next one may go), None when it waits (not due, or failed and retries later)."""
    return ledger_webhooks.attempt_delivery(delivery_id, force, _send)


def _send(
    delivery: EventDelivery, endpoint: WebhookEndpoint, event: OutboundEvent, now: dt.datetime
) -> bool | None:
    """Post the delivery's event and record the attempt on the delivery and the
    endpoint's health (in the transaction that read them)."""
    attempt = _post(endpoint, event.event_id, event.payload)
    delivery.attempts += 1
    delivery.last_status_code = attempt.status_code
    delivery.last_error = attempt.error
    delivery.last_response = attempt.response
    _note_health(endpoint, attempt.ok, now)
    if attempt.ok:
        delivery.status, delivery.delivered_at = "delivered", now
        return True
    created = (
        event.created_at if event.created_at.tzinfo else event.created_at.replace(tzinfo=dt.UTC)
    )
    if now - created > dt.timedelta(hours=get_settings().webhook_give_up_hours):
        delivery.status = "failed"
        log.warning("gave up delivering event %s to endpoint %d", event.event_id, endpoint.id)
        return False
    delivery.next_attempt_at = now + dt.timedelta(seconds=webhook_backoff(delivery.attempts))
    return None


def _post(endpoint: WebhookEndpoint, event_id: str, payload: dict[str, Any]) -> Attempt:
    body = json.dumps(payload, sort_keys=True).encode()
    stored = crypto.decrypt_json(endpoint.secrets)
    legacy = endpoint.source == SETTINGS_SOURCE
    headers = signed_headers(event_id, body, stored, legacy=legacy)
    started = time.perf_counter()
    try:
        response = httpx.post(endpoint.url, content=body, headers=headers, timeout=10)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        took = time.perf_counter() - started
        return Attempt(False, None, f"{type(exc).__name__}: {exc}"[:500], None, took)
    took = time.perf_counter() - started
    ok = response.is_success
    error = None if ok else f"HTTP {response.status_code}"
    return Attempt(ok, response.status_code, error, response.text[:1000], took)


def send_test(endpoint_id: int) -> Attempt:
    """Post a signed `webhook.test` event to the endpoint now (enabled or not), outside
    the event order and the outbox: nothing is stored, retried or counted against its
    health. Returns the attempt (status, latency)."""
    endpoint = get_endpoint(endpoint_id)
    data = {
        "endpoint_id": endpoint.id,
        "tenant_id": endpoint.tenant_id,
        "message": "A test event from ledgerpush; no action needed.",
    }
    payload = event_body(WEBHOOK_TEST, data, utcnow(), id_prefix="evt_test_")
    attempt = _post(endpoint, payload["id"], payload)
    answer = f"HTTP {attempt.status_code}" if attempt.status_code else "no answer"
    log.info(
        "test event sent to endpoint %d: %s in %.0f ms", endpoint.id, answer, attempt.seconds * 1000
    )
    return attempt


def _note_health(endpoint: WebhookEndpoint, ok: bool, now: dt.datetime) -> None:
    """An endpoint failing for `LEDGERPUSH_WEBHOOK_FAILING_HOURS` is marked failing and
    alerts once; its first success clears that."""
    if ok:
        endpoint.failing_since, endpoint.failing_alerted = None, False
        return
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        return
    since = endpoint.failing_since
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    hours = get_settings().webhook_failing_hours
    if not endpoint.failing_alerted and now - since > dt.timedelta(hours=hours):
        endpoint.failing_alerted = True
        webhook_endpoint_failing(endpoint.id, endpoint.url, since)


def is_failing(endpoint: WebhookEndpoint) -> bool:
    return endpoint.failing_alerted


def resend_delivery(delivery_id: int) -> None:
    """Send a delivery again now (a delivered one too: receivers de-duplicate on the
    `webhook-id`); it keeps its place in its tenant's order."""
    ledger_webhooks.mark_for_resend(delivery_id)
    kick()
