"""Each tenant books into one remote company, and only that one.

The company's identity is recorded at the first successful connect (or, for tenants
connected before bindings existed, at their next successful call). A connect that comes
back with another company, or with a company another tenant is bound to, is refused
before its tokens are stored. The identity is checked again whenever the provider's
references are loaded, which every job does before its first write: a mismatch parks
the tenant (`company_changed`) instead of writing into someone else's books. Moving a
tenant to another company, or letting two tenants share one, is an explicit operator
action, recorded in the tenant's audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from worker.ledger import binding as rows
from worker.ledger.binding import LockedTenant
from worker.ledger.models import NEEDS_REAUTH, Tenant, TenantEvent, utcnow
from worker.ops import alerts
from worker.providers.base import NeedsReauth
from worker.tenancy import refcache
from worker.tenancy.tenants import TenantError, UnknownTenant

log = logging.getLogger("ledgerpush.binding")
MISMATCH = "company_mismatch"
IN_USE = "company_in_use"
CHANGED = "company_changed"


@dataclass(frozen=True)
class Company:
    """A remote company as ledgerpush identifies it: `id` is the stable key compared."""

    id: str
    name: str
    org_no: str
    country: str

    @classmethod
    def from_record(cls, data: Mapping[str, Any] | None) -> Company | None:
        if not data or not data.get("id"):
            return None
        return cls(
            str(data["id"]),
            str(data.get("name") or ""),
            str(data.get("org_no") or ""),
            str(data.get("country") or ""),
        )

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def label(self) -> str:
        details = ", ".join(part for part in (self.country, self.org_no) if part)
        return f"{self.name or 'unnamed company'} ({details}{'; ' if details else ''}id {self.id})"


def bound_company(tenant: Tenant) -> Company | None:
    return Company.from_record(tenant.company)


class CompanyRefused(NeedsReauth):
    """The accounting system returned a company this tenant may not book into."""

    def __init__(self, tenant_id: str, code: str, bound: Company | None, picked: Company) -> None:
        self.tenant_id = tenant_id
        self.bound = bound
        self.picked = picked
        super().__init__(_reason(code, bound, picked), code)

    def customer_text(self) -> str:
        """What the customer who followed the link is told (no other tenant is named)."""
        if self.code == IN_USE:
            return (
                f"You picked {self.picked.label()}, which is already connected to another "
                f"ledgerpush account. This link is for {self.tenant_id}; nothing was changed. "
                "Open the link again and pick the company that belongs to it, or ask your "
                "contact to allow this company for it."
            )
        bound = self.bound.label() if self.bound else "another company"
        return (
            f"This link is for {self.tenant_id}, which books into {bound}. You picked "
            f"{self.picked.label()}. Nothing was changed: open the link again and pick "
            f"{bound}, or ask your contact to move the account to the other company first."
        )


def _reason(code: str, bound: Company | None, picked: Company) -> str:
    if code == IN_USE:
        return (
            f"{IN_USE}: {picked.label()} is already bound to another tenant; allow it with "
            "`ledgerpush tenants allow-shared-company` if both tenants really book into it"
        )
    bound_text = bound.label() if bound else "?"
    if code == CHANGED:
        return (
            f"{CHANGED}: the accounting system now answers for {picked.label()}, but the tenant "
            f"is bound to {bound_text}; nothing is written until it is resolved (reconnect, "
            "or `ledgerpush tenants rebind`)"
        )
    return (
        f"{MISMATCH}: a reconnect picked {picked.label()}, but the tenant is bound to "
        f"{bound_text}; the tokens were not stored (reconnect with the bound company, or "
        "`ledgerpush tenants rebind`)"
    )


def holder_of(tenant: Tenant, company: Company) -> str | None:
    """Another tenant of the same provider bound to this company, if any."""
    return rows.other_tenant_bound_to(tenant.provider, company.id, tenant.id)


def refusal(tenant: Tenant, company: Company) -> CompanyRefused | None:
    """Why this tenant may not use this company, or None if it may."""
    if tenant.company_id is not None:
        if tenant.company_id == company.id:
            return None
        return CompanyRefused(tenant.id, MISMATCH, bound_company(tenant), company)
    if holder_of(tenant, company) and not tenant.company_sharing_allowed:
        return CompanyRefused(tenant.id, IN_USE, None, company)
    return None


def audit(tenant_id: str, actor: str, action: str, note: str) -> None:
    rows.insert_tenant_event(tenant_id, actor, action, note)


def events(tenant_id: str, limit: int = 50) -> list[TenantEvent]:
    return rows.tenant_events(tenant_id, limit)


def _record_refused(tenant_id: str, refused: CompanyRefused) -> None:
    record = {**refused.picked.as_dict(), "reason": refused.code, "at": utcnow().isoformat()}
    rows.record_refused_company(tenant_id, record)


def refuse_connect(tenant: Tenant, refused: CompanyRefused, actor: str) -> None:
    """A connect came back with a company the tenant may not use: its tokens are dropped,
    the tenant waits for a reconnect (unless it still holds good tokens of its own
    company), the refusal is audited and the operator alerted once."""
    _record_refused(tenant.id, refused)
    if tenant.credentials is None or tenant.connection_state == NEEDS_REAUTH:
        rows.park_for_reauth(tenant.id, refused.message)
    holder = holder_of(tenant, refused.picked)
    bound = refused.bound.label() if refused.bound else "(not bound yet)"
    note = f"{refused.message}" + (f" (bound to tenant {holder})" if holder else "")
    audit(tenant.id, actor, "connect_refused", note)
    log.warning("connect of tenant %s refused: %s", tenant.id, note)
    alerts.tenant_company_refused(tenant, note, bound, refused.picked.label())


def bind(tenant_id: str, company: Company, actor: str) -> bool:
    """Bind an unbound tenant; True if this call did (another may have raced it)."""
    done = rows.bind_if_unbound(tenant_id, company.id, company.as_dict(), utcnow())
    if done:
        audit(tenant_id, actor, "bound", f"bound to {company.label()}")
        log.info("tenant %s bound to %s", tenant_id, company.label())
    return done


def _checked(tenant_id: str) -> None:
    rows.mark_company_checked(tenant_id)


def accept(tenant: Tenant, company: Company, actor: str) -> None:
    """Raise `CompanyRefused` unless the tenant may use this company; bind it if unbound."""
    refused = refusal(tenant, company)
    if refused is not None:
        raise refused
    if tenant.company_id is None and not bind(tenant.id, company, actor):
        fresh = _reload(tenant.id)
        if fresh.company_id != company.id:
            raise CompanyRefused(tenant.id, MISMATCH, bound_company(fresh), company)
    if tenant.company_id is not None:
        _checked(tenant.id)


def verify(tenant: Tenant, company: Company) -> None:
    """The check a job makes when it loads the company's settings, before any write:
    a tenant not bound yet is bound now; a mismatch raises `NeedsReauth` (the pipeline
    parks the tenant and its jobs)."""
    try:
        accept(tenant, company, "worker")
    except CompanyRefused as refused:
        if refused.code == MISMATCH:
            refused = CompanyRefused(tenant.id, CHANGED, refused.bound, company)
        _record_refused(tenant.id, refused)
        log.warning("tenant %s: %s", tenant.id, refused.message)
        raise NeedsReauth(refused.message, refused.code) from None


def _reload(tenant_id: str) -> Tenant:
    tenant = rows.detached_tenant(tenant_id)
    if tenant is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    return tenant


def rebind(
    tenant_id: str, actor: str, expected: str | None = None
) -> tuple[Company | None, Company]:
    """Move the tenant to the company last refused for it; (from, to). The tenant's
    cached references are dropped, and it must connect again with the new company.
    `expected`: the id of the company the caller confirmed; refused if it is another."""
    old, target = rows.change_locked_tenant(
        tenant_id, lambda locked: _move_to_refused(locked, tenant_id, actor, expected)
    )
    old_text = old.label() if old else "no company"
    refcache.invalidate(tenant_id)
    log.warning("tenant %s moved from %s to %s by %s", tenant_id, old_text, target.label(), actor)
    return old, target


def _move_to_refused(
    locked: LockedTenant, tenant_id: str, actor: str, expected: str | None
) -> tuple[Company | None, Company]:
    tenant = locked.tenant
    if tenant is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    target = Company.from_record(tenant.company_refused)
    if target is None:
        raise TenantError(
            f"tenant {tenant_id!r} has no refused company to move to: have the customer "
            "connect with the other company first (it is refused and named here)"
        )
    if expected is not None and expected != target.id:
        raise TenantError(
            f"the company to move tenant {tenant_id!r} to is now {target.label()}, "
            f"not id {expected!r}; confirm that company instead"
        )
    holder = locked.other_tenant_bound_to(tenant.provider, target.id, tenant.id)
    if holder and not tenant.company_sharing_allowed:
        raise TenantError(
            f"{target.label()} is bound to tenant {holder!r}; allow sharing first with "
            f"`ledgerpush tenants allow-shared-company {tenant_id}`"
        )
    old = bound_company(tenant)
    tenant.company_id = target.id
    tenant.company = target.as_dict()
    tenant.company_bound_at = utcnow()
    tenant.company_checked_at = None
    tenant.company_refused = None
    tenant.connection_state = NEEDS_REAUTH
    tenant.connection_reason = (
        f"moved to {target.label()} by {actor}; connect again with that company to finish"
    )
    old_text = old.label() if old else "no company"
    locked.add_event(tenant_id, actor, "rebound", f"from {old_text} to {target.label()}")
    return old, target


def allow_sharing(tenant_id: str, actor: str, allowed: bool = True) -> None:
    """Let this tenant bind a company another tenant is bound to (or stop letting it)."""

    def change(locked: LockedTenant) -> None:
        if locked.tenant is None:
            raise UnknownTenant(f"no tenant {tenant_id!r}")
        locked.tenant.company_sharing_allowed = allowed
        locked.add_event(
            tenant_id,
            actor,
            "sharing_allowed" if allowed else "sharing_revoked",
            "may bind a company another tenant is bound to"
            if allowed
            else "may no longer bind a company another tenant is bound to",
        )

    rows.change_locked_tenant(tenant_id, change)
