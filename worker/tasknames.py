"""The names of ledgerpush's Celery queues and tasks (a leaf module: it imports nothing).

The runtime never imports the task modules under `tasks/`; whatever needs a task run
sends it by name through `worker.transport.dispatch.send`, and `worker.transport.app` routes by these names.
"""

from __future__ import annotations

INVOICES_QUEUE = "ledgerpush.invoices"
PAYMENTS_QUEUE = "ledgerpush.payments"
MAINTENANCE_QUEUE = "ledgerpush.maintenance"
BULK_QUEUE = (
    "ledgerpush.bulk"  # a tenant's jobs beyond its fair share (worker/transport/fairness.py)
)
QUEUES = (INVOICES_QUEUE, PAYMENTS_QUEUE, MAINTENANCE_QUEUE, BULK_QUEUE)

INVOICE_TASK = "ledgerpush.invoice"
PAYMENT_TASK = "ledgerpush.payment"
TASK_FOR_KIND = {"invoice": INVOICE_TASK, "credit_note": INVOICE_TASK, "payment": PAYMENT_TASK}
QUEUE_FOR_TASK = {INVOICE_TASK: INVOICES_QUEUE, PAYMENT_TASK: PAYMENTS_QUEUE}

RECONCILE_TASK = "ledgerpush.maintenance.reconcile"
REFRESH_TOKENS_TASK = "ledgerpush.maintenance.refresh_tokens"
REFRESH_TENANT_TASK = "ledgerpush.maintenance.refresh_tenant"
DELIVER_WEBHOOK_TASK = "ledgerpush.maintenance.deliver_webhook"
DELIVER_EVENTS_TASK = "ledgerpush.maintenance.deliver_events"
PURGE_EVENTS_TASK = "ledgerpush.maintenance.purge_events"
PURGE_TASK = "ledgerpush.maintenance.purge"
SYNC_PAYMENTS_TASK = "ledgerpush.maintenance.sync_payments"
SYNC_TENANT_PAYMENTS_TASK = "ledgerpush.maintenance.sync_tenant_payments"
HANDLE_INBOUND_TASK = "ledgerpush.maintenance.handle_inbound"
