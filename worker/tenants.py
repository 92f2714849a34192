"""Tenants: provider, country, connection state and encrypted credentials."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import make_transient_to_detached

from worker.crypto import decrypt_json, encrypt_json
from worker.ledger.db import engine, session
from worker.ledger.models import CONNECTED, DISABLED, NEEDS_REAUTH, Tenant, utcnow
from worker.mapping import validate
from worker.providers import registry

#: Every provider's name, in the registry's order (worker/providers/registry.py).
PROVIDERS = registry.names()


class TenantError(ValueError):
    """A tenant operation was asked for with a wrong value; the message says which."""


class UnknownTenant(LookupError):
    pass


def add_tenant(
    tenant_id: str,
    provider: str,
    country: str,
    credentials: dict[str, Any] | None = None,
    display_name: str | None = None,
    mapping: dict[str, Any] | None = None,
) -> Tenant:
    if provider not in registry.names():
        known = ", ".join(registry.names())
        raise TenantError(f"provider must be one of {known}, not {provider!r}")
    countries = registry.spec_for(provider).countries
    if country not in countries:
        allowed = ", ".join(countries)
        raise TenantError(f"country for {provider} must be one of {allowed}, not {country!r}")
    with session() as db:
        if db.get(Tenant, tenant_id) is not None:
            raise TenantError(f"tenant {tenant_id!r} already exists")
        tenant = Tenant(
            id=tenant_id,
            provider=provider,
            country=country,
            display_name=display_name,
            mapping=mapping or {},
            capabilities={},
        )
        _set_credentials(tenant, credentials)
        db.add(tenant)
        return tenant


def _set_credentials(tenant: Tenant, credentials: dict[str, Any] | None) -> None:
    tenant.credentials = encrypt_json(credentials) if credentials else None
    tenant.credentials_version = (tenant.credentials_version or 0) + 1
    expires = (credentials or {}).get("expires_at")
    tenant.token_expires_at = dt.datetime.fromtimestamp(expires, dt.UTC) if expires else None


_TENANTS: Table = Tenant.__table__  # type: ignore[assignment]
_TENANT_ROW = select(*_TENANTS.c).where(_TENANTS.c.id == bindparam("b_id"))


def find_tenant(tenant_id: str) -> Tenant | None:
    """The tenant as a detached object, read without the ORM's unit of work (every job
    reads its tenant once)."""
    with engine().begin() as conn:
        row = conn.execute(_TENANT_ROW, {"b_id": tenant_id}).first()
    if row is None:
        return None
    tenant = Tenant(**row._asdict())
    make_transient_to_detached(tenant)
    return tenant


def get_tenant(tenant_id: str) -> Tenant:
    tenant = find_tenant(tenant_id)
    if tenant is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}; add it with `ledgerpush tenants add`")
    return tenant


def list_tenants() -> list[Tenant]:
    with session() as db:
        return list(db.scalars(select(Tenant).order_by(Tenant.id)))


def credentials_of(tenant: Tenant) -> dict[str, Any]:
    return decrypt_json(tenant.credentials) if tenant.credentials else {}


def store_credentials(tenant_id: str, credentials: dict[str, Any]) -> Tenant:
    """Durably replace a tenant's credentials (committed before this returns)."""
    with session() as db:
        tenant = db.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise UnknownTenant(f"no tenant {tenant_id!r}")
        _set_credentials(tenant, credentials)
        return tenant


def set_connection(tenant_id: str, state: str, reason: str | None = None) -> bool:
    """Set the connection state; True only for the one caller that changed it, so
    whatever follows a transition (an alert) happens once even when workers race."""
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


def reconnect(tenant_id: str, credentials: dict[str, Any]) -> bool:
    """Store fresh credentials and mark the tenant connected; True if it was not. A tenant
    an operator disabled stays disabled: a customer's connect link does not enable it."""
    store_credentials(tenant_id, credentials)
    with session() as db:
        result = db.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.connection_state.not_in((CONNECTED, DISABLED)))
            .values(connection_state=CONNECTED, connection_reason=None, updated_at=utcnow())
        )
        return bool(getattr(result, "rowcount", 0))


def needs_reauth(tenant: Tenant) -> bool:
    """Jobs of the tenant wait (parked) instead of running: it must reconnect or be enabled."""
    return tenant.connection_state in (NEEDS_REAUTH, DISABLED)


def update_mapping(tenant_id: str, changes: dict[str, Any], replace: bool = False) -> Tenant:
    with session() as db:
        tenant = db.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise UnknownTenant(f"no tenant {tenant_id!r}")
        # Keys this provider does not read are refused (removing one is always allowed).
        validate({k: v for k, v in changes.items() if v is not None}, tenant.provider)
        base = {} if replace else dict(tenant.mapping)
        base.update(changes)
        tenant.mapping = {k: v for k, v in base.items() if v is not None}
        return tenant


def update_capabilities(tenant_id: str, changes: dict[str, Any]) -> None:
    with session() as db:
        tenant = db.get(Tenant, tenant_id, with_for_update=True)
        if tenant is not None:
            tenant.capabilities = {**tenant.capabilities, **changes}


#: `last_success_at` is written at most this often per tenant (a commit per booked job
#: would be the hot path's most expensive line; the page shows minutes, not seconds).
SUCCESS_MARK_SECONDS = 30


def mark_success(tenant_id: str) -> None:
    from worker.redis_client import get_redis

    if not get_redis().set(f"lp:success-mark:{tenant_id}", 1, nx=True, ex=SUCCESS_MARK_SECONDS):
        return
    with session() as db:
        tenant = db.get(Tenant, tenant_id)
        if tenant is not None:
            tenant.last_success_at = utcnow()
