"""Which Visma.net company a tenant's credentials are for (see worker/tenancy/binding.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.tenancy.binding import Company


def company_of(company_tenant_id: str, organization: Mapping[str, Any]) -> Company:
    """The company tenant id is what a token is asked for, and so the company's key; the
    name, corporate id and country come from `GET /v1/organization` (its first item)."""
    country = organization.get("defaultCountry") or {}
    return Company(
        company_tenant_id,
        str(organization.get("name") or ""),
        str(organization.get("corporateId") or ""),
        str(country.get("id") or "") if isinstance(country, Mapping) else str(country),
    )
