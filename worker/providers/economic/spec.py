"""What the registry knows about e-conomic."""

from __future__ import annotations

from worker.providers.spec import MappingKeys, ProviderSpec

_PACKAGE = "worker.providers.economic"
SPEC = ProviderSpec(
    name="economic",
    label="Visma e-conomic",
    countries=("DK", "NO", "SE"),
    mapping=MappingKeys(
        plain={
            "layout": "layout number of new invoices (default: the customer's, else the "
            "agreement's first)",
            "payment_terms": "payment terms number (default: the terms matching the due days)",
            "product": "default product number",
            "journal": "daybook journal number customer payments are booked in",
            "contra_account": "account a customer payment is booked against (the bank)",
            "customer_group": "customer group number for new customers",
            "round_unit_prices": "half_up: round unit prices to e-conomic's precision "
            "instead of refusing the job",
        },
        rated={
            "vat": "VAT account code for that VAT rate",
            "account": "sales account number for that VAT rate",
            "article": "product number used for lines with that VAT rate",
        },
    ),
    app_settings=("app_public_token", "app_secret_token"),
    app_settings_hint="LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN / LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN",
    client_ref=f"{_PACKAGE}.client:EconomicProvider",
    limits_ref=f"{_PACKAGE}.client:LIMITS",
    connect_ref=f"{_PACKAGE}.connect",
    simulator_ref="worker.simulators.economic:serve",
    local_ref="worker.simulators.economic.local",
    simulator_banner="e-conomic simulator on {url}",
    payment_sync_ref=f"{_PACKAGE}.payments:remaining_amounts",
    settings_ref=f"{_PACKAGE}.settings:EconomicSettings",
)
