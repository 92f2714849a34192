"""Job outcome events, written in the transaction of the change that causes them (a
transactional outbox): the store's state changes call `record_job_outcome`, the payment
sync `record_payment_change`. Also the event feed's read model and the retention purge.

Every event body is `{"id", "type", "created", "timestamp", "data"}`; `data` always names
the job, its tenant, idempotency key and kind, so a producer can match it to what it sent.
Having written events delivered is not the ledger's: after a commit that wrote some, the
store calls `written()`, which calls what registered with `after_commit`
(worker/ops/events.py registers the kick that has them delivered).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, exists, func, insert, select

from worker.explain import explain
from worker.ledger.db import engine, read_session
from worker.ledger.models import (
    BOOKED,
    CANCELLED,
    FAILED,
    WAITING_FOR_REAUTH,
    EventDelivery,
    OutboundEvent,
    TrackedInvoice,
    utcnow,
)

JOB_BOOKED = "job.booked"
JOB_FAILED = "job.failed"
JOB_CANCELLED = "job.cancelled"
JOB_WAITING_FOR_REAUTH = "job.waiting_for_reauth"
JOB_NEEDS_REVIEW = "job.needs_review"
INVOICE_PAYMENT_CHANGED = "invoice.payment_changed"
INVOICE_PAID = "invoice.paid"
#: Sent by an endpoint's test-send only; never stored, never subscribed to.
WEBHOOK_TEST = "webhook.test"
EVENT_TYPES = (
    JOB_BOOKED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_WAITING_FOR_REAUTH,
    JOB_NEEDS_REVIEW,
    INVOICE_PAYMENT_CHANGED,
    INVOICE_PAID,
)
#: The states whose arrival makes an event (the store asks before reading anything).
OUTCOME_STATES = frozenset({BOOKED, FAILED, CANCELLED, WAITING_FOR_REAUTH})
#: Events are read (feed, webhook fan-out) only once this old: a transaction that took
#: its id earlier may commit a moment after a later one, and a cursor must not skip it.
SETTLE_SECONDS = 2.0
#: Called, in order, after a transaction that wrote events committed.
_AFTER_COMMIT: list[Callable[[], None]] = []

EVENTS: Table = OutboundEvent.__table__  # type: ignore[assignment]
TRACKED: Table = TrackedInvoice.__table__  # type: ignore[assignment]
_INSERT = insert(EVENTS)
# Built once per process: every booked invoice runs these.
_IS_TRACKED = select(exists().where(TRACKED.c.job_id == bindparam("t_job_id")))
_INSERT_TRACKED = insert(TRACKED)


def after_commit(callback: Callable[[], None]) -> None:
    """Have `callback` called after every commit that wrote events (once, however often
    it is registered)."""
    if callback not in _AFTER_COMMIT:
        _AFTER_COMMIT.append(callback)


def written() -> None:
    """After a transaction that wrote events committed."""
    for callback in _AFTER_COMMIT:
        callback()


def record_job_outcome(
    conn: Connection, job: Mapping[str, Any], from_state: str | None, to_state: str
) -> bool:
    """Called by the ledger store inside the transaction of a state change; writes the
    event the change makes, if any, and says whether it wrote one."""
    if to_state == from_state or to_state not in OUTCOME_STATES:
        return False
    kind = _event_type(job, to_state)
    if kind == JOB_WAITING_FOR_REAUTH and _already_parked_once(conn, str(job["id"])):
        return False
    data = {**_job_data(job, to_state), **_details(kind, job)}
    conn.execute(_INSERT, _row(kind, str(job["tenant_id"]), str(job["id"]), data))
    if kind == JOB_BOOKED and job.get("kind") == "invoice":
        _track_payment_status(conn, job, data)
    return True


def _track_payment_status(conn: Connection, job: Mapping[str, Any], data: dict[str, Any]) -> None:
    """From now on the invoice's payment status is read back from the books."""
    ids = data["document"]["ids"]
    remote_id = ids.get("id") or ids.get("number")
    if remote_id is None:
        return
    totals = data.get("totals") or {}
    row = {
        "tenant_id": job["tenant_id"],
        "job_id": job["id"],
        "idempotency_key": job["idempotency_key"],
        "remote_id": str(remote_id),
        "currency": totals.get("currency"),
        "remaining": totals.get("gross"),
        "paid": False,
        "created_at": utcnow(),
    }
    if not conn.execute(_IS_TRACKED, {"t_job_id": job["id"]}).scalar():
        conn.execute(_INSERT_TRACKED, row)


def record_payment_change(conn: Connection, tracked: Mapping[str, Any], remaining: Decimal) -> str:
    """An invoice's remaining amount changed in the books: `invoice.paid` when nothing
    is left, else `invoice.payment_changed`; returns the type written."""
    kind = INVOICE_PAID if remaining <= 0 else INVOICE_PAYMENT_CHANGED
    data = {
        "job_id": tracked["job_id"],
        "tenant_id": tracked["tenant_id"],
        "idempotency_key": tracked["idempotency_key"],
        "kind": "invoice",
        "remote_id": tracked["remote_id"],
        "currency": tracked["currency"],
        "remaining": str(remaining),
        "previous_remaining": tracked["remaining"],
    }
    conn.execute(_INSERT, _row(kind, str(tracked["tenant_id"]), str(tracked["job_id"]), data))
    return kind


