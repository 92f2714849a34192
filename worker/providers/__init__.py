"""Provider clients, chosen by the tenant's provider through the registry."""

from __future__ import annotations

from worker.ledger.models import Tenant
from worker.providers.base import Provider
from worker.providers.registry import spec_for


def provider_for(tenant: Tenant) -> Provider:
    return spec_for(tenant.provider).client(tenant)
