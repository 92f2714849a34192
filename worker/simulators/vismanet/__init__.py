"""A Visma.net ERP (Visma Net Financials) simulator: Visma Connect client credentials and
the `/v1`, `/v2` API on one port, built from `reference/vismanet` (README facts,
endpoints.json and models.json from Visma's spec).

What it simulates:

- `POST /connect/token` (form, `grant_type=client_credentials`, `client_id`,
  `client_secret`, space-separated `vismanet_erp_service_api:*` scopes, `tenant_id`).
  Tokens for a customer (contract) tenant id are issued but every API call answers 401
  (the documented wrong-tenant mistake); an app whose approval is withdrawn for a tenant
  is refused at the token endpoint (400 `unauthorized_client`).
- Customers, inventory, customer invoices (v2 create, v1 read/update/delete/release),
  credit notes (with gross `applicationLines`), customer payments (release in the
  background: 202, state, `/content`), VAT codes/categories/zones, accounts, branches,
  organisation, financial periods, currencies, credit terms (paged object), payment
  methods, cash accounts, number series; every other endpoint of endpoints.json answers
  501 "not simulated".
- Write bodies checked against models.json (every scalar wrapped `{"value": ...}`, types,
  enums); lines without `"operation": "Insert"` are dropped; the ERP's screen rules answer
  in the `message` form, licence problems in the IPP exception form (12027).
- Status model Hold/Balanced -> release -> Open -> fully applied -> Closed; released
  documents are immutable; `If-Match` (412 when stale); lists as bare arrays with
  `metadata` (where the read model has that field), paging with per-endpoint maximum and a small silent default page; fixed
  window rate limit per company+client with `X-RateLimit-*` on every API answer; faults
  from `common.FaultInjector`; webhook notifications signed like the Visma Webhook
  Dispatcher (`x-vwd-signature-v1` = base64 HMAC-SHA256 of the raw body).

Choices where the reference is only [inferred] or silent:

- Any API call with a wrong-tenant token, or to a company whose licence was withdrawn
  (control route), answers 401 with the IPP body "No license for this company." (12027);
  a missing, unknown or expired token answers 401 `{"message": ...}`.
- Scopes per method: GET needs `:read`, POST `:create` (actions `…/action/…` `:update`),
  PUT `:update`, DELETE `:delete`; a missing one answers 403 in the `message` form.
- Withdrawing an app's approval also invalidates the tokens already issued for it.
- 404, 405, 412, 429 and 501 bodies use the `message` form; 429 also has `Retry-After`.
- Page limits: 500 for invoices, credit notes, payments and inventory, 1000 elsewhere;
  50 rows when no `pageSize` is given (configurable).
- Release of a Hold document, re-release, and PUT/DELETE of a released document are
  400 business errors; release answers `Done`, or `Queued` with a configurable share,
  the document then turning Open after `release_queued_seconds`.
- A payment's `paymentAmount` must equal the sum of its lines' `amountPaid` (when it has
  lines); an amount above the document's balance is refused; payments and credit notes
  only apply to Open documents of the same customer, else `AdjdRefNbr '<n>' cannot be
  found in the system.`
- A line's `vatCodeId` is the VAT category (TaxCategoryID); the category must list a VAT
  code that applies in the customer's (or the document's) VAT zone.
- The document's financial period comes from `financialPeriod` (YYYYMM), else
  `postPeriod` (MMYYYY), else the document date; closed in the customer ledger -> 400.
- `Location` of a created invoice or credit note points at the v1 resource (v2 has no
  GET); the id is its last segment. A duplicate `referenceNumber` (with
  `overrideNumberSeries`) is refused.
- Webhook payload: `{"event", "tenantId", "entity", "number", "timestamp"}`; events
  `Customer.Changed` and `ArInvoice.StatusChanged`; non-2xx answers are retried 3 times.
- Token `expires_in` defaults to 3600 (configurable).
- A supplied customer `number` is used as given (a duplicate is refused); without one
  the CUSTOMER number series assigns the next number.
- `erp-api-background: <url>` / `subscription` are accepted like `none`: the state names
  the address, but no callback is sent.

    sim = VismaNetSimulator()
    sim.add_app("ledgerpush", "sim-secret")
    sim.add_company("nordlys-company-tenant", "Nordlys Demo AS")
    server = SimulatorServer(sim.app).start()
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from worker.simulators.common import SimulatorServer
from worker.simulators.vismanet.simulator import (
    DEFAULT_APP,
    DEFAULT_COMPANIES,
    DEFAULT_CONTRACT_TENANTS,
    VismaNetSimulator,
)


def create_simulator(**options: Any) -> VismaNetSimulator:
    """A simulator with the default app, the seeded company and its contract tenant."""
    simulator = VismaNetSimulator(**options)
    simulator.add_app(*DEFAULT_APP)
    for tenant_id, name in DEFAULT_COMPANIES:
        simulator.add_company(tenant_id, name)
    for tenant_id in DEFAULT_CONTRACT_TENANTS:
        simulator.add_contract_tenant(tenant_id)
    return simulator


def create_app(**options: Any) -> ASGIApp:
    return create_simulator(**options).app


def serve(port: int, host: str = "127.0.0.1", **options: Any) -> None:
    """Runs the simulator in the foreground (`ledgerpush simulate vismanet --port P`)."""
    SimulatorServer(create_app(**options), host=host, port=port).serve_forever()


__all__ = [
    "DEFAULT_APP", "DEFAULT_COMPANIES", "DEFAULT_CONTRACT_TENANTS", "VismaNetSimulator",
    "create_app", "create_simulator", "serve",
]  # fmt: skip