def _event_type(job: Mapping[str, Any], to_state: str) -> str:
    if to_state == BOOKED:
        return JOB_BOOKED
    if to_state == CANCELLED:
        return JOB_CANCELLED
    if to_state == WAITING_FOR_REAUTH:
        return JOB_WAITING_FOR_REAUTH
    return JOB_NEEDS_REVIEW if job.get("error_category") == "needs_review" else JOB_FAILED


def _already_parked_once(conn: Connection, job_id: str) -> bool:
    query = select(
        exists().where(EVENTS.c.job_id == job_id, EVENTS.c.type == JOB_WAITING_FOR_REAUTH)
    )
    return bool(conn.execute(query).scalar())


def event_body(
    kind: str, data: dict[str, Any], now: dt.datetime, id_prefix: str = "evt_"
) -> dict[str, Any]:
    """The body every event is sent with, under a new id."""
    return {
        "id": f"{id_prefix}{uuid.uuid4().hex}",
        "type": kind,
        "created": int(now.timestamp()),
        "timestamp": now.isoformat(),
        "data": data,
    }


def _row(kind: str, tenant_id: str, job_id: str | None, data: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    body = event_body(kind, data, now)
    return {
        "event_id": body["id"],
        "type": kind,
        "tenant_id": tenant_id,
        "job_id": job_id,
        "created_at": now,
        "payload": body,
    }


def _job_data(job: Mapping[str, Any], state: str) -> dict[str, Any]:
    return {
        "job_id": job["id"],
        "tenant_id": job["tenant_id"],
        "idempotency_key": job["idempotency_key"],
        "kind": job["kind"],
        "state": state,
        "provider": job.get("provider"),
    }


def _details(kind: str, job: Mapping[str, Any]) -> dict[str, Any]:
    if kind == JOB_BOOKED:
        return booked_details(job.get("kind") or "", job.get("remote") or {})
    if kind in (JOB_FAILED, JOB_NEEDS_REVIEW):
        return _failure(job)
    if kind == JOB_WAITING_FOR_REAUTH:
        return {"reason": job.get("error_message")}
    return {}


def booked_details(kind: str, remote: Mapping[str, Any]) -> dict[str, Any]:
    """The remote document as booked: its number and ids, and its totals when the
    provider reported them (money as decimal strings)."""
    if kind == "payment":
        return {"payment": dict(remote.get("pay") or {})}
    booked = dict(remote.get("book") or {})
    totals = booked.pop("totals", None)
    return {
        "document": {"number": booked.get("number"), "ids": booked, "draft": remote.get("draft")},
        "totals": _money(totals) if isinstance(totals, Mapping) else None,
    }


def _money(totals: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"currency": totals.get("currency")}
    for name in ("net", "vat", "gross"):
        try:
            out[name] = str(Decimal(str(totals[name])).quantize(Decimal("0.01")))
        except (KeyError, InvalidOperation):
            out[name] = None
    return out


def _failure(job: Mapping[str, Any]) -> dict[str, Any]:
    explained = explain(
        job.get("error_category"),
        job.get("error_code"),
        job.get("error_message"),
        job.get("error_fields"),
    )
    return {
        "error": {
            "category": job.get("error_category"),
            "code": job.get("error_code"),
            "message": job.get("error_message"),
            "fields": job.get("error_fields") or [],
        },
        "explanation": None
        if explained is None
        else {"title": explained.title, "text": explained.text, "fix": explained.fix},
    }


def feed(
    after: int = 0, types: tuple[str, ...] = (), tenant: str | None = None, limit: int = 100
) -> list[OutboundEvent]:
    """Events after the cursor `after`, oldest first (settled ones only)."""
    settled = utcnow() - dt.timedelta(seconds=SETTLE_SECONDS)
    # The first event not settled yet ends the page, even one of other types or tenants:
    # no cursor may pass an id whose transaction could still commit.
    unsettled = select(func.min(EVENTS.c.id)).where(
        EVENTS.c.id > after, EVENTS.c.created_at > settled
    )
    query = select(OutboundEvent).where(OutboundEvent.id > after).order_by(OutboundEvent.id)
    with read_session() as db:
        stop = db.scalar(unsettled)
        if stop is not None:
            query = query.where(OutboundEvent.id < stop)
        if types:
            query = query.where(OutboundEvent.type.in_(types))
        if tenant:
            query = query.where(OutboundEvent.tenant_id == tenant)
        return list(db.scalars(query.limit(limit)))


def aware(value: dt.datetime) -> dt.datetime:
    """A timestamp read back from SQLite (naive, UTC) made comparable."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def purge_expired(retention_days: int) -> int:
    """Drop events (and their deliveries) older than the retention period."""
    cutoff = utcnow() - dt.timedelta(days=retention_days)
    old = select(EVENTS.c.id).where(EVENTS.c.created_at < cutoff)
    deliveries: Table = EventDelivery.__table__  # type: ignore[assignment]
    with engine().begin() as conn:
        conn.execute(delete(deliveries).where(deliveries.c.event_pk.in_(old)))
        result = conn.execute(delete(EVENTS).where(EVENTS.c.created_at < cutoff))
    return int(result.rowcount or 0)
