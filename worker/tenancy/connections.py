"""Tenant connection transitions and what follows them: parking, resuming, alerts."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from worker.ledger import store, tenancy
from worker.ledger.models import CONNECTED, NEEDS_REAUTH, RECEIVED, Job
from worker.ops import alerts
from worker.tenancy import tenants
from worker.transport.producer import send

log = logging.getLogger("ledgerpush.connections")


def tenant_needs_reauth(tenant_id: str, reason: str) -> None:
    """Mark the tenant; the worker that made the change alerts, nobody else."""
    if tenants.set_connection(tenant_id, NEEDS_REAUTH, reason):
        log.warning("tenant %s needs re-authorization: %s", tenant_id, reason)
        alerts.tenant_reauth_required(tenants.get_tenant(tenant_id), reason)


def tenant_reconnected(tenant_id: str, credentials: Mapping[str, object], actor: str) -> int:
    """Store new credentials, mark connected, and resume parked jobs in order."""
    was_disconnected = tenants.reconnect(tenant_id, dict(credentials))
    if was_disconnected:
        alerts.tenant_reconnected(tenants.get_tenant(tenant_id), actor)
    return resume_parked_jobs(tenant_id, actor)


def parked_jobs(tenant_id: str) -> list[Job]:
    return tenancy.jobs_waiting_for_reauth(tenant_id)


def resume_parked_jobs(tenant_id: str, actor: str = "worker") -> int:
    """Send every parked job of a connected tenant back to the queue, oldest first."""
    tenant = tenants.get_tenant(tenant_id)
    if tenant.connection_state != CONNECTED:
        return 0
    jobs = parked_jobs(tenant_id)
    for job in jobs:
        store.transition(job.id, RECEIVED, actor=actor, note="resumed after reconnect")
        send(job.payload, job.kind, job.id)
    if jobs:
        log.info("resumed %d parked jobs of tenant %s", len(jobs), tenant_id)
    return len(jobs)


def resume_stranded_jobs() -> int:
    """Parked jobs of tenants that are connected: a job that read "needs_reauth" just
    before a reconnect and parked just after its resume sweep would wait forever.
    Run by the periodic reconcile task."""
    tenant_ids = tenancy.connected_tenants_with_parked_jobs()
    return sum(resume_parked_jobs(tenant_id, actor="reconciler") for tenant_id in tenant_ids)
