"""Operator actions on tenants: disable, enable, remove. Each is recorded in the tenant's
audit trail (`tenant_events`, shown on the tenant page) with who did it."""

from __future__ import annotations

import logging

from worker.ledger import tenancy
from worker.ledger.models import CONNECTED, DISABLED, NEEDS_REAUTH, Tenant
from worker.tenancy.binding import audit
from worker.tenancy.refcache import invalidate
from worker.tenancy.tenants import TenantError, UnknownTenant, get_tenant, set_connection

log = logging.getLogger("ledgerpush.audit")


def disable_tenant(tenant_id: str, actor: str) -> Tenant:
    """The tenant's jobs are parked (waiting_for_reauth) until it is enabled again."""
    was = get_tenant(tenant_id).connection_state
    if set_connection(tenant_id, DISABLED, f"disabled by {actor}"):
        audit(tenant_id, actor, "disabled", f"was {was}; its jobs wait until it is enabled")
        log.info("tenant %s disabled by %s", tenant_id, actor)
    return get_tenant(tenant_id)


def enable_tenant(tenant_id: str, actor: str) -> Tenant:
    """Connected again if it holds credentials, else it needs connecting."""
    tenant = get_tenant(tenant_id)
    if tenant.connection_state != DISABLED:
        raise TenantError(f"tenant {tenant_id} is not disabled (it is {tenant.connection_state})")
    if tenant.credentials is None:
        changed = set_connection(tenant_id, NEEDS_REAUTH, "no credentials; connect it")
        note = "no credentials stored: it must connect"
    else:
        changed = set_connection(tenant_id, CONNECTED)
        note = "connected again"
    if changed:
        audit(tenant_id, actor, "enabled", note)
        log.info("tenant %s enabled by %s", tenant_id, actor)
    return get_tenant(tenant_id)


def unsettled_jobs(tenant_id: str) -> int:
    return tenancy.unsettled_job_count(tenant_id)


def remove_tenant(tenant_id: str, actor: str) -> None:
    """Delete the tenant and its credentials. Its settled jobs stay in the ledger (the
    exactly-once record of what was booked); refused while any job is unsettled."""
    get_tenant(tenant_id)
    open_jobs = unsettled_jobs(tenant_id)
    if open_jobs:
        raise TenantError(
            f"tenant {tenant_id} has {open_jobs} unsettled job{'s' if open_jobs != 1 else ''}; "
            "let them finish or cancel them first (ledgerpush jobs list "
            f"--tenant {tenant_id})"
        )
    # Kept after the tenant is gone: the trail says who removed it, and when.
    note = "tenant and its credentials deleted; its settled jobs stay in the ledger"
    if not tenancy.delete_tenant(tenant_id, actor, note):
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    invalidate(tenant_id)
    log.info("tenant %s removed by %s", tenant_id, actor)
