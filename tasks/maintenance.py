"""Periodic tasks run by `ledgerpush beat`."""

from __future__ import annotations

from celery import Task

from worker.app import app


@app.task(name="ledgerpush.maintenance.reconcile")
def reconcile() -> int:
    from worker.reconciler import reconcile_stuck_jobs

    return reconcile_stuck_jobs()


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
