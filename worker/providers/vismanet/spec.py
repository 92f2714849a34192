"""What the registry knows about Visma.net ERP."""

from __future__ import annotations

from worker.providers.spec import MappingKeys, OperatorConnect, ProviderSpec

_PACKAGE = "worker.providers.vismanet"
SPEC = ProviderSpec(
    name="vismanet",
    label="Visma.net ERP",
    countries=("NO", "SE", "DK", "FI", "NL"),
    mapping=MappingKeys(
        plain={
            "payment_terms": "credit terms id of new customers and invoices (default: the "
            "terms whose days are closest to the invoice's)",
            "payment_method": "payment method id of customer payments (default: the only "
            "active one)",
            "cash_account": "cash account number payments are booked on (default: the only "
            "one in the payment's currency)",
            "branch": "branch number documents and payments are booked in (default: the "
            "main branch)",
            "vat_zone_foreign": "VAT zone id of new customers outside the company's country "
            "(default: the only zone besides the main branch's)",
            "subaccount": "subaccount of every line as segments, e.g. 1=0;2=100 (default: "
            "the ERP's)",
            "round_unit_prices": "half_up: round unit prices to Visma.net's precision "
            "instead of refusing the job",
        },
        rated={
            "vat": "VAT category id for lines with that VAT rate (must fit the customer's "
            "VAT zone)",
            "article": "inventory number used for lines with that VAT rate",
        },
    ),
    app_settings=("client_id", "client_secret"),
    app_settings_hint="LEDGERPUSH_VISMANET_CLIENT_ID / LEDGERPUSH_VISMANET_CLIENT_SECRET",
    client_ref=f"{_PACKAGE}.client:VismaNetProvider",
    limits_ref=f"{_PACKAGE}.client:LIMITS",
    connect_ref=f"{_PACKAGE}.connect",
    simulator_ref="worker.simulators.vismanet:serve",
    local_ref="worker.simulators.vismanet.local",
    simulator_banner="Visma.net simulator on {url} (API /v1 /v2, token /connect)",
    payment_sync_ref=f"{_PACKAGE}.payments:remaining_amounts",
    settings_ref=f"{_PACKAGE}.settings:VismaNetSettings",
    inbound_ref=f"{_PACKAGE}.inbound",
    operator_connect=OperatorConnect(
        credential="tenant_id",
        field="company_tenant_id",
        label="Company tenant id",
        help="The company's administrator approves ledgerpush in Visma App Store first. The "
        "company tenant id is in Visma.net under Company > Configuration > Tenant id — not "
        "the customer (contract) tenant id.",
    ),
)
