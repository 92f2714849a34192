"""Periodic tasks run by `ledgerpush beat`."""

from __future__ import annotations

from celery import Task

from worker.app import app
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


@app.task(name=RECONCILE_TASK)
def reconcile() -> int:
    from worker.alerts import resend_overdue
    from worker.connections import resume_stranded_jobs
    from worker.reconciler import reconcile_stuck_jobs

    return reconcile_stuck_jobs() + resume_stranded_jobs() + resend_overdue()


@app.task(name=REFRESH_TOKENS_TASK)
def refresh_tokens() -> int:
    from worker.auth.proactive import refresh_expiring_tokens

    return refresh_expiring_tokens()


@app.task(
    name=DELIVER_WEBHOOK_TASK,
    bind=True,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=600,
)
def deliver_webhook(self: Task, delivery_id: int) -> bool:
    from worker.alerts import deliver, mark_undeliverable, webhook_backoff

    if deliver(delivery_id):
        return True
    if self.request.retries >= (self.max_retries or 0):
        mark_undeliverable(delivery_id)
        return False
    raise self.retry(countdown=webhook_backoff(self.request.retries + 1))


@app.task(name=DELIVER_EVENTS_TASK)
def deliver_events() -> int:
    from worker.webhooks import run_deliveries

    return run_deliveries()


@app.task(name=PURGE_EVENTS_TASK)
def purge_events() -> int:
    from worker.events import purge_expired
    from worker.settings import get_settings

    return purge_expired(get_settings().event_retention_days)


@app.task(name=REFRESH_TENANT_TASK, bind=True, max_retries=6)
def refresh_tenant_token(self: Task, tenant_id: str) -> bool:
    from worker.auth.proactive import refresh_if_expiring
    from worker.connections import tenant_needs_reauth
    from worker.providers.base import NeedsReauth, Transient

    try:
        return refresh_if_expiring(tenant_id)
    except NeedsReauth as exc:
        tenant_needs_reauth(tenant_id, exc.message)
        return False
    except Transient as exc:
        raise self.retry(countdown=min(300, 5 * 2**self.request.retries), exc=exc) from None


@app.task(name=PURGE_TASK)
def purge() -> int:
    """Daily when LEDGERPUSH_PURGE_AFTER_DAYS is set (see worker/app.py)."""
    import datetime as dt

    from worker.purge import purge as purge_settled
    from worker.settings import get_settings

    days = get_settings().purge_after_days
    if not days:
        return 0
    return purge_settled(dt.timedelta(days=days)).jobs


@app.task(name=SYNC_PAYMENTS_TASK)
def sync_payments() -> int:
    """Queue a payment status sync of every tenant with open invoices (none: no call)."""
    from worker.payment_sync import tenants_with_open_invoices

    tenants = tenants_with_open_invoices()
    for tenant_id in tenants:
        sync_tenant_payments.delay(tenant_id)
    return len(tenants)


@app.task(name=SYNC_TENANT_PAYMENTS_TASK, bind=True, max_retries=3)
def sync_tenant_payments(self: Task, tenant_id: str) -> int:
    from worker.payment_sync import sync_tenant
    from worker.providers.base import NeedsReauth, Transient

    try:
        return len(sync_tenant(tenant_id))
    except NeedsReauth:
        return 0  # the connection is broken (alerted already); the next interval tries
    except Transient as exc:
        raise self.retry(countdown=min(300, 10 * 2**self.request.retries), exc=exc) from None


@app.task(name=HANDLE_INBOUND_TASK, bind=True, max_retries=5)
def handle_inbound(self: Task, notification: str) -> None:
    """An accounting system's notification: re-read what it points at (worker/inbound.py)."""
    from worker.inbound import handle
    from worker.providers.base import Transient

    try:
        handle(notification)
    except Transient as exc:
        raise self.retry(countdown=30 * (self.request.retries + 1)) from exc
