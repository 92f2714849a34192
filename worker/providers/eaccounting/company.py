"""Which eAccounting company a tenant's credentials are for (see worker/tenancy/binding.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.tenancy.binding import Company


def company_of(settings: Mapping[str, Any]) -> Company:
    """From `GET /v2/companysettings`: `CompanyIdentifier` is the company's unique id;
    without one, the country and corporate identity number stand in for it."""
    org_no = str(settings.get("CorporateIdentityNumber") or "")
    country = str(settings.get("CountryCode") or "")
    key = str(settings.get("CompanyIdentifier") or "") or f"{country}:{org_no}"
    return Company(key, str(settings.get("Name") or ""), org_no, country)
