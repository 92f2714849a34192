"""Periodic tasks run by `ledgerpush beat`."""

from __future__ import annotations

from celery import Task

from worker.app import app


@app.task(name="ledgerpush.maintenance.reconcile")
def reconcile() -> int:
    from worker.alerts import resend_overdue
    from worker.connections import resume_stranded_jobs
    from worker.reconciler import reconcile_stuck_jobs

    return reconcile_stuck_jobs() + resume_stranded_jobs() + resend_overdue()


@app.task(name="ledgerpush.maintenance.refresh_tokens")
def refresh_tokens() -> int:
    from worker.auth.proactive import refresh_expiring_tokens

    return refresh_expiring_tokens()


@app.task(
    name="ledgerpush.maintenance.deliver_webhook",
    bind=True,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=600,
)
def deliver_webhook(self: Task, delivery_id: int) -> bool:
    from worker.alerts import deliver, mark_undeliverable

    if deliver(delivery_id):
        return True
    if self.request.retries >= (self.max_retries or 0):
        mark_undeliverable(delivery_id)
        return False
    raise self.retry(countdown=min(600, 2 ** (self.request.retries + 1)))


@app.task(name="ledgerpush.maintenance.refresh_tenant", bind=True, max_retries=6)
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


@app.task(name="ledgerpush.maintenance.purge")
def purge() -> int:
    """Daily when LEDGERPUSH_PURGE_AFTER_DAYS is set (see worker/app.py)."""
    import datetime as dt

    from worker.purge import purge as purge_settled
    from worker.settings import get_settings

    days = get_settings().purge_after_days
    if not days:
        return 0
    return purge_settled(dt.timedelta(days=days)).jobs
