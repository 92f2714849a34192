"""Tenants: provider, country, connection state and encrypted credentials."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.crypto import decrypt_json, encrypt_json
from worker.ledger import tenancy
from worker.ledger.models import DISABLED, NEEDS_REAUTH, Tenant
from worker.providers import registry
from worker.tenancy.mapping import validate
from worker.transport.redis_client import get_redis

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

    def build() -> Tenant:
        tenant = Tenant(
            id=tenant_id,
            provider=provider,
            country=country,
            display_name=display_name,
            mapping=mapping or {},
            capabilities={},
        )
        _set_credentials(tenant, credentials)
        return tenant

    added = tenancy.insert_tenant(tenant_id, build)
    if added is None:
        raise TenantError(f"tenant {tenant_id!r} already exists")
    return added


def _set_credentials(tenant: Tenant, credentials: dict[str, Any] | None) -> None:
    tenant.credentials = encrypt_json(credentials) if credentials else None
    tenant.credentials_version = (tenant.credentials_version or 0) + 1
    expires = (credentials or {}).get("expires_at")
    tenant.token_expires_at = dt.datetime.fromtimestamp(expires, dt.UTC) if expires else None


def find_tenant(tenant_id: str) -> Tenant | None:
    return tenancy.tenant_row(tenant_id)


def get_tenant(tenant_id: str) -> Tenant:
    tenant = find_tenant(tenant_id)
    if tenant is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}; add it with `ledgerpush tenants add`")
    return tenant


def list_tenants() -> list[Tenant]:
    return tenancy.all_tenants()


def credentials_of(tenant: Tenant) -> dict[str, Any]:
    return decrypt_json(tenant.credentials) if tenant.credentials else {}


def store_credentials(tenant_id: str, credentials: dict[str, Any]) -> Tenant:
    """Durably replace a tenant's credentials (committed before this returns)."""
    tenant = tenancy.change_tenant(tenant_id, lambda row: _set_credentials(row, credentials))
    if tenant is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    return tenant


def set_connection(tenant_id: str, state: str, reason: str | None = None) -> bool:
    """Set the connection state; True only for the one caller that changed it, so
    whatever follows a transition (an alert) happens once even when workers race."""
    return tenancy.set_connection_state(tenant_id, state, reason)


def reconnect(tenant_id: str, credentials: dict[str, Any]) -> bool:
    """Store fresh credentials and mark the tenant connected; True if it was not. A tenant
    an operator disabled stays disabled: a customer's connect link does not enable it."""
    store_credentials(tenant_id, credentials)
    return tenancy.mark_connected_unless_disabled(tenant_id)


def needs_reauth(tenant: Tenant) -> bool:
    """Jobs of the tenant wait (parked) instead of running: it must reconnect or be enabled."""
    return tenant.connection_state in (NEEDS_REAUTH, DISABLED)


def update_mapping(tenant_id: str, changes: dict[str, Any], replace: bool = False) -> Tenant:
    def change(tenant: Tenant) -> None:
        # Keys this provider does not read are refused (removing one is always allowed).
        validate({k: v for k, v in changes.items() if v is not None}, tenant.provider)
        base = {} if replace else dict(tenant.mapping)
        base.update(changes)
        tenant.mapping = {k: v for k, v in base.items() if v is not None}

    tenant = tenancy.change_tenant(tenant_id, change)
    if tenant is None:
        raise UnknownTenant(f"no tenant {tenant_id!r}")
    return tenant


def update_capabilities(tenant_id: str, changes: dict[str, Any]) -> None:
    tenancy.merge_capabilities(tenant_id, changes)


#: `last_success_at` is written at most this often per tenant (a commit per booked job
#: would be the hot path's most expensive line; the page shows minutes, not seconds).
SUCCESS_MARK_SECONDS = 30


def mark_success(tenant_id: str) -> None:
    if not get_redis().set(f"lp:success-mark:{tenant_id}", 1, nx=True, ex=SUCCESS_MARK_SECONDS):
        return
    tenancy.set_last_success_now(tenant_id)
