"""The ledger's tables: tenants, jobs (one per tenant + idempotency key), attempts, events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Job states. Terminal ones are never left by the worker itself.
RECEIVED = "received"
RESOLVING = "resolving"
DRAFTING = "drafting"
DRAFTED = "drafted"
BOOKING = "booking"
BOOKED = "booked"
WAITING_FOR_REAUTH = "waiting_for_reauth"
RETRY_SCHEDULED = "retry_scheduled"
FAILED = "failed"
CANCELLED = "cancelled"
TERMINAL_STATES = frozenset({BOOKED, FAILED, CANCELLED})
IN_FLIGHT_STATES = frozenset({RESOLVING, DRAFTING, DRAFTED, BOOKING})
JOB_STATES = (
    RECEIVED,
    RESOLVING,
    DRAFTING,
    DRAFTED,
    BOOKING,
    BOOKED,
    WAITING_FOR_REAUTH,
    RETRY_SCHEDULED,
    FAILED,
    CANCELLED,
)

# Tenant connection states.
CONNECTED = "connected"
REFRESHING = "refreshing"
NEEDS_REAUTH = "needs_reauth"
DISABLED = "disabled"
CONNECTION_STATES = (CONNECTED, REFRESHING, NEEDS_REAUTH, DISABLED)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_utc(value: dt.datetime | None) -> str | None:
    """ISO 8601 with the UTC offset, on every database (SQLite hands back naive values)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    display_name: Mapped[str | None] = mapped_column(String(200))
    connection_state: Mapped[str] = mapped_column(String(20), default=CONNECTED, index=True)
    connection_reason: Mapped[str | None] = mapped_column(Text)
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)
    credentials_version: Mapped[int] = mapped_column(Integer, default=0)
    token_expires_at: Mapped[dt.datetime | None]
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_success_at: Mapped[dt.datetime | None]
    # The remote company this tenant books into (see worker/tenancy/binding.py): its stable id,
    # what identifies it to a person, and the company last picked and refused.
    company_id: Mapped[str | None] = mapped_column(String(100), index=True)
    company: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    company_bound_at: Mapped[dt.datetime | None]
    company_checked_at: Mapped[dt.datetime | None]
    company_refused: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    company_sharing_allowed: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TenantEvent(Base):
    """Audit trail of a tenant: bindings, rebinds, operator permissions."""

    __tablename__ = "tenant_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    note: Mapped[str | None] = mapped_column(Text)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_key"),
        Index("ix_jobs_state_next_retry", "state", "next_retry_at"),
        Index("ix_jobs_tenant_state", "tenant_id", "state"),
        Index("ix_jobs_state_finished", "state", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(30), default=RECEIVED)
    remote: Mapped[dict[str, Any]] = mapped_column(default=dict)
    intent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_retry_at: Mapped[dt.datetime | None]
    # When the job's current run of counted transient failures began (its retry horizon
    # starts here); cleared when an operator retries or replays it.
    retrying_since: Mapped[dt.datetime | None]
    error_category: Mapped[str | None] = mapped_column(String(30))
    error_code: Mapped[str | None] = mapped_column(String(100))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_fields: Mapped[list[Any] | None] = mapped_column(JSON)
    enqueued_at: Mapped[dt.datetime | None]
    #: The API key that sent the job over HTTP (None: queue, CLI or a signed-in user).
    created_by_key: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None]
    #: When `ledgerpush purge` removed the payload's personal data (worker/ops/purge.py).
    purged_at: Mapped[dt.datetime | None]


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(30))
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    calls: Mapped[list[Any]] = mapped_column(default=list)


class JobEvent(Base):
    """State history and operator audit trail of a job."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    from_state: Mapped[str | None] = mapped_column(String(30))
    to_state: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100), default="worker")
    note: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    """Outbound alert webhooks, kept so an operator can see failed deliveries."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(50))
    url: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="operator")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(200))
    #: Space-separated scopes (worker/web/access.py).
    scopes: Mapped[str] = mapped_column(String(200), default="jobs:write")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)


class OutboundEvent(Base):
    """What happened, for producers: written in the same transaction as the change that
    caused it (a transactional outbox), delivered by webhook and readable as a feed."""

    __tablename__ = "events"

    #: The feed's cursor: events are read in this order.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The Standard Webhooks `webhook-id`, the same on every delivery of the event.
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(50), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    payload: Mapped[dict[str, Any]]


class WebhookEndpoint(Base):
    """A subscriber: the events it wants (space-separated types, or `*`), optionally of
    one tenant, and its signing secrets (encrypted; during a rotation both sign)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(500))
    event_types: Mapped[str] = mapped_column(String(500), default="*")
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    #: "api" for endpoints added by an operator, "settings" for LEDGERPUSH_WEBHOOK_URL.
    source: Mapped[str] = mapped_column(String(20), default="api")
    enabled: Mapped[bool] = mapped_column(default=True)
    secrets: Mapped[bytes] = mapped_column(LargeBinary)
    #: The last event id fanned out to this endpoint's deliveries.
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[dt.datetime | None]
    failing_alerted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class EventDelivery(Base):
    """One event to one endpoint: delivered in event order per tenant per endpoint."""

    __tablename__ = "event_deliveries"
    __table_args__ = (UniqueConstraint("endpoint_id", "event_pk"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_pk: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_response: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None]


class TrackedInvoice(Base):
    """An invoice ledgerpush booked whose payment status is read back from the books
    (worker/ops/payment_sync.py) until it is paid; `remaining` is a decimal string."""

    __tablename__ = "tracked_invoices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    remote_id: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str | None] = mapped_column(String(3))
    remaining: Mapped[str | None] = mapped_column(String(40))
    paid: Mapped[bool] = mapped_column(default=False, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    changed_at: Mapped[dt.datetime | None]


class PaymentSync(Base):
    """Per tenant: when its payment status was last read, and from when the next read
    asks for changes."""

    __tablename__ = "payment_syncs"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sync_at: Mapped[dt.datetime | None]
    changed_since: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
