"""What the registry knows about eAccounting."""

from __future__ import annotations

from worker.providers.spec import MappingKeys, ProviderSpec

_PACKAGE = "worker.providers.eaccounting"
SPEC = ProviderSpec(
    name="eaccounting",
    label="Visma eAccounting",
    countries=("NO", "NL", "SE", "FI"),
    mapping=MappingKeys(
        plain={
            "payment_terms": "terms of payment id for new customers (default: the terms "
            "whose days are closest to the invoice's)",
            "bank_account": "bank account id payments are booked on (default: the default "
            "cheque account in the payment's currency)",
            "round_unit_prices": "half_up: round unit prices to eAccounting's precision "
            "instead of refusing the job",
        },
        rated={
            "vat": "article account coding id for that VAT rate",
            "article": "article id used for lines with that VAT rate",
        },
    ),
    app_settings=("client_id", "client_secret"),
    app_settings_hint="LEDGERPUSH_EACCOUNTING_CLIENT_ID / LEDGERPUSH_EACCOUNTING_CLIENT_SECRET",
    client_ref=f"{_PACKAGE}.client:EAccountingProvider",
    limits_ref=f"{_PACKAGE}.client:LIMITS",
    connect_ref=f"{_PACKAGE}.connect",
    simulator_ref="worker.simulators.eaccounting:serve",
    local_ref="worker.simulators.eaccounting.local",
    simulator_banner="eAccounting simulator on {url} (API /v2, identity /connect)",
    payment_sync_ref=f"{_PACKAGE}.payments:remaining_amounts",
    settings_ref=f"{_PACKAGE}.settings:EAccountingSettings",
    proactive_refresh_ref=f"{_PACKAGE}.auth:refresh",
)
