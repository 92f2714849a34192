"""The Visma.net simulator in a local stack (`ledgerpush demo`, `ledgerpush chaos`, the
benchmarks): ledgerpush's settings pointing at it (with the simulator's app), and what
a tenant connected to it holds (worker/devtools/localstack.py adds the tenant)."""

from __future__ import annotations

from typing import Any

from worker.simulators.vismanet import DEFAULT_APP, VismaNetSimulator, create_simulator

#: The simulator's bank-transfer payment method: a Visma.net tenant must map one.
PAYMENT_METHOD = "BANK"


def create() -> VismaNetSimulator:
    return create_simulator()


def settings(sim: VismaNetSimulator, url: str) -> dict[str, str]:
    """The settings that send ledgerpush to the simulator served at `url`, whose app
    (DEFAULT_APP) they name."""
    sim.add_app(*DEFAULT_APP)
    return {
        "LEDGERPUSH_VISMANET_API_URL": url,
        "LEDGERPUSH_VISMANET_IDENTITY_URL": url,
        "LEDGERPUSH_VISMANET_CLIENT_ID": DEFAULT_APP[0],
        "LEDGERPUSH_VISMANET_CLIENT_SECRET": DEFAULT_APP[1],
    }


def company_of(tenant_id: str) -> str:
    """The simulated company tenant id `connect` gives a tenant by default."""
    return f"{tenant_id}-company"


def connect(
    sim: VismaNetSimulator,
    tenant_id: str,
    country: str,
    company: str | None = None,
    display_name: str | None = None,
    **mapping: Any,
) -> dict[str, Any]:
    """A simulated company, whose company tenant id the tenant holds as after
    `ledgerpush tenants add ID --provider vismanet --tenant-id ...`: the tenant's
    `add_tenant` arguments. The payment method is mapped to the simulator's bank transfer
    unless `mapping` names another."""
    company = company or company_of(tenant_id)
    sim.add_company(company, display_name or tenant_id)
    mapping = {"payment_method": PAYMENT_METHOD, **mapping}
    return {"credentials": {"tenant_id": company}, "display_name": display_name or tenant_id,
            "mapping": mapping}  # fmt: skip
