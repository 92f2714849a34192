"""Provider clients, chosen by the tenant's provider."""

from __future__ import annotations

from worker.ledger.models import Tenant
from worker.providers.base import Provider


def provider_for(tenant: Tenant) -> Provider:
    if tenant.provider == "eaccounting":
        from worker.providers.eaccounting import EAccountingProvider

        return EAccountingProvider(tenant)
    if tenant.provider == "economic":
        from worker.providers.economic import EconomicProvider

        return EconomicProvider(tenant)
    raise ValueError(f"unknown provider {tenant.provider!r}")
