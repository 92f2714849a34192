"""Webhook endpoints and event deliveries (worker/ops/webhooks.py): the endpoint rows, the
fan-out of settled events into deliveries, and the delivery run's reads. Checks,
secrets and the posting itself are the caller's, passed in where they belong to the
transaction that reads or changes the rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.ledger.db import read_session, session
from worker.ledger.events import SETTLE_SECONDS, aware
from worker.ledger.models import EventDelivery, OutboundEvent, WebhookEndpoint, utcnow

#: The source of the endpoint LEDGERPUSH_WEBHOOK_URL configures.
SETTINGS_SOURCE = "settings"
#: How many settled events one fan-out moves an endpoint's cursor over at most.
FAN_OUT_BATCH = 5000
#: How many of a tenant's pending deliveries one delivery run reads at a time.
PENDING_BATCH = 500


class EndpointNotFound(LookupError):
    pass


# -- endpoints -------------------------------------------------------------------------


def add_endpoint(
    url: str, event_types: str, tenant_id: str | None, secrets: bytes
) -> WebhookEndpoint:
    """A new endpoint, receiving the events written from now on (its cursor is the
    last event's id, read in the same transaction)."""
    with session() as db:
        endpoint = WebhookEndpoint(
            url=url,
            event_types=event_types,
            tenant_id=tenant_id,
            source="api",
            enabled=True,
            secrets=secrets,
            cursor=_last_event_id(db),
            failing_alerted=False,
        )
        db.add(endpoint)
        db.flush()
    return endpoint


def _last_event_id(db: Session) -> int:
    return int(db.scalar(select(func.coalesce(func.max(OutboundEvent.id), 0))) or 0)


def list_endpoints() -> list[WebhookEndpoint]:
    with read_session() as db:
        return list(db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    with read_session() as db:
        return _get(db, endpoint_id)


def change_endpoint(endpoint_id: int, change: Callable[[WebhookEndpoint], None]) -> WebhookEndpoint:
    """Apply `change` (which may check the endpoint and raise) to the endpoint in one
    transaction; returns the endpoint as changed."""
    with session() as db:
        endpoint = _get(db, endpoint_id)
        change(endpoint)
        return endpoint


def remove_endpoint(endpoint_id: int) -> None:
    """The endpoint and its deliveries."""
    with session() as db:
        endpoint = _get(db, endpoint_id)
        for delivery in db.scalars(
            select(EventDelivery).where(EventDelivery.endpoint_id == endpoint_id)
        ):
            db.delete(delivery)
        db.delete(endpoint)


def _get(db: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def sync_settings_endpoint(url: str | None, keep_secret: Callable[[WebhookEndpoint], None]) -> None:
    """The configured URL as the one enabled settings endpoint for every event (from
    when it is first seen), other settings endpoints disabled; `keep_secret` brings the
    endpoint's secret up to date in the same transaction."""
    with session() as db:
        rows = db.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.source == SETTINGS_SOURCE)
        ).all()
        found = None
        for row in rows:
            if row.url == url and url:
                found = row
            elif url:
                row.enabled = False  # a URL no longer configured
        if url and found is None:
            found = WebhookEndpoint(
                url=url, event_types="*", source=SETTINGS_SOURCE, enabled=True,
                cursor=_last_event_id(db), failing_alerted=False, secrets=b"",
            )  # fmt: skip
            db.add(found)
        if found is not None:
            # The configured URL is on while configured (unset the variable to stop it).
            found.enabled = True
            keep_secret(found)


# -- the delivery run ------------------------------------------------------------------


def enabled_endpoint_ids() -> list[int]:
    with read_session() as db:
        query = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
        return list(db.scalars(query.order_by(WebhookEndpoint.id)))


def fan_out(endpoint_id: int) -> bool:
    """Deliveries for the settled events after the endpoint's cursor that it wants;
    True when events too new to be settled are left for a later run."""
    settled = utcnow() - dt.timedelta(seconds=SETTLE_SECONDS)
    with session() as db:
        endpoint = _get(db, endpoint_id)
        query = (
            select(
                OutboundEvent.id,
                OutboundEvent.type,
                OutboundEvent.tenant_id,
                OutboundEvent.created_at,
            )
            .where(OutboundEvent.id > endpoint.cursor)
            .order_by(OutboundEvent.id)
            .limit(FAN_OUT_BATCH)
        )
        types = set(endpoint.event_types.split())
        for event_pk, kind, tenant_id, created_at in db.execute(query).tuples():
            if aware(created_at) > settled:
                return True  # this one and the ones after it: next run
            endpoint.cursor = event_pk
            if "*" not in types and kind not in types:
                continue
            if endpoint.tenant_id and endpoint.tenant_id != tenant_id:
                continue
            db.add(EventDelivery(endpoint_id=endpoint_id, event_pk=event_pk, tenant_id=tenant_id))
    return False


def tenants_pending(endpoint_id: int) -> list[str]:
    """The tenants with deliveries pending to the endpoint."""
    query = (
        select(EventDelivery.tenant_id)
        .where(EventDelivery.endpoint_id == endpoint_id, EventDelivery.status == "pending")
        .distinct()
    )
    with read_session() as db:
        return list(db.scalars(query))


def next_due() -> dt.datetime | None:
    """When the earliest pending delivery is due."""
    with read_session() as db:
        due = db.scalar(
            select(func.min(EventDelivery.next_attempt_at)).where(EventDelivery.status == "pending")
        )
    if due is not None and due.tzinfo is None:
        due = due.replace(tzinfo=dt.UTC)
    return due


def pending_in_order(endpoint_id: int, tenant_id: str) -> list[int]:
    """Ids of the tenant's pending deliveries to the endpoint, in event order."""
    query = (
        select(EventDelivery.id)
        .where(
            EventDelivery.endpoint_id == endpoint_id,
            EventDelivery.tenant_id == tenant_id,
            EventDelivery.status == "pending",
        )
        .order_by(EventDelivery.event_pk)
        .limit(PENDING_BATCH)
    )
    with read_session() as db:
        return list(db.scalars(query))


#: Sends a delivery and records the outcome on its rows (same transaction); what
#: `attempt_delivery` returns.
Send = Callable[[EventDelivery, WebhookEndpoint, OutboundEvent, dt.datetime], bool | None]


def attempt_delivery(delivery_id: int, force: bool, send: Send) -> bool | None:
    """In one transaction: the delivery, when it is due (or `force`d) and not delivered
    yet, handed to `send` with its endpoint and event. True when there is nothing left
    to send, None when it is not due yet, else what `send` returns."""
    now = utcnow()
    with session() as db:
        delivery = db.get(EventDelivery, delivery_id)
        if delivery is None or delivery.status == "delivered":
            return True
        due = delivery.next_attempt_at
        if due.tzinfo is None:
            due = due.replace(tzinfo=dt.UTC)
        if due > now and not force:
            return None
        endpoint = _get(db, delivery.endpoint_id)
        event = db.get(OutboundEvent, delivery.event_pk)
        assert event is not None
        return send(delivery, endpoint, event, now)


def deliveries_of(endpoint_id: int, limit: int = 50) -> list[EventDelivery]:
    """The endpoint's latest deliveries, newest first."""
    with read_session() as db:
        query = (
            select(EventDelivery)
            .where(EventDelivery.endpoint_id == endpoint_id)
            .order_by(EventDelivery.id.desc())
            .limit(limit)
        )
        return list(db.scalars(query))


def mark_for_resend(delivery_id: int) -> None:
    """The delivery pending again and due now, in its place in its tenant's order."""
    with session() as db:
        delivery = db.get(EventDelivery, delivery_id)
        if delivery is None:
            raise EndpointNotFound(f"no event delivery {delivery_id}")
        delivery.status, delivery.next_attempt_at = "pending", utcnow()


def endpoints_with_deliveries(limit: int = 20) -> list[tuple[WebhookEndpoint, list[Any]]]:
    """Each endpoint and its latest deliveries with their events."""
    found = []
    with read_session() as db:
        for endpoint in db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)):
            query = (
                select(EventDelivery, OutboundEvent)
                .join(OutboundEvent, OutboundEvent.id == EventDelivery.event_pk)
                .where(EventDelivery.endpoint_id == endpoint.id)
                .order_by(EventDelivery.id.desc())
                .limit(limit)
            )
            found.append((endpoint, list(db.execute(query).tuples())))
    return found
