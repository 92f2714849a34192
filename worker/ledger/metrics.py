"""Read models behind the Prometheus scrape: attempts ended in a time range, and counts
of jobs, tenants and webhook deliveries."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from worker.ledger.db import read_session
from worker.ledger.models import Attempt, Job, Tenant, WebhookDelivery


def attempts_ended_between(
    since: dt.datetime, until: dt.datetime
) -> list[tuple[list[Any] | None, str | None, str | None]]:
    """(calls, provider, outcome) of the attempts ended in (since, until]: an index
    range on attempts.ended_at, not a scan of the table."""
    query = (
        select(Attempt.calls, Tenant.provider, Attempt.outcome)
        .join(Job, Job.id == Attempt.job_id)
        .outerjoin(Tenant, Tenant.id == Job.tenant_id)
        .where(Attempt.ended_at > since, Attempt.ended_at <= until)
    )
    with read_session() as db:
        return list(db.execute(query).tuples())


def job_counts_by_state_and_provider() -> list[tuple[str, str, int]]:
    """(state, provider, count). Grouped by (tenant, state), which the ix_jobs_tenant_state
    index answers alone; tenants are mapped to providers here (few tenants, many jobs)."""
    by_tenant = select(Job.tenant_id, Job.state, func.count()).group_by(Job.tenant_id, Job.state)
    with read_session() as db:
        providers = {t: p for t, p in db.execute(select(Tenant.id, Tenant.provider)).tuples()}
        rows = list(db.execute(by_tenant).tuples())
        unknown_tenants = {t for t, _, _ in rows if t not in providers}
        if unknown_tenants:
            # Jobs of removed or never-added tenants: the provider the job recorded, if any.
            fallback = select(Job.tenant_id, Job.provider).where(
                Job.tenant_id.in_(unknown_tenants), Job.provider.is_not(None)
            )
            providers.update(
                {t: p or "unknown" for t, p in db.execute(fallback.distinct()).tuples()}
            )
    totals: Counter[tuple[str, str]] = Counter()
    for tenant_id, state, count in rows:
        totals[(state, providers.get(tenant_id) or "unknown")] += count
    return [(state, provider, count) for (state, provider), count in sorted(totals.items())]


def webhook_delivery_counts_by_status() -> list[tuple[str, int]]:
    query = select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    with read_session() as db:
        return [(status, count) for status, count in db.execute(query).tuples()]


def tenant_counts_by_provider_and_state() -> list[tuple[str, str, int]]:
    """(provider, connection state, number of tenants)."""
    query = select(Tenant.provider, Tenant.connection_state, func.count()).group_by(
        Tenant.provider, Tenant.connection_state
    )
    with read_session() as db:
        return list(db.execute(query).tuples())
