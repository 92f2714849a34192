"""Payment status back from the books: `invoice.payment_changed` / `invoice.paid` when the
remaining amount of an invoice ledgerpush booked changes in the accounting system (a
payment registered by the bookkeeper or by bank reconciliation, a credit note applied).

Per tenant and incremental: only invoices still open are asked about, so a tenant with
none costs no call. How the amounts are read is the provider's (`ProviderSpec.payment_sync`:
eAccounting reads the invoices changed since the last look, e-conomic each open booked
invoice's `remainder`); calls go through the provider's HTTP client, within the tenant's
rate limits.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.ledger.models import TrackedInvoice, utcnow
from worker.ledger.payment_sync import (
    apply_remaining_amounts,
    open_invoices,
    save_sync_state,
    sync_state,
    tenants_with_open_invoices,
)
from worker.ops import events
from worker.providers import provider_for
from worker.providers.registry import spec_for
from worker.settings import get_settings
from worker.tasknames import SYNC_TENANT_PAYMENTS_TASK
from worker.tenancy.tenants import get_tenant
from worker.transport import dispatch

__all__ = [
    "open_invoices",
    "queue_sync",
    "remaining_amounts",
    "sync_status",
    "sync_tenant",
    "tenants_with_open_invoices",
]

log = logging.getLogger("ledgerpush.payments")
#: Read changes from a little before the last look: the clocks of two systems differ.
OVERLAP = dt.timedelta(minutes=5)
CENT = Decimal("0.01")


def sync_tenant(tenant_id: str) -> list[str]:
    """Read the tenant's open invoices' remaining amounts; returns the event types
    written. Raises the provider's error when the books could not be read."""
    tracked = open_invoices(tenant_id)
    state = sync_state(tenant_id)
    started = utcnow()
    if not tracked:
        save_sync_state(tenant_id, started, state.changed_since, None)
        return []
    tenant = get_tenant(tenant_id)
    provider = provider_for(tenant)
    since = state.changed_since or min(_aware(t.created_at) for t in tracked)
    try:
        seen = remaining_amounts(tenant.provider, provider, tracked, since - OVERLAP)
    except Exception as exc:
        save_sync_state(tenant_id, state.last_sync_at, state.changed_since, str(exc)[:500])
        raise
    written = apply_remaining_amounts(tracked, seen)
    save_sync_state(tenant_id, started, started, None)
    if written:
        events.written()
    return written


def queue_sync(tenant_id: str) -> None:
    """Sync the tenant soon on a worker (the dashboard's "sync now"), the same task the
    periodic sync queues per tenant."""
    dispatch.send(SYNC_TENANT_PAYMENTS_TASK, (tenant_id,))


def remaining_amounts(
    provider_name: str, provider: Any, tracked: list[TrackedInvoice], since: dt.datetime
) -> dict[str, Decimal]:
    """The remaining amount (invoice currency) of each tracked invoice the books report
    as changed, by remote id."""
    wanted = {t.remote_id for t in tracked}
    read = spec_for(provider_name).payment_sync(provider, wanted, since)
    return {key: _decimal(amount) for key, amount in read.items()}


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)).quantize(CENT)
    except InvalidOperation:
        raise ValueError(f"remaining amount {value!r} is not a number") from None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def sync_status(tenant_id: str) -> dict[str, Any]:
    """For the CLI and the dashboard: last sync, open invoices tracked, the last error,
    and when the periodic sync comes next (none while no invoice is open)."""
    state = sync_state(tenant_id)
    last = _aware(state.last_sync_at) if state.last_sync_at else None
    watched = len(open_invoices(tenant_id))
    return {
        "tenant_id": tenant_id,
        "last_sync_at": last.isoformat() if last else None,
        "open_invoices": watched,
        "last_error": state.last_error,
        "next_sync_at": _next_sync(last).isoformat() if watched else None,
    }


def _next_sync(last: dt.datetime | None) -> dt.datetime:
    """The beat syncs every tenant with open invoices each interval: by then at the
    latest (a tenant never synced: within one interval from now)."""
    interval = dt.timedelta(seconds=get_settings().payment_sync_seconds)
    now = utcnow()
    return max(last + interval, now) if last else now + interval
