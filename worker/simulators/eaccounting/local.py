"""The eAccounting simulator in a local stack (`ledgerpush demo`, `ledgerpush chaos`,
the benchmarks): ledgerpush's settings pointing at it, and what a tenant connected to
it holds (worker/devtools/localstack.py adds the tenant)."""

from __future__ import annotations

import time
from typing import Any

from worker.simulators.eaccounting.simulator import EAccountingSimulator

#: The scopes a connected tenant holds (what the consent flow asks for).
SCOPES = ["ea:api", "offline_access", "ea:sales", "ea:accounting_readonly", "ea:purchase_readonly"]


def create() -> EAccountingSimulator:
    return EAccountingSimulator()


def settings(sim: EAccountingSimulator, url: str) -> dict[str, str]:
    """The settings that send ledgerpush to the simulator served at `url`."""
    return {
        "LEDGERPUSH_EACCOUNTING_API_URL": f"{url}/v2",
        "LEDGERPUSH_EACCOUNTING_IDENTITY_URL": url,
    }


def connect(
    sim: EAccountingSimulator,
    tenant_id: str,
    country: str,
    company: str | None = None,
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    """A simulated company (`company`, else the tenant's id) and the tokens for it a
    tenant holds after the consent flow (SCOPES unless `scopes` are given): the tenant's
    `add_tenant` arguments."""
    company = company or tenant_id
    sim.add_company(company, country)
    tokens = sim.issue_tokens(company, scopes or SCOPES)
    credentials: dict[str, Any] = {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "expires_at": time.time() + float(tokens["expires_in"]),
        "scope": tokens.get("scope", ""),
    }
    return {"credentials": credentials, "display_name": company}
