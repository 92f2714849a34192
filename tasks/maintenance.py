"""Periodic tasks run by `ledgerpush beat`."""

from __future__ import annotations

from celery import Task

from worker.auth.proactive import refresh_expiring_tokens, refresh_if_expiring
from worker.backoff import webhook_backoff
from worker.ops.alert_delivery import deliver, mark_undeliverable, resend_overdue
from worker.ops.events import purge_expired
from worker.ops.inbound import handle
from worker.ops.payment_sync import sync_tenant, tenants_with_open_invoices
from worker.ops.purge import purge as purge_settled
from worker.ops.reconciler import reconcile_stuck_jobs
from worker.ops.webhooks import run_deliveries
from worker.providers.base import NeedsReauth, Transient
from worker.settings import get_settings
from worker.tasknames import (
    DELIVER_EVENTS_TASK,
    DELIVER_WEBHOOK_TASK,
    HANDLE_INBOUND_TASK,
    PURGE_EVENTS_TASK,
    PURGE_TASK,
    RECONCILE_TASK,
    REFRESH_TENANT_TASK,
    REFRESH_TOKENS_TASK,
    SYNC_PAYMENTS_TASK,
    SYNC_TENANT_PAYMENTS_TASK,
)
from worker.tenancy.connections import resume_stranded_jobs, tenant_needs_reauth
from worker.transport.app import app


@app.task(name=RECONCILE_TASK)
def reconcile() -> int:
    return reconcile_stuck_jobs() + resume_stranded_jobs() + resend_overdue()


@app.task(name=REFRESH_TOKENS_TASK)
def refresh_tokens() -> int:
    return refresh_expiring_tokens()


@app.task(
    name=DELIVER_WEBHOOK_TASK,
    bind=True,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=600,
)
def deliver_webhook(self: Task, delivery_id: int) -> bool:
    if deliver(delivery_id):
        return True
    if self.request.retries >= (self.max_retries or 0):
        mark_undeliverable(delivery_id)
        return False
    raise self.retry(countdown=webhook_backoff(self.request.retries + 1))


@app.task(name=DELIVER_EVENTS_TASK)
def deliver_events() -> int:
    return run_deliveries()


@app.task(name=PURGE_EVENTS_TASK)
def purge_events() -> int:
    return purge_expired(get_settings().event_retention_days)


@app.task(name=REFRESH_TENANT_TASK, bind=True, max_retries=6)
def refresh_tenant_token(self: Task, tenant_id: str) -> bool:
    try:
        return refresh_if_expiring(tenant_id)
    except NeedsReauth as exc:
        tenant_needs_reauth(tenant_id, exc.message)
        return False
    except Transient as exc:
        raise self.retry(countdown=min(300, 5 * 2**self.request.retries), exc=exc) from None


@app.task(name=PURGE_TASK)
def purge() -> int:
    """Daily when LEDGERPUSH_PURGE_AFTER_DAYS is set (see worker/transport/app.py)."""
    import datetime as dt

    days = get_settings().purge_after_days
    if not days:
        return 0
    return purge_settled(dt.timedelta(days=days)).jobs


@app.task(name=SYNC_PAYMENTS_TASK)
def sync_payments() -> int:
    """Queue a payment status sync of every tenant with open invoices (none: no call)."""
    tenants = tenants_with_open_invoices()
    for tenant_id in tenants:
        sync_tenant_payments.delay(tenant_id)
    return len(tenants)


@app.task(name=SYNC_TENANT_PAYMENTS_TASK, bind=True, max_retries=3)
def sync_tenant_payments(self: Task, tenant_id: str) -> int:
    try:
        return len(sync_tenant(tenant_id))
    except NeedsReauth:
        return 0  # the connection is broken (alerted already); the next interval tries
    except Transient as exc:
        raise self.retry(countdown=min(300, 10 * 2**self.request.retries), exc=exc) from None


@app.task(name=HANDLE_INBOUND_TASK, bind=True, max_retries=5)
def handle_inbound(self: Task, notification: str) -> None:
    """An accounting system's notification: re-read what it points at (worker/ops/inbound.py)."""
    try:
        handle(notification)
    except Transient as exc:
        raise self.retry(countdown=30 * (self.request.retries + 1)) from exc
