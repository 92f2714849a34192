"""What the registry knows about the toy provider."""

from __future__ import annotations

from worker.providers.spec import MappingKeys, ProviderSpec

SPEC = ProviderSpec(
    name="toy",
    label="Toy Books",
    countries=("NO",),
    mapping=MappingKeys(plain={"round_unit_prices": "half_up: round unit prices"}),
    app_settings=(),
    app_settings_hint="",
    client_ref="tests.toy_provider.client:ToyProvider",
    limits_ref="tests.toy_provider.client:LIMITS",
    connect_ref="tests.toy_provider.client",
    simulator_ref="tests.toy_provider.simulator:serve",
    payment_sync_ref="tests.toy_provider.client:ToyProvider",
)
