"""The e-conomic simulator in a local stack (`ledgerpush demo`, `ledgerpush chaos`, the
benchmarks): ledgerpush's settings pointing at it, and what a tenant connected to it
holds (worker/devtools/localstack.py adds the tenant)."""

from __future__ import annotations

from typing import Any

from worker.simulators.economic.simulator import EconomicSimulator


def create() -> EconomicSimulator:
    return EconomicSimulator()


def settings(sim: EconomicSimulator, url: str) -> dict[str, str]:
    """The settings that send ledgerpush to the simulator served at `url`."""
    return {
        "LEDGERPUSH_ECONOMIC_API_URL": url,
        "LEDGERPUSH_ECONOMIC_INSTALL_URL": f"{url}/_control/install",
    }


def connect(
    sim: EconomicSimulator, tenant_id: str, country: str, modules: list[str] | None = None
) -> dict[str, Any]:
    """A simulated agreement (with the simulator's modules unless `modules` are given),
    whose grant token the tenant holds: the tenant's `add_tenant` arguments."""
    grant = sim.add_agreement(country, modules=modules, grant_token=f"grant-{tenant_id}")
    return {"credentials": {"grant_token": grant}, "display_name": tenant_id}
