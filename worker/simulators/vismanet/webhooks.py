"""Webhook notifications as the Visma Webhook Dispatcher sends them: a JSON body naming
the event and the entity, signed with HMAC-SHA256 under the subscription's secret
(`x-vwd-signature-v1`, base64), with the dispatcher's `x-vwd-*` headers. Non-2xx answers
are retried a few times; every attempt is recorded for tests."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

CUSTOMER_CHANGED = "Customer.Changed"
AR_INVOICE_STATUS_CHANGED = "ArInvoice.StatusChanged"


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@dataclass
class Subscription:
    id: str
    url: str
    secret: str
    events: frozenset[str] | None  # None: every event
    tenant_id: str | None  # None: every tenant


@dataclass
class Delivery:
    notification_id: str
    subscription_id: str
    event: str
    tenant_id: str
    body: dict[str, Any]
    attempts: list[int] = field(default_factory=list)  # status per attempt, 0 = no answer


class WebhookSender:
    def __init__(self, application_id: str = "ledgerpush") -> None:
        self.application_id = application_id
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self.retries = 3
        self.retry_interval_seconds = 0.5
        self._queue: queue.Queue[tuple[Subscription, Delivery]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def subscribe(self, url: str, secret: str, events: list[str] | None = None,
                  tenant_id: str | None = None) -> Subscription:  # fmt: skip
        sub = Subscription(str(uuid.uuid4()), url, secret,
                           frozenset(events) if events else None, tenant_id)  # fmt: skip
        with self._lock:
            self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, subscription_id: str) -> None:
        with self._lock:
            self.subscriptions.pop(subscription_id, None)

    def clear(self) -> None:
        """No subscriptions, no recorded deliveries, nothing waiting to be sent."""
        with self._lock:
            self.subscriptions.clear()
            self.deliveries.clear()
        while not self._queue.empty():
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()

    def notify(self, event: str, tenant_id: str, entity: str, number: str) -> None:
        with self._lock:
            targets = [
                s for s in self.subscriptions.values()
                if (s.events is None or event in s.events) and s.tenant_id in (None, tenant_id)
            ]  # fmt: skip
        for sub in targets:
            body = {"event": event, "tenantId": tenant_id, "entity": entity, "number": number,
                    "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
            delivery = Delivery(str(uuid.uuid4()), sub.id, event, tenant_id, body)
            with self._lock:
                self.deliveries.append(delivery)
            self._queue.put((sub, delivery))
        if targets:
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="vismanet-wh", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        with httpx.Client(timeout=5) as client:
            while True:
                sub, delivery = self._queue.get()
                self._deliver(client, sub, delivery)

    def _deliver(self, client: httpx.Client, sub: Subscription, delivery: Delivery) -> None:
        raw = json.dumps(delivery.body, separators=(",", ":")).encode()
        event_id = str(uuid.uuid4())
        for attempt in range(self.retries + 1):
            now = datetime.now(UTC).isoformat()
            headers = {
                "content-type": "application/json",
                "x-vwd-signature-v1": signature(sub.secret, raw),
                "x-vwd-notification-id": delivery.notification_id,
                "x-vwd-event-id": event_id,
                "x-vwd-tenant-id": delivery.tenant_id,
                "x-vwd-subscription-id": sub.id,
                "x-vwd-application-id": self.application_id,
                "x-vwd-notification-timestamp": delivery.body["timestamp"],
                "x-vwd-webhook-timestamp": now,
            }
            try:
                status = client.post(sub.url, content=raw, headers=headers).status_code
            except httpx.HTTPError:
                status = 0
            delivery.attempts.append(status)
            if 200 <= status < 300:
                return
            if attempt < self.retries:
                time.sleep(self.retry_interval_seconds * (2**attempt))

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {"notificationId": d.notification_id, "subscriptionId": d.subscription_id,
                 "event": d.event, "tenantId": d.tenant_id, "body": d.body,
                 "attempts": list(d.attempts)}
                for d in self.deliveries
            ]  # fmt: skip
