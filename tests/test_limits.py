"""Provider limits (worker/providers/limits.py): refused at the door naming the field and the
provider's rule, failed before any write when the job arrives raw, or rounded half up when
the tenant's mapping says round_unit_prices=half_up (and the simulators refuse the unrounded
request, as the real APIs do)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import (
    REFERENCE,
    ROOT,
    WorkerProcess,
    connect_ea_tenant,
    connect_ec_tenant,
    credit_note_job,
    invoice_job,
    needs,
    payment_job,
    unique,
    wait_for,
)
from worker import pipeline
from worker.cli import app as cli_app
from worker.devtools import factories
from worker.jobs import JobValidationError, job_id_for, parse_job
from worker.ledger import store
from worker.ledger.store import attempts_of
from worker.ops import operations
from worker.providers import limits
from worker.tenancy.tenants import update_mapping
from worker.transport.producer import enqueue

pytest_plugins = ["tests.web_fixtures"]

EUR_CUSTOMER = factories.customer(
    "de-1", "Berlin GmbH", "DE", ("Unter den Linden 1", "10117", "Berlin"),
    vat_number="DE123456789",
)  # fmt: skip


def line(price: str, quantity: str = "3", discount: str = "0") -> dict[str, Any]:
    return factories.line("Licence", quantity, price, "0", discount_percent=discount)


def eur_invoice(tenant: str, *lines: dict[str, str]) -> dict[str, Any]:
    return invoice_job(tenant, currency="EUR", customer=EUR_CUSTOMER, lines=list(lines))


def refused(payload: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(JobValidationError) as caught:
        enqueue(payload)
    return {e.field: e.message for e in caught.value.errors}


def agreement(ec_sim: Any, tenant: str) -> dict[str, Any]:
    state: dict[str, Any] = ec_sim.state_dump()[f"grant-{tenant}"]
    return state


# ---------------------------------------------------------------- declared limits


def test_each_provider_declares_its_documented_decimals() -> None:
    economic, eaccounting = limits.limits_for("economic"), limits.limits_for("eaccounting")
    assert economic is not None and eaccounting is not None
    assert (economic.price_places(True), economic.price_places(False)) == (2, 2)
    assert (eaccounting.price_places(True), eaccounting.price_places(False)) == (2, 4)
    assert economic.quantity_places == eaccounting.quantity_places == 2
    assert economic.discount_percent_places == eaccounting.discount_percent_places == 2
    assert (economic.description_length, eaccounting.description_length) == (2500, 2000)


def test_eaccounting_decimals_depend_on_whether_the_customer_is_domestic() -> None:
    ea = limits.limits_for("eaccounting")
    assert ea is not None
    foreign = parse_job(eur_invoice("t", line("49.0719")))
    assert limits.problems(foreign, ea, "NO", {}) == []
    domestic = parse_job(invoice_job("t", lines=[line("49.0719")]))
    [problem] = limits.problems(domestic, ea, "NO", {})
    assert problem.field == "invoice.lines.0.unit_price"
    assert "eAccounting allows at most 2 decimals in Rows.UnitPrice" in problem.message
    assert limits.problems(domestic, ea, "NO", {"round_unit_prices": "half_up"}) == []


# ---------------------------------------------------------------- at the door


def test_enqueue_refuses_naming_the_field_and_the_rule(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    errors = refused(eur_invoice(tenant, line("49.0719", quantity="1.5", discount="2.505")))
    assert set(errors) == {"invoice.lines.0.unit_price", "invoice.lines.0.discount_percent"}
    price = errors["invoice.lines.0.unit_price"]
    assert "e-conomic allows at most 2 decimals in lines.unitNetPrice (got 49.0719" in price
    assert "round_unit_prices=half_up" in price
    assert (
        "e-conomic allows a discount of at most 2 decimals"
        in (errors["invoice.lines.0.discount_percent"])
    )
    payment = payment_job(tenant, "inv-1", "10.125", currency="DKK")
    assert "entries.customerPayments.amount" in refused(payment)["payment.amount"]


def test_unknown_tenant_is_not_checked_at_the_door() -> None:
    payload = eur_invoice(unique("nobody"), line("49.0719"))
    # No tenant to check against yet: enqueued, and checked when a worker runs it.
    assert enqueue(payload) == job_id_for(payload["tenant_id"], payload["idempotency_key"])


def test_api_refuses_with_422_naming_the_field(api: TestClient, ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    payload = eur_invoice(tenant, line("49.0719"))
    response = api.post("/api/jobs", json=payload)
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["field"] == "invoice.lines.0.unit_price"
    assert "lines.unitNetPrice" in detail["message"]
    assert store.find_job(job_id_for(tenant, payload["idempotency_key"])) is None


def test_cli_refuses_the_line_and_enqueues_the_others(tmp_path: Path, ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    bad = eur_invoice(tenant, line("49.0719"))
    good = eur_invoice(tenant, line("49.07"))
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps(bad) + "\n" + json.dumps(good) + "\n")
    result = CliRunner().invoke(cli_app, ["enqueue", str(jobs)])
    said = " ".join(result.output.split())
    assert "invoice.lines.0.unit_price" in said and "lines.unitNetPrice" in said
    assert "enqueued 1 of 2" in said


# ---------------------------------------------------------------- in the worker


def test_raw_job_fails_before_any_write(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    payload = eur_invoice(tenant, line("49.0719"))
    assert pipeline.process(payload).state == "failed"
    job = store.get_job(job_id_for(tenant, payload["idempotency_key"]))
    assert (job.error_category, job.error_code) == ("invalid", "provider_limit")
    assert [f["field"] for f in job.error_fields or []] == ["invoice.lines.0.unit_price"]
    assert attempts_of(job.id) == []
    state = agreement(ec_sim, tenant)
    assert state["drafts"] == [] and state["booked"] == []
    assert all(c["name"] != "Berlin GmbH" for c in state["customers"])


def test_rounding_tenant_books_rounded_prices_and_records_the_difference(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK", round_unit_prices="half_up")
    payload = eur_invoice(tenant, line("49.0719"), line("10.005", quantity="2", discount="50"))
    limits.check_enqueued(parse_job(payload))  # accepted at the door: the tenant rounds
    assert pipeline.process(payload).state == "booked"
    job = store.get_job(job_id_for(tenant, payload["idempotency_key"]))
    assert job.remote["rounding"] == [
        {"field": "invoice.lines.0.unit_price", "sent": "49.0719", "booked": "49.07",
         "line_total_difference": "-0.0057"},
        {"field": "invoice.lines.1.unit_price", "sent": "10.005", "booked": "10.01",
         "line_total_difference": "0.005"},
    ]  # fmt: skip
    [booked] = [
        b for b in agreement(ec_sim, tenant)["booked"]
        if b["references"]["other"] == payload["idempotency_key"]
    ]  # fmt: skip
    prices = [Decimal(str(x["unitNetPrice"])) for x in booked["lines"]]
    assert prices == [Decimal("49.07"), Decimal("10.01")]


def test_eaccounting_domestic_prices_are_rounded_for_a_rounding_tenant(ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    payload = invoice_job(tenant, lines=[line("99.125")])
    assert "invoice.lines.0.unit_price" in refused(payload)
    update_mapping(tenant, {"round_unit_prices": "half_up"})
    assert pipeline.process(payload).state == "booked"
    job = store.get_job(job_id_for(tenant, payload["idempotency_key"]))
    assert job.remote["rounding"][0]["booked"] == "99.13"
    [invoice] = ea_sim.state_dump()[tenant]["invoices"]
    assert Decimal(str(invoice["Rows"][0]["UnitPrice"])) == Decimal("99.13")


def test_credit_note_lines_are_held_to_the_original_customers_rule(ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    original = eur_invoice(tenant, line("49.0719"))  # foreign customer: 4 decimals
    assert pipeline.process(original).state == "booked"
    credit = credit_note_job(
        tenant, original["idempotency_key"], lines=[line("49.0719", quantity="1")]
    )
    limits.check_enqueued(parse_job(credit))  # accepted at the door
    assert pipeline.process(credit).state == "booked"


# ---------------------------------------------------------------- CI never skips silently


def test_a_missing_prerequisite_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("LEDGERPUSH_CI", raising=False)
    local = needs(False, "a thing")
    assert (local.name, local.kwargs["reason"]) == ("skipif", "needs a thing")
    monkeypatch.setenv("LEDGERPUSH_CI", "1")
    ci = needs(False, "a thing")
    assert (ci.name, ci.args) == ("missing_in_ci", ("a thing",))
    assert needs(True, "a thing").name == "skipif" and needs(True, "a thing").args == (False,)
    assert REFERENCE.name == "reference" and REFERENCE.parent in (
        ROOT.parent / "shared",
        ROOT / "tests",
    )
    assert (REFERENCE / "eaccounting" / "endpoints.json").is_file()


def test_failed_on_a_limit_then_retried_after_the_tenant_accepts_rounding(
    session_worker: WorkerProcess, ec_sim: Any
) -> None:
    tenant = connect_ec_tenant("DK")
    payload = eur_invoice(tenant, line("49.0719"))
    assert pipeline.process(payload).state == "failed"
    job_id = job_id_for(tenant, payload["idempotency_key"])
    update_mapping(tenant, {"round_unit_prices": "half_up"})
    operations.retry(job_id, "operator")
    job = wait_for(lambda: (j := store.get_job(job_id)).state in ("booked", "failed") and j, 60)
    assert job.state == "booked", (job.error_code, job.error_message)
    assert job.remote["rounding"][0]["booked"] == "49.07"


def test_eaccounting_currency_the_company_lacks_fails_before_the_customer_is_written(
    ea_sim: Any,
) -> None:
    tenant = connect_ea_tenant("NO")
    customers = len(ea_sim.state_dump()[tenant]["customers"])
    payload = invoice_job(tenant, currency="ISK", customer=EUR_CUSTOMER, lines=[line("100")])
    assert pipeline.process(payload).state == "failed"
    job = store.get_job(job_id_for(tenant, payload["idempotency_key"]))
    assert (job.error_code, job.error_fields) == (
        "unknown_currency",
        [{"field": "invoice.currency", "message": "ISK is not available"}],
    )
    assert len(ea_sim.state_dump()[tenant]["customers"]) == customers
    assert pipeline.process(eur_invoice(tenant, line("100"))).state == "booked"
