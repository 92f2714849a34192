"""e-conomic end to end: a real worker process, the simulator over HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import connect_ec_tenant, invoice_job, unique, wait_for
from worker.devtools.factories import credit_note_job, default_customer, line, payment_job
from worker.jobs import job_id_for, parse_job
from worker.ledger.models import Job
from worker.ledger.store import attempts_of, events_of, find_job
from worker.providers.base import StepContext, Unsupported
from worker.providers.economic.client import EconomicProvider, customer_number, filter_value
from worker.tenancy.tenants import get_tenant
from worker.transport.producer import enqueue, send

pytestmark = pytest.mark.usefixtures("session_worker")
SETTLED = ("booked", "failed", "waiting_for_reauth")
DK_CUSTOMER = default_customer("DK")


def settle(job_id: str, timeout: float = 40) -> Job:
    """Wait until the worker has booked, failed or parked the job."""

    def settled() -> Job | None:
        job = find_job(job_id)
        return job if job is not None and job.state in SETTLED else None

    result: Job = wait_for(settled, timeout)
    return result


def run(payload: dict[str, Any]) -> Job:
    return settle(enqueue(payload))


def dk_invoice(tenant: str, key: str | None = None, **overrides: Any) -> dict[str, Any]:
    return invoice_job(tenant, key, country="DK", **overrides)


def agreement(sim: Any, tenant: str) -> dict[str, Any]:
    state: dict[str, Any] = sim.state_dump()[f"grant-{tenant}"]
    return state


def booked_with(sim: Any, tenant: str, key: str) -> list[dict[str, Any]]:
    booked = agreement(sim, tenant)["booked"]
    return [b for b in booked if b.get("references", {}).get("other") == key]


def calls_of(sim: Any, tenant: str) -> int:
    return sum(agreement(sim, tenant)["calls"].values())


def booked_ok(job: Job) -> None:
    assert job.state == "booked", (job.state, job.error_code, job.error_message, job.error_fields)


def test_dk_invoice_is_booked_with_vat_for_a_new_customer(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    job = run(dk_invoice(tenant, "inv-dk-1"))
    booked_ok(job)
    [invoice] = booked_with(ec_sim, tenant, "inv-dk-1")
    assert (invoice["netAmount"], invoice["vatAmount"], invoice["grossAmount"]) == (
        12000.0, 3000.0, 15000.0,
    )  # fmt: skip
    assert invoice["lines"][0]["vatRate"] == 25.0
    assert invoice["recipient"]["vatZone"]["vatZoneNumber"] == 1
    assert job.remote["book"]["number"] == invoice["bookedInvoiceNumber"]
    number = customer_number("c-42")
    assert 100_000_000 <= number <= 999_999_999 and invoice["customer"]["customerNumber"] == number
    customers = {c["customerNumber"]: c for c in agreement(ec_sim, tenant)["customers"]}
    assert customers[number]["name"] == "Havbryggen ApS" and customers[number]["currency"] == "DKK"
    assert get_tenant(tenant).capabilities["modules"] == []
    assert agreement(ec_sim, tenant)["drafts"] == []


def test_existing_customer_is_found_not_created(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    before = len(agreement(ec_sim, tenant)["customers"])
    customer = {**DK_CUSTOMER, "external_id": "7", "org_number": None}
    booked_ok(run(dk_invoice(tenant, "inv-found", customer=customer)))
    [invoice] = booked_with(ec_sim, tenant, "inv-found")
    assert invoice["customer"]["customerNumber"] == 7
    assert len(agreement(ec_sim, tenant)["customers"]) == before


def test_norway_several_vat_rates(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("NO")
    lines = [line("Konsulent", "2", "1000.00", "25"), line("Mat", "4", "100.00", "15"),
             line("Reise", "1", "500.00", "12")]  # fmt: skip
    booked_ok(run(invoice_job(tenant, "inv-no-rates", lines=lines)))
    [invoice] = booked_with(ec_sim, tenant, "inv-no-rates")
    assert [x["vatRate"] for x in invoice["lines"]] == [25.0, 15.0, 12.0]
    assert Decimal(str(invoice["vatAmount"])) == Decimal("500") + Decimal("60") + Decimal("60")
    assert Decimal(str(invoice["netAmount"])) == Decimal("2900")


def test_foreign_currency_eu_customer(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    customer = {
        "external_id": "de-77", "name": "Berliner Kaffee GmbH", "country": "DE",
        "vat_number": "DE123456789",
        "address": {"line1": "Torstraße 1", "postal_code": "10119", "city": "Berlin"},
    }  # fmt: skip
    lines = [line("Kaffeemaschine", "1", "1500.00", "0")]
    job = run(invoice_job(tenant, "inv-eur", currency="EUR", customer=customer, lines=lines))
    booked_ok(job)
    [invoice] = booked_with(ec_sim, tenant, "inv-eur")
    assert invoice["currency"] == "EUR" and invoice["recipient"]["vatZone"]["vatZoneNumber"] == 2
    assert (invoice["netAmount"], invoice["vatAmount"]) == (1500.0, 0.0)
    assert invoice["netAmountInBaseCurrency"] == pytest.approx(1500 * 7.4605)
    created = [
        c for c in agreement(ec_sim, tenant)["customers"] if c["name"].startswith("Berliner")
    ]
    assert (
        created[0]["currency"] == "EUR" and created[0]["customerGroup"]["customerGroupNumber"] == 2
    )
    # Domestic 25 % VAT cannot be charged to an EU business: refused, not booked at 0 %.
    wrong = run(invoice_job(tenant, "inv-eur-25", currency="EUR", customer=customer))
    assert (wrong.state, wrong.error_code) == ("failed", "no_product_for_vat_rate")


def test_credit_notes_full_and_partial(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    booked_ok(run(dk_invoice(tenant, "inv-cn")))
    full = credit_note_job(tenant, "cn-full", "inv-cn", issue_date="2026-11-25", reason="Returned")
    partial = credit_note_job(
        tenant,
        "cn-part",
        "inv-cn",
        issue_date="2026-11-25",
        reason="Returned",
        lines=[line("Consulting, 2 h", "2", "1200.00", "25")],
    )
    booked_ok(run(full))
    booked_ok(run(partial))
    [note] = booked_with(ec_sim, tenant, "cn-full")
    assert (note["netAmount"], note["grossAmount"]) == (-12000.0, -15000.0)
    assert note["lines"][0]["quantity"] == -10.0
    [part] = booked_with(ec_sim, tenant, "cn-part")
    assert (part["netAmount"], part["vatAmount"]) == (-2400.0, -600.0)


def test_payment_voucher_in_the_daybook(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    invoice = run(dk_invoice(tenant, "inv-pay"))
    booked_ok(invoice)
    payment = payment_job(
        tenant,
        "pay-1",
        "inv-pay",
        "15000.00",
        currency="DKK",
        payment_date="2026-12-01",
        reference="bank",
    )
    job = run(payment)
    booked_ok(job)
    [voucher] = agreement(ec_sim, tenant)["vouchers"]
    [entry] = voucher["entries"]["customerPayments"]
    assert voucher["journal"]["journalNumber"] == 1  # "Daglig kassekladde"
    assert "pay-1" in entry["text"] and entry["amount"] == -15000.0
    assert entry["customerInvoice"] == invoice.remote["book"]["number"]
    assert entry["contraAccount"]["accountNumber"] == 5820
    assert job.remote["pay"] == {"voucher_number": voucher["voucherNumber"], "journal": 1,
                                 "year": "2026"}  # fmt: skip


def test_references_are_read_past_the_first_page(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("NO")
    products = ec_sim.agreements[f"grant-{tenant}"].ref["products"]
    with ec_sim.lock:  # 1,005 products sort before 4002, the only one at 12 %
        for n in range(1005):
            products[f"0{n:04d}"] = {**products["1001"], "productNumber": f"0{n:04d}"}
    booked_ok(run(invoice_job(tenant, "inv-pages", lines=[line("Taxi", "1", "80.00", "12")])))
    [invoice] = booked_with(ec_sim, tenant, "inv-pages")
    assert invoice["lines"][0]["product"]["productNumber"] == "4002"
    provider = EconomicProvider(get_tenant(tenant))
    provider.page_size = 10
    customers = provider.collect("/customers")
    assert len(customers) == len(agreement(ec_sim, tenant)["customers"]) == 26  # 25 + the new one
    assert len(provider.calls) == 3


def test_rejected_with_fields_mapped_to_the_payload(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    odd = dk_invoice(tenant, lines=[line("Odd price", "1", "10.125", "25")])
    cents = settle(send(odd, "invoice", job_id_for(tenant, odd["idempotency_key"])))
    assert (cents.state, cents.error_code) == ("failed", "provider_limit")  # before any write
    assert [f["field"] for f in cents.error_fields or []] == ["invoice.lines.0.unit_price"]
    no_product = run(dk_invoice(tenant, lines=[line("Books", "1", "100.00", "12")]))
    assert no_product.error_code == "no_product_for_vat_rate"
    assert f"ledgerpush tenants map {tenant} article.12=" in (no_product.error_message or "")
    pinned = connect_ec_tenant("DK", **{"article.25": "9999"})
    bad_mapping = run(dk_invoice(pinned))
    assert (bad_mapping.state, bad_mapping.error_code) == ("failed", "mapping_invalid")
    assert bad_mapping.error_fields == [
        {"field": "mapping.article.25", "message": "no product 9999 in e-conomic"}
    ]
    taken = run(dk_invoice(tenant, customer={**DK_CUSTOMER, "external_id": "8"}))
    assert taken.error_code == "customer_number_taken"
    assert [f["field"] for f in taken.error_fields or []] == ["invoice.customer.external_id"]
    assert agreement(ec_sim, tenant)["drafts"] == [] == agreement(ec_sim, pinned)["drafts"]


def test_stale_reference_is_reloaded_and_the_job_books(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    booked_ok(run(dk_invoice(tenant)))
    with ec_sim.lock:  # someone deletes the cached customer in e-conomic
        del ec_sim.agreements[f"grant-{tenant}"].ref["customers"][customer_number("c-42")]
    job = run(dk_invoice(tenant, "inv-stale"))
    booked_ok(job)
    assert [a.error["code"] for a in attempts_of(job.id) if a.error] == ["reference_stale"]
    assert any(c["customerNumber"] == customer_number("c-42")
               for c in agreement(ec_sim, tenant)["customers"])  # fmt: skip


def test_revoked_grant_parks_the_job_and_the_tenant(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    ec_sim.revoke_grant(f"grant-{tenant}")
    job = run(dk_invoice(tenant))
    assert (job.state, job.error_code) == ("waiting_for_reauth", "grant_revoked")
    state = get_tenant(tenant)
    assert state.connection_state == "needs_reauth" and "grant revoked" in str(
        state.connection_reason
    )


def test_module_missing_is_unsupported(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    provider = EconomicProvider(get_tenant(tenant))
    with pytest.raises(Unsupported) as missing:
        provider.projects()
    assert missing.value.code == "module_missing"
    assert missing.value.message.startswith("module_missing: Projects")
    with pytest.raises(Unsupported):
        provider.require_module("Projects")
    with_projects = EconomicProvider(get_tenant(connect_ec_tenant("DK", modules=["Projects"])))
    assert [p["projectNumber"] for p in with_projects.projects()] == [1, 2]
    with_projects.require_module("Projects")


def test_transient_errors_are_retried(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    booked_ok(run(dk_invoice(tenant)))
    try:
        ec_sim.faults.update({"error_rate": 0.2, "throttle_rate": 0.1, "seed": 7})
        ids = [enqueue(dk_invoice(tenant, f"inv-flaky-{n}")) for n in range(3)]
        jobs = [settle(job_id) for job_id in ids]
    finally:
        ec_sim.faults.update({"error_rate": 0, "throttle_rate": 0, "seed": None})
    for job in jobs:
        booked_ok(job)
        assert len(booked_with(ec_sim, tenant, job.idempotency_key)) == 1
    codes = {a.error["code"] for job in jobs for a in attempts_of(job.id) if a.error}
    assert codes and codes <= {"provider_unavailable", "rate_limited"}


def test_same_job_enqueued_twice_books_once(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    payload = dk_invoice(tenant, "inv-twice")
    enqueue(payload)  # two deliveries of one job, processed side by side
    job = run(payload)
    booked_ok(job)
    wait_for(lambda: all(a.ended_at for a in attempts_of(job.id)), 20)
    assert len(booked_with(ec_sim, tenant, "inv-twice")) == 1


def test_lookups_find_exactly_what_this_job_wrote(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    payload = dk_invoice(tenant, "inv-look")
    booked_ok(run(payload))
    provider = EconomicProvider(get_tenant(tenant))
    ctx = StepContext(parse_job(payload), tenant, "DK", {}, {})
    plan = provider.prepare(ctx)
    [found] = plan.step("draft").lookup(ctx)  # booked already: that is the draft's result
    assert (
        found["booked_number"] == booked_with(ec_sim, tenant, "inv-look")[0]["bookedInvoiceNumber"]
    )
    ctx.remote["draft"] = found
    assert plan.step("book").write(ctx) == {"number": found["booked_number"]}
    assert all(c.method == "GET" for c in provider.calls)
    # Filters compare case-insensitively; only the exact key counts.
    other = StepContext(parse_job(dk_invoice(tenant, "INV-LOOK")), tenant, "DK", {}, {})
    assert plan.step("draft").lookup(other) == []
    # Two documents carrying one key: both are returned, for the pipeline to send to review.
    twice = StepContext(parse_job(dk_invoice(tenant, "inv-dup")), tenant, "DK", {}, {})
    draft = provider.prepare(twice).step("draft")
    draft.write(twice)
    draft.write(twice)
    assert len(draft.lookup(twice)) == 2


def test_steady_state_invoice_costs_draft_and_book(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    booked_ok(run(dk_invoice(tenant)))
    before = calls_of(ec_sim, tenant)
    job = run(dk_invoice(tenant, unique("inv-steady")))
    booked_ok(job)
    calls = [c for a in attempts_of(job.id) for c in a.calls]
    assert [(c["method"], c["path"]) for c in calls] == [
        ("POST", "/invoices/drafts"), ("POST", "/invoices/booked"),
    ]  # fmt: skip
    assert calls_of(ec_sim, tenant) - before == 2


def test_lost_answers_after_writes_never_duplicate(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    try:  # every write is applied, then its connection is cut before the answer
        ec_sim.faults.update({"drop_after_write_rate": 1.0})
        job = run(dk_invoice(tenant, "inv-dropped"))
    finally:
        ec_sim.faults.update({"drop_after_write_rate": 0})
    booked_ok(job)
    errors = [a.error["code"] for a in attempts_of(job.id) if a.error]
    assert errors == ["connection_error"] * 3  # customer, draft, book (lookups are reads)
    notes = [e.note for e in events_of(job.id)]
    assert "recovered the result of draft by lookup" in notes
    assert "recovered the result of book by lookup" in notes
    assert len(booked_with(ec_sim, tenant, "inv-dropped")) == 1
    assert agreement(ec_sim, tenant)["drafts"] == []
    assert sum(c["name"] == "Havbryggen ApS" for c in agreement(ec_sim, tenant)["customers"]) == 1


def test_filter_values_are_escaped() -> None:
    assert filter_value("a$b(c)*d,e[f]") == "a$$b$(c$)$*d$,e$[f$]"


def test_line_account_picks_a_product_whose_group_books_on_it(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    lines = [{**line("Kaffe", "2", "100.00", "25"), "account": 1010}]
    booked_ok(run(dk_invoice(tenant, "inv-account", lines=lines)))
    [invoice] = booked_with(ec_sim, tenant, "inv-account")
    ref = ec_sim.agreements[f"grant-{tenant}"].ref
    product = ref["products"][invoice["lines"][0]["product"]["productNumber"]]
    group = ref["productGroups"][product["productGroup"]["productGroupNumber"]]
    assert group["salesAccounts"][1] == 1010  # zone 1: domestic


def test_line_account_no_product_books_on_is_rejected_on_that_line(ec_sim: Any) -> None:
    tenant = connect_ec_tenant("DK")
    lines = [line("a", "1", "100.00", "25"), {**line("b", "1", "100.00", "25"), "account": 1030}]
    job = run(dk_invoice(tenant, "inv-no-account", lines=lines))
    assert job.state == "failed"
    assert job.error_code == "no_product_for_account"
    assert [f["field"] for f in job.error_fields or []] == ["invoice.lines.1.account"]
    both = [{**line("c", "1", "100.00", "25"), "account": 1010, "article_number": "1001"}]
    job = run(dk_invoice(tenant, "inv-both", lines=both))
    assert (job.state, job.error_code) == ("failed", "account_with_article")
    assert [f["field"] for f in job.error_fields or []] == ["invoice.lines.0.account"]
    assert agreement(ec_sim, tenant)["drafts"] == []
