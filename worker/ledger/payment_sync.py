"""Read models and writes of the payment sync (worker/ops/payment_sync.py): the invoices
still open per tenant, each tenant's sync state, and applying the remaining amounts the
books reported together with their events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Table, select, update

from worker.ledger import events
from worker.ledger.db import engine, read_session, session
from worker.ledger.models import PaymentSync, TrackedInvoice, utcnow

TRACKED: Table = TrackedInvoice.__table__  # type: ignore[assignment]


def tenants_with_open_invoices() -> list[str]:
    query = select(TrackedInvoice.tenant_id).where(TrackedInvoice.paid.is_(False)).distinct()
    with read_session() as db:
        return list(db.scalars(query))


def open_invoices(tenant_id: str) -> list[TrackedInvoice]:
    query = select(TrackedInvoice).where(
        TrackedInvoice.tenant_id == tenant_id, TrackedInvoice.paid.is_(False)
    )
    with read_session() as db:
        return list(db.scalars(query.order_by(TrackedInvoice.id)))


def apply_remaining_amounts(tracked: list[TrackedInvoice], seen: dict[str, Decimal]) -> list[str]:
    """Each changed remaining amount and its event, in one transaction; returns the
    event types written."""
    written = []
    now = utcnow()
    with engine().begin() as conn:
        for row in tracked:
            remaining = seen.get(row.remote_id)
            if remaining is None:
                continue
            before = None if row.remaining is None else Decimal(row.remaining)
            if before is not None and before == remaining:
                continue
            paid = remaining <= 0
            if before is not None:  # unknown before (not reported at booking): a baseline
                current = {c.name: getattr(row, c.name) for c in TRACKED.c}
                written.append(events.record_payment_change(conn, current, remaining))
            conn.execute(
                update(TRACKED)
                .where(TRACKED.c.id == row.id)
                .values(remaining=str(remaining), paid=paid, changed_at=now)
            )
    return written


def sync_state(tenant_id: str) -> PaymentSync:
    """The tenant's sync state (a new, unsaved one before its first sync)."""
    with read_session() as db:
        found = db.get(PaymentSync, tenant_id)
        if found is None:
            return PaymentSync(tenant_id=tenant_id)
        db.expunge(found)  # made timezone-aware below for the caller, not written back
        if found.changed_since is not None:
            found.changed_since = events.aware(found.changed_since)
        return found


def save_sync_state(
    tenant_id: str, synced: dt.datetime | None, since: dt.datetime | None, error: str | None
) -> None:
    with session() as db:
        found = db.get(PaymentSync, tenant_id)
        if found is None:
            found = PaymentSync(tenant_id=tenant_id)
            db.add(found)
        found.last_sync_at, found.changed_since, found.last_error = synced, since, error
