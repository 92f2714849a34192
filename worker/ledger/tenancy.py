"""Tenant rows: reading and adding them, their connection state, credentials columns,
mapping and capabilities (changed under a row lock), and the jobs parked while a tenant
waits for re-authorization. Validation and encryption stay with worker/tenancy/tenants.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, func, select, update
from sqlalchemy.orm import make_transient_to_detached

from worker.ledger.db import read_connection, read_session, session
from worker.ledger.models import (
    CONNECTED,
    DISABLED,
    TERMINAL_STATES,
    WAITING_FOR_REAUTH,
    Job,
    Tenant,
    TenantEvent,
    utcnow,
)

_TENANTS: Table = Tenant.__table__  # type: ignore[assignment]
_TENANT_ROW = select(*_TENANTS.c).where(_TENANTS.c.id == bindparam("b_id"))


def insert_tenant(tenant_id: str, build: Callable[[], Tenant]) -> Tenant | None:
    """Add the tenant `build` makes, unless one with this id exists (then None, and
    `build` is not called)."""
    with session() as db:
        if db.get(Tenant, tenant_id) is not None:
            return None
        tenant = build()
        db.add(tenant)
        return tenant


def tenant_row(tenant_id: str) -> Tenant | None:
    """The tenant as a detached object, read without the ORM's unit of work (every job
    reads its tenant once)."""
    with read_connection() as conn:
        return read_tenant(conn, tenant_id)


def read_tenant(conn: Connection, tenant_id: str) -> Tenant | None:
    """`tenant_row` inside a transaction the caller holds."""
    row = conn.execute(_TENANT_ROW, {"b_id": tenant_id}).first()
    if row is None:
        return None
    tenant = Tenant(**row._asdict())
    make_transient_to_detached(tenant)
    return tenant


def rewrite_credentials(rewrite: Callable[[bytes], bytes]) -> int:
    """Replace every stored credentials value with `rewrite(value)` (one transaction);
    returns how many tenants had credentials."""
    count = 0
    with session() as db:
        for tenant in db.query(Tenant).where(Tenant.credentials.is_not(None)):
            assert tenant.credentials is not None
            tenant.credentials = rewrite(tenant.credentials)
            count += 1
    return count


def all_tenants() -> list[Tenant]:
    with read_session() as db:
        return list(db.scalars(select(Tenant).order_by(Tenant.id)))


def change_tenant(tenant_id: str, change: Callable[[Tenant], Any]) -> Tenant | None:
    """Apply `change` to the tenant's row, locked for update, in one transaction; None
    when there is no such tenant. An exception from `change` rolls it back."""
    with session() as db:
        tenant = db.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            return None
        change(tenant)
        return tenant


def set_connection_state(tenant_id: str, state: str, reason: str | None) -> bool:
    """True only for the one caller that changed the state (workers race)."""
    with session() as db:
        result = db.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.connection_state != state)
            .values(
                connection_state=state,
                connection_reason=reason if state != CONNECTED else None,
                updated_at=utcnow(),
            )
        )
        return bool(getattr(result, "rowcount", 0))


def mark_connected_unless_disabled(tenant_id: str) -> bool:
    """Mark the tenant connected; True if it was not. A disabled tenant stays disabled."""
    with session() as db:
        result = db.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.connection_state.not_in((CONNECTED, DISABLED)))
            .values(connection_state=CONNECTED, connection_reason=None, updated_at=utcnow())
        )
        return bool(getattr(result, "rowcount", 0))


def merge_capabilities(tenant_id: str, changes: dict[str, Any]) -> None:
    with session() as db:
        tenant = db.get(Tenant, tenant_id, with_for_update=True)
        if tenant is not None:
            tenant.capabilities = {**tenant.capabilities, **changes}


def set_last_success_now(tenant_id: str) -> None:
    with session() as db:
        tenant = db.get(Tenant, tenant_id)
        if tenant is not None:
            tenant.last_success_at = utcnow()


def jobs_waiting_for_reauth(tenant_id: str) -> list[Job]:
    """The tenant's parked jobs, oldest first."""
    with read_session() as db:
        return list(
            db.scalars(
                select(Job)
                .where(Job.tenant_id == tenant_id, Job.state == WAITING_FOR_REAUTH)
                .order_by(Job.created_at, Job.id)
            )
        )


def connected_tenants_with_parked_jobs() -> list[str]:
    """Ids of connected tenants that still have jobs waiting for re-authorization."""
    with read_session() as db:
        return list(
            db.scalars(
                select(Job.tenant_id)
                .join(Tenant, Tenant.id == Job.tenant_id)
                .where(Job.state == WAITING_FOR_REAUTH, Tenant.connection_state == CONNECTED)
                .distinct()
            )
        )


def connected_tokens_expiring_before(
    providers: list[str], horizon: dt.datetime
) -> list[tuple[str, dt.datetime | None]]:
    """(tenant id, token expiry) of connected tenants of these providers whose access
    token expires before `horizon`."""
    with read_session() as db:
        return list(
            db.execute(
                select(Tenant.id, Tenant.token_expires_at).where(
                    Tenant.provider.in_(providers),
                    Tenant.connection_state == CONNECTED,
                    Tenant.token_expires_at.is_not(None),
                    Tenant.token_expires_at < horizon,
                )
            ).tuples()
        )


def unsettled_job_count(tenant_id: str) -> int:
    """How many of the tenant's jobs are not in a terminal state."""
    query = select(func.count()).where(
        Job.tenant_id == tenant_id, Job.state.not_in(TERMINAL_STATES)
    )
    with read_session() as db:
        return int(db.scalar(query) or 0)


def delete_tenant(tenant_id: str, actor: str, note: str) -> bool:
    """Delete the tenant's row and record `removed` in its audit trail, which outlives it
    (one transaction); False when there is no such tenant (nothing written)."""
    with session() as db:
        if not db.execute(delete(Tenant).where(Tenant.id == tenant_id)).rowcount:  # type: ignore[attr-defined]
            return False
        db.add(TenantEvent(tenant_id=tenant_id, actor=actor[:100], action="removed", note=note))
        return True
