"""The query strings of the recovery lookups (a write whose result was not recorded),
pinned as the simulators received them: changing a filter's form is a deliberate change.

e-conomic documents its filter syntax (introduction.md, "Filtering": `?filter=name$eq:Joe`,
and README: `references.other` is filterable on drafts and booked invoices). The
eAccounting reference only says "OData `$filter` works on many list endpoints" and
documents `$page`/`$pagesize`: the lookups keep to one plain form, `<Field> eq <value>`
joined by `and`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.conftest import connect_ea_tenant, connect_ec_tenant, invoice_job, unique
from worker import pipeline
from worker.jobs import job_id_for, parse_job
from worker.ledger import store
from worker.providers.base import StepContext
from worker.providers.eaccounting.client import EAccountingProvider
from worker.providers.economic.client import EconomicProvider
from worker.tenancy.tenants import get_tenant

LONG_AGO = dt.datetime(2020, 1, 1)


def booked(payload: dict[str, Any]) -> dict[str, Any]:
    assert pipeline.process(payload).state == "booked"
    remote: dict[str, Any] = store.get_job(
        job_id_for(payload["tenant_id"], payload["idempotency_key"])
    ).remote
    return remote


def test_eaccounting_draft_and_invoice_lookups(ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    payload = invoice_job(tenant)
    remote = booked(payload)
    provider = EAccountingProvider(get_tenant(tenant))
    ctx = StepContext(parse_job(payload), tenant, "NO", {}, {}, intent_at=LONG_AGO)
    plan = provider.prepare(ctx)
    ea_sim.log.queries.clear()
    assert plan.step("draft").lookup(ctx) == []  # converted: no draft left
    ctx.remote["draft"] = remote["draft"]
    # A document found by lookup carries no totals (those come from the answer to the write).
    assert plan.step("book").lookup(ctx) == [_without_totals(remote["book"])]
    customer = remote["draft"]["customer_id"]
    wanted = f"$filter=CustomerId eq {customer} and InvoiceDate eq 2026-11-20&$page=1&$pagesize=200"
    assert ea_sim.log.queries_to("GET", "/v2/customerinvoicedrafts") == [wanted]
    assert ea_sim.log.queries_to("GET", "/v2/customerinvoices") == [wanted]


def test_economic_draft_and_booked_lookups(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    key = unique("inv")
    customer = {**invoice_job(tenant)["invoice"]["customer"], "country": "DK"}
    payload = invoice_job(tenant, key, currency="DKK", customer=customer)
    remote = booked(payload)
    provider = EconomicProvider(get_tenant(tenant))
    ctx = StepContext(parse_job(payload), tenant, "DK", {}, {})
    plan = provider.prepare(ctx)
    ec_sim.log.queries.clear()
    [found] = plan.step("draft").lookup(ctx)
    ctx.remote["draft"] = remote["draft"]
    # A document found by lookup carries no totals (those come from the answer to the write).
    assert plan.step("book").lookup(ctx) == [_without_totals(remote["book"])]
    assert found["booked_number"] == remote["book"]["number"]
    wanted = f"filter=references.other$eq:{key}&skippages=0&pagesize=1000"
    assert ec_sim.log.queries_to("GET", "/invoices/drafts") == [wanted]
    assert set(ec_sim.log.queries_to("GET", "/invoices/booked")) == {wanted}


def _without_totals(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "totals"}
