"""Which e-conomic agreement (company) a tenant's grant is for (see worker/tenancy/binding.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.tenancy.binding import Company


def company_of(self_body: Mapping[str, Any]) -> Company:
    """From e-conomic's `GET /self`: `agreementNumber` identifies the agreement."""
    company = self_body.get("company") or {}
    org_no = company.get("companyIdentificationNumber") or company.get("vatNumber") or ""
    return Company(
        str(self_body.get("agreementNumber") or ""),
        str(company.get("name") or ""),
        str(org_no),
        str(company.get("country") or ""),
    )
