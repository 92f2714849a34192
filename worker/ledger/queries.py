"""Read models of jobs for the dashboard and the API: filtered job pages, counts by state,
throughput, tenant health and failed-job groups."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, or_, select

from worker.ledger.db import read_session
from worker.ledger.models import (
    BOOKED,
    FAILED,
    NEEDS_REAUTH,
    WAITING_FOR_REAUTH,
    Job,
    Tenant,
    utcnow,
)

SORTABLE = {
    "created": Job.created_at,
    "updated": Job.updated_at,
    "tenant": Job.tenant_id,
    "key": Job.idempotency_key,
    "kind": Job.kind,
    "state": Job.state,
    "attempts": Job.attempts,
}
MANY_FAILURES = 3


@dataclass
class JobFilter:
    tenant: str | None = None
    provider: str | None = None
    kind: str | None = None
    state: str | None = None
    error_code: str | None = None
    key: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    sort: str = "created"
    order: str = "desc"
    page: int = 1
    per_page: int = 50
    #: Only jobs this API key sent (a key that may read only its own).
    created_by_key: int | None = None

    def params(self, **changes: Any) -> dict[str, str]:
        """Query parameters of this filter (for links), with some changed."""
        values = {
            "tenant": self.tenant,
            "provider": self.provider,
            "kind": self.kind,
            "state": self.state,
            "error_code": self.error_code,
            "key": self.key,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "sort": self.sort,
            "order": self.order,
            "page": str(self.page),
            "per_page": str(self.per_page),
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v not in (None, "")}


@dataclass
class JobPage:
    jobs: list[Job]
    total: int
    page: int
    per_page: int
    providers: dict[str, str] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _filtered(query: Select[Any], f: JobFilter) -> Select[Any]:
    if f.created_by_key is not None:
        query = query.where(Job.created_by_key == f.created_by_key)
    if f.tenant:
        query = query.where(Job.tenant_id == f.tenant)
    if f.provider:
        tenants_of = select(Tenant.id).where(Tenant.provider == f.provider)
        query = query.where(or_(Job.provider == f.provider, Job.tenant_id.in_(tenants_of)))
    if f.kind:
        query = query.where(Job.kind == f.kind)
    if f.state:
        query = query.where(Job.state == f.state)
    if f.error_code:
        query = query.where(Job.error_code == f.error_code)
    if f.key:
        escaped = f.key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Job.idempotency_key.like(f"%{escaped}%", escape="\\"))
    if f.since:
        query = query.where(Job.created_at >= _day_start(f.since))
    if f.until and f.until < dt.date.max:
        query = query.where(Job.created_at < _day_start(f.until + dt.timedelta(days=1)))
    return query


def find_jobs(f: JobFilter) -> JobPage:
    column = SORTABLE.get(f.sort, Job.created_at)
    ordering = column.asc() if f.order == "asc" else column.desc()
    query = _filtered(select(Job), f).order_by(ordering, Job.id)
    query = query.limit(f.per_page).offset((f.page - 1) * f.per_page)
    with read_session() as db:
        jobs = list(db.scalars(query))
        total = db.scalar(_filtered(select(func.count()).select_from(Job), f)) or 0
    return JobPage(jobs, total, f.page, f.per_page, providers_of(jobs))


def providers_of(jobs: list[Job]) -> dict[str, str]:
    """Tenant id -> provider, for showing a provider beside jobs."""
    ids = {j.tenant_id for j in jobs}
    if not ids:
        return {}
    with read_session() as db:
        rows = db.execute(select(Tenant.id, Tenant.provider).where(Tenant.id.in_(ids)))
        return {tenant_id: provider for tenant_id, provider in rows.tuples()}


def states_since(since: dt.datetime) -> dict[str, int]:
    query = select(Job.state, func.count()).where(Job.created_at >= since).group_by(Job.state)
    with read_session() as db:
        return {state: count for state, count in db.execute(query).tuples()}


def throughput(minutes: int = 60) -> list[int]:
    """Jobs booked per minute over the last `minutes`, oldest first."""
    now = utcnow()
    since = now - dt.timedelta(minutes=minutes)
    query = select(Job.finished_at).where(Job.state == BOOKED, Job.finished_at >= since)
    buckets = [0] * minutes
    with read_session() as db:
        for finished in db.scalars(query):
            if finished is None:
                continue
            age = (now - _aware(finished)).total_seconds() // 60
            index = minutes - 1 - int(age)
            if 0 <= index < minutes:
                buckets[index] += 1
    return buckets


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass
class TenantHealth:
    tenant: Tenant
    booked_24h: int = 0
    failed_24h: int = 0
    failed_now: int = 0
    parked: int = 0

    @property
    def failure_rate(self) -> float | None:
        finished = self.booked_24h + self.failed_24h
        return self.failed_24h / finished if finished else None

    @property
    def needs_attention(self) -> bool:
        return (
            self.tenant.connection_state in (NEEDS_REAUTH, "disabled")
            or self.failed_now >= MANY_FAILURES
        )


def tenant_health(tenant_id: str | None = None) -> list[TenantHealth]:
    since = utcnow() - dt.timedelta(hours=24)
    with read_session() as db:
        tenants_query = select(Tenant).order_by(Tenant.id)
        if tenant_id:
            tenants_query = tenants_query.where(Tenant.id == tenant_id)
        health = {t.id: TenantHealth(t) for t in db.scalars(tenants_query)}
        recent = select(Job.tenant_id, Job.state, func.count()).where(
            Job.finished_at >= since, Job.state.in_((BOOKED, FAILED))
        )
        now = select(Job.tenant_id, Job.state, func.count()).where(
            Job.state.in_((FAILED, WAITING_FOR_REAUTH))
        )
        if tenant_id:
            recent = recent.where(Job.tenant_id == tenant_id)
            now = now.where(Job.tenant_id == tenant_id)
        for tid, state, count in db.execute(recent.group_by(Job.tenant_id, Job.state)).tuples():
            if tid in health:
                _count_recent(health[tid], state, count)
        for tid, state, count in db.execute(now.group_by(Job.tenant_id, Job.state)).tuples():
            if tid in health:
                _count_now(health[tid], state, count)
    return list(health.values())


def _count_recent(h: TenantHealth, state: str, count: int) -> None:
    if state == BOOKED:
        h.booked_24h = count
    else:
        h.failed_24h = count


def _count_now(h: TenantHealth, state: str, count: int) -> None:
    if state == FAILED:
        h.failed_now = count
    else:
        h.parked = count


def recent_dead_letters(limit: int = 10) -> list[Job]:
    query = select(Job).where(Job.state == FAILED).order_by(Job.updated_at.desc()).limit(limit)
    with read_session() as db:
        return list(db.scalars(query))


@dataclass
class DeadLetterGroup:
    code: str
    category: str
    count: int
    tenants: list[str]
    sample: Job


def dead_letter_groups() -> list[DeadLetterGroup]:
    """Failed jobs grouped by error code, largest group first."""
    code = func.coalesce(Job.error_code, "unknown")
    counts = (
        select(code, func.count(), func.max(Job.updated_at))
        .where(Job.state == FAILED)
        .group_by(code)
    )
    by_tenant = (
        select(code, Job.tenant_id, func.count())
        .where(Job.state == FAILED)
        .group_by(code, Job.tenant_id)
    )
    with read_session() as db:
        tenants: dict[str, Counter[str]] = {}
        for c, tenant_id, n in db.execute(by_tenant).tuples():
            tenants.setdefault(c, Counter())[tenant_id] = n
        groups = []
        for c, n, _latest in db.execute(counts).tuples():
            sample = db.scalars(
                select(Job).where(Job.state == FAILED, code == c).order_by(Job.updated_at.desc())
            ).first()
            if sample is None:
                continue
            ranked = [t for t, _ in tenants.get(c, Counter()).most_common()]
            groups.append(DeadLetterGroup(c, sample.error_category or "", n, ranked, sample))
    return sorted(groups, key=lambda g: (-g.count, g.code))


def error_codes() -> list[str]:
    query = select(Job.error_code).where(Job.state == FAILED, Job.error_code.is_not(None))
    with read_session() as db:
        return sorted({c for c in db.scalars(query.distinct()) if c})


def job_id_matches(wanted: str, limit: int) -> list[tuple[str, str, str]]:
    """(id, tenant, idempotency key) of the job whose id is `wanted`; when there is none,
    of up to `limit` jobs whose id starts with it, in id order."""
    with read_session() as db:
        exact = db.get(Job, wanted)
        if exact is not None:
            return [(exact.id, exact.tenant_id, exact.idempotency_key)]
        return list(
            db.execute(
                select(Job.id, Job.tenant_id, Job.idempotency_key)
                .where(Job.id.startswith(wanted, autoescape=True))
                .order_by(Job.id)
                .limit(limit)
            ).tuples()
        )
