"""Read models of the operator actions on jobs (worker/ops/operations.py)."""

from __future__ import annotations

from sqlalchemy import select

from worker.ledger.db import read_session
from worker.ledger.models import DISABLED, FAILED, NEEDS_REAUTH, Job, Tenant

PARKING_STATES = (NEEDS_REAUTH, DISABLED)


def failed_jobs_and_parked_tenants(
    tenant_id: str | None, error_code: str | None
) -> tuple[list[Job], set[str]]:
    """The failed jobs (of a tenant, with an error code; oldest first) and the ids of the
    tenants parked for re-authorization or disabled, read in one transaction."""
    query = select(Job).where(Job.state == FAILED).order_by(Job.created_at)
    if tenant_id:
        query = query.where(Job.tenant_id == tenant_id)
    if error_code:
        query = query.where(Job.error_code == error_code)
    with read_session() as db:
        failed = list(db.scalars(query))
        parked = set(
            db.scalars(select(Tenant.id).where(Tenant.connection_state.in_(PARKING_STATES)))
        )
    return failed, parked
