"""Rows of alert webhook deliveries: recording one, reading them, and changing one in
its own transaction (the delivery attempt itself is worker/ops/alerts.py's)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from sqlalchemy import select

from worker.ledger.db import read_session, session
from worker.ledger.models import WebhookDelivery

T = TypeVar("T")


def insert_webhook_delivery(event: str, url: str, payload: dict[str, Any]) -> int:
    """Record a delivery to make; returns its id (committed before this returns)."""
    with session() as db:
        delivery = WebhookDelivery(event=event, url=url, payload=payload)
        db.add(delivery)
        db.flush()
        return delivery.id


def deliveries_created_before(
    statuses: Collection[str], before: dt.datetime, limit: int
) -> list[WebhookDelivery]:
    """Deliveries in one of `statuses` created before `before`, oldest first."""
    with read_session() as db:
        return list(
            db.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.status.in_(statuses),
                    WebhookDelivery.created_at < before,
                )
                .order_by(WebhookDelivery.id)
                .limit(limit)
            )
        )


def newest_deliveries(status: str | None, limit: int) -> list[WebhookDelivery]:
    """Deliveries, newest first, optionally of one status."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if status:
        query = query.where(WebhookDelivery.status == status)
    with read_session() as db:
        return list(db.scalars(query))


def change_webhook_delivery(delivery_id: int, change: Callable[[WebhookDelivery | None], T]) -> T:
    """Run `change` on the delivery (None: no such row) in one transaction, committed
    when it returns, rolled back when it raises; returns what `change` returns."""
    with session() as db:
        return change(db.get(WebhookDelivery, delivery_id))
