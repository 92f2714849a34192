"""Rows behind binding a tenant to one remote company: the company columns of tenants,
their audit trail (tenant_events), and a locked change of a tenant's row together with
its audit entry. Which company may be used, and the words of refusals, are
worker/tenancy/binding.py's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from worker.ledger.db import read_session, session
from worker.ledger.models import NEEDS_REAUTH, Tenant, TenantEvent, utcnow

T = TypeVar("T")


def _other_tenant_bound_to(
    db: Session, provider: str, company_id: str, tenant_id: str
) -> str | None:
    return db.scalar(
        select(Tenant.id)
        .where(
            Tenant.provider == provider,
            Tenant.company_id == company_id,
            Tenant.id != tenant_id,
        )
        .order_by(Tenant.id)
        .limit(1)
    )


def other_tenant_bound_to(provider: str, company_id: str, tenant_id: str) -> str | None:
    """The first (by id) other tenant of the provider bound to this company, if any."""
    with read_session() as db:
        return _other_tenant_bound_to(db, provider, company_id, tenant_id)


def _event(tenant_id: str, actor: str, action: str, note: str) -> TenantEvent:
    return TenantEvent(tenant_id=tenant_id, actor=actor[:100], action=action, note=note)


def insert_tenant_event(tenant_id: str, actor: str, action: str, note: str) -> None:
    with session() as db:
        db.add(_event(tenant_id, actor, action, note))


def tenant_events(tenant_id: str, limit: int) -> list[TenantEvent]:
    """The tenant's audit trail, newest first."""
    with read_session() as db:
        return list(
            db.scalars(
                select(TenantEvent)
                .where(TenantEvent.tenant_id == tenant_id)
                .order_by(TenantEvent.id.desc())
                .limit(limit)
            )
        )


def record_refused_company(tenant_id: str, record: dict[str, Any]) -> None:
    with session() as db:
        db.execute(update(Tenant).where(Tenant.id == tenant_id).values(company_refused=record))


def park_for_reauth(tenant_id: str, reason: str) -> None:
    """Mark the tenant as waiting for a reconnect (its other columns untouched)."""
    with session() as db:
        db.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(connection_state=NEEDS_REAUTH, connection_reason=reason)
        )


def bind_if_unbound(
    tenant_id: str, company_id: str, company: dict[str, Any], now: dt.datetime
) -> bool:
    """Record the company of a tenant bound to none; True if this call did."""
    with session() as db:
        result = db.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.company_id.is_(None))
            .values(
                company_id=company_id,
                company=company,
                company_bound_at=now,
                company_checked_at=now,
            )
        )
        return bool(getattr(result, "rowcount", 0))


def mark_company_checked(tenant_id: str) -> None:
    with session() as db:
        db.execute(update(Tenant).where(Tenant.id == tenant_id).values(company_checked_at=utcnow()))


def detached_tenant(tenant_id: str) -> Tenant | None:
    """The tenant read afresh, detached from its session."""
    with read_session() as db:
        tenant = db.get(Tenant, tenant_id)
        if tenant is None:
            return None
        db.expunge(tenant)
        return tenant


class LockedTenant:
    """A tenant's row locked for update (None: no such tenant), and what may be read and
    written in the same transaction."""

    def __init__(self, db: Session, tenant: Tenant | None) -> None:
        self._db = db
        self.tenant = tenant

    def other_tenant_bound_to(self, provider: str, company_id: str, tenant_id: str) -> str | None:
        # Read in this transaction: SQLite allows one writer, so no second may be opened.
        return _other_tenant_bound_to(self._db, provider, company_id, tenant_id)

    def add_event(self, tenant_id: str, actor: str, action: str, note: str) -> None:
        self._db.add(_event(tenant_id, actor, action, note))


def change_locked_tenant(tenant_id: str, change: Callable[[LockedTenant], T]) -> T:
    """Run `change` on the tenant's locked row in one transaction, committed when it
    returns, rolled back when it raises; returns what `change` returns."""
    with session() as db:
        return change(LockedTenant(db, db.get(Tenant, tenant_id, with_for_update=True)))
