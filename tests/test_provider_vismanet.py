"""Visma.net ERP end to end over real HTTP against the simulator: the real pipeline
(`worker.pipeline.process`), real Redis and ledger; the provider's steps directly where
a test stops between them."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import (
    VN_APP,
    credit_note_job,
    invoice_job,
    payment_job,
    point_vismanet_at,
    unique,
    wait_for,
)
from worker import pipeline
from worker.devtools.factories import customer, line
from worker.jobs import job_id_for, parse_job
from worker.ledger import store
from worker.ledger.models import Job
from worker.providers.base import NeedsReauth, StepContext, Transient
from worker.providers.vismanet import transport
from worker.providers.vismanet.client import VismaNetProvider
from worker.providers.vismanet.errors import WRONG_TENANT
from worker.tenancy.tenants import add_tenant, credentials_of, get_tenant, store_credentials

CONTRACT_TENANT = "nordlys-customer-tenant"


@pytest.fixture
def sim(vn_sim: Any, vn_server: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The session's simulator, with ledgerpush's settings pointing at it."""
    _, url = vn_server
    point_vismanet_at(monkeypatch, url)
    vn_sim.log.reset()
    return vn_sim


def vn_tenant(sim: Any, company_tenant_id: str | None = None, **mapping: Any) -> str:
    """A ledgerpush tenant for a new simulated company (or the given tenant id)."""
    tenant_id = unique("vn-no")
    if company_tenant_id is None:
        company_tenant_id = f"{tenant_id}-company"
        sim.add_company(company_tenant_id, f"Company of {tenant_id}")
    add_tenant(tenant_id, "vismanet", "NO", {"tenant_id": company_tenant_id}, mapping=mapping)
    return tenant_id


def company_of(sim: Any, tenant_id: str) -> Any:
    return sim.companies[credentials_of(get_tenant(tenant_id))["tenant_id"]]


def run(payload: dict[str, Any]) -> Job:
    pipeline.process(payload)
    return store.get_job(job_id_for(payload["tenant_id"], payload["idempotency_key"]))


def booked(payload: dict[str, Any]) -> Job:
    job = run(payload)
    assert job.state == "booked", (job.error_code, job.error_message, job.error_fields)
    return job


def document(sim: Any, tenant_id: str, kind: str, number: str) -> Any:
    return company_of(sim, tenant_id).document(kind, number)


def writes(sim: Any, endpoint: str) -> int:
    return int(sim.log.snapshot()["by_endpoint"].get(endpoint, 0))


def bank_payment(tenant: str, invoice: str, amount: str) -> dict[str, Any]:
    return payment_job(tenant, invoice, amount, payment_date="2026-11-22", reference="bank-77")


# -- documents ---------------------------------------------------------------------------


def test_invoice_is_drafted_and_released_through_the_pipeline(sim: Any) -> None:
    tenant = vn_tenant(sim)
    payload = invoice_job(tenant)
    job = booked(payload)
    number = job.remote["book"]["number"]
    invoice = document(sim, tenant, "Invoice", number)
    assert invoice.status == "Open"
    assert invoice.fields["externalReference"] == payload["idempotency_key"]
    assert invoice.amount == Decimal("15000.00")
    assert [(li.vat_category, li.inventory_number) for li in invoice.lines] == [("1", "LP-VAT-1")]
    assert job.remote["book"]["totals"]["gross"] == "15000.00"
    assert get_tenant(tenant).company_id == credentials_of(get_tenant(tenant))["tenant_id"]
    # create + release on the write path (no status read when the release answers Done).
    assert writes(sim, "POST /v2/customerinvoice") == 1
    assert writes(sim, "POST /v1/customerinvoice/{id}/action/release") == 1


def test_credit_notes_full_and_partial_apply_gross_amounts(sim: Any) -> None:
    tenant = vn_tenant(sim)
    full_invoice, partial_invoice = invoice_job(tenant), invoice_job(tenant)
    first = booked(full_invoice).remote["book"]["number"]
    second = booked(partial_invoice).remote["book"]["number"]

    full = booked(credit_note_job(tenant, full_invoice["idempotency_key"]))
    assert full.remote["draft"]["applied"] == "15000.00"
    assert document(sim, tenant, "Invoice", first).status == "Closed"

    partial_lines = [line("Consulting, November", "2", "1200.00", "25")]
    partial = booked(
        credit_note_job(tenant, partial_invoice["idempotency_key"], lines=partial_lines)
    )
    assert partial.remote["draft"]["applied"] == "3000.00"  # 2400 net + 600 VAT
    note = document(sim, tenant, "CreditNote", partial.remote["book"]["number"])
    assert note.status in ("Open", "Closed")
    assert document(sim, tenant, "Invoice", second).balance == Decimal("12000.00")


def test_payment_is_released_in_the_background(sim: Any) -> None:
    tenant = vn_tenant(sim, payment_method="BANK")
    invoice = invoice_job(tenant)
    number = booked(invoice).remote["book"]["number"]
    job = booked(bank_payment(tenant, invoice["idempotency_key"], "5000.00"))
    assert job.remote["release"]["background_id"]
    payment = company_of(sim, tenant).payments[job.remote["pay"]["number"]]
    assert payment.fields["paymentRef"] == job.idempotency_key
    assert payment.status in ("Open", "Closed")
    assert document(sim, tenant, "Invoice", number).balance == Decimal("10000.00")


def test_customer_is_upserted_by_our_customer_number(sim: Any) -> None:
    tenant = vn_tenant(sim)
    customer = {**invoice_job(tenant)["invoice"]["customer"], "external_id": "10000"}
    booked(invoice_job(tenant, customer=customer))
    stored = company_of(sim, tenant).customers["10000"]
    assert stored["name"] == "Nordic Tools AS"  # was "Fjordkraft Verksted AS"
    new = booked(invoice_job(tenant)).remote["draft"]["customer"]
    assert new == "c-42"
    assert company_of(sim, tenant).customers["c-42"]["vatZone"]["id"] == "01"


# -- references --------------------------------------------------------------------------


def test_vat_category_fits_the_customers_vat_zone(sim: Any) -> None:
    tenant = vn_tenant(sim)
    domestic = booked(invoice_job(tenant, lines=[line("Book", "1", "100.00", "0")]))
    german = customer("de-1", "Berlin GmbH", "DE", ("Unter den Linden 1", "10117", "Berlin"))
    export = booked(invoice_job(tenant, customer=german, lines=[line("Book", "1", "100.00", "0")]))
    home = document(sim, tenant, "Invoice", domestic.remote["book"]["number"])
    abroad = document(sim, tenant, "Invoice", export.remote["book"]["number"])
    assert (home.fields["vatZone"], home.lines[0].vat_category) == ("01", "4")
    assert (abroad.fields["vatZone"], abroad.lines[0].vat_category) == ("03", "5")


def test_a_pinned_vat_category_that_misfits_the_zone_is_refused_before_writing(sim: Any) -> None:
    tenant = vn_tenant(sim, **{"vat.25": "5"})  # Utførsel: no 25 % code in zone 01
    job = run(invoice_job(tenant))
    assert (job.state, job.error_code) == ("failed", "mapping_invalid")
    assert [f["field"] for f in job.error_fields or []] == ["mapping.vat.25"]
    assert writes(sim, "POST /v2/customerinvoice") == 0


def test_closed_period_is_refused_before_any_write(sim: Any) -> None:
    tenant = vn_tenant(sim)
    job = run(invoice_job(tenant, issue_date="2025-01-15", due_date="2025-01-29"))
    assert (job.state, job.error_code) == ("failed", "period_closed")
    assert [f["field"] for f in job.error_fields or []] == ["invoice.issue_date"]
    endpoints = sim.log.snapshot()["by_endpoint"]
    assert [e for e in endpoints if e.startswith(("POST /v", "PUT", "DELETE"))] == []


# -- rate limits and tokens -----------------------------------------------------------------


def test_rate_limit_headers_stop_calls_before_a_429(sim: Any) -> None:
    tenant = vn_tenant(sim)
    sim.update_config({"rate_limit": 3})
    provider = VismaNetProvider(get_tenant(tenant))
    for _ in range(3):
        provider.http.get_json("/v1/currency")
    with pytest.raises(Transient) as waiting:
        provider.http.get_json("/v1/currency")
    assert waiting.value.code == "rate_limited"
    assert waiting.value.retry_after and waiting.value.retry_after > 5
    assert sim.log.snapshot()["by_status"].get("429", 0) == 0
    # Another worker's client for the same tenant waits too.
    with pytest.raises(Transient):
        VismaNetProvider(get_tenant(tenant)).http.get_json("/v1/currency")


def test_expired_token_is_renewed_before_the_call(sim: Any) -> None:
    tenant = vn_tenant(sim)
    VismaNetProvider(get_tenant(tenant)).http.get_json("/v1/currency")
    calls = sim.identity.calls
    store_credentials(tenant, {**credentials_of(get_tenant(tenant)), "expires_at": time.time()})
    VismaNetProvider(get_tenant(tenant)).http.get_json("/v1/currency")
    assert sim.identity.calls == calls + 1
    assert sim.log.snapshot()["by_status"].get("401", 0) == 0


def test_401_gets_one_new_token_for_concurrent_clients(sim: Any) -> None:
    tenant = vn_tenant(sim)
    VismaNetProvider(get_tenant(tenant)).http.get_json("/v1/currency")
    calls = sim.identity.calls
    sim.identity.expire(credentials_of(get_tenant(tenant))["tenant_id"])  # tokens revoked
    clients = [VismaNetProvider(get_tenant(tenant)) for _ in range(8)]
    errors: list[BaseException] = []

    def call(provider: VismaNetProvider) -> None:
        try:
            provider.http.get_json("/v1/currency")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sim.identity.calls == calls + 1


def test_a_token_another_worker_got_and_that_was_revoked_since_is_replaced(sim: Any) -> None:
    """A client's token is refused; the one another worker stored meanwhile was revoked
    too: the client asks for a token of its own instead of parking the tenant as if its
    tenant id were wrong."""
    tenant = vn_tenant(sim)
    company = credentials_of(get_tenant(tenant))["tenant_id"]
    stale = VismaNetProvider(get_tenant(tenant))
    stale.http.get_json("/v1/currency")
    sim.identity.expire(company)
    VismaNetProvider(get_tenant(tenant)).http.get_json("/v1/currency")  # stores a new one
    sim.identity.expire(company)
    calls = sim.identity.calls
    stale.http.get_json("/v1/currency")
    assert sim.identity.calls == calls + 1
    assert get_tenant(tenant).connection_state != "needs_reauth"


def test_customer_tenant_id_parks_the_tenant_with_the_explanation(sim: Any) -> None:
    tenant = vn_tenant(sim, company_tenant_id=CONTRACT_TENANT)
    job = run(invoice_job(tenant))
    assert job.state == "waiting_for_reauth"
    assert get_tenant(tenant).connection_state == "needs_reauth"
    assert get_tenant(tenant).connection_reason == WRONG_TENANT


def test_withdrawn_approval_needs_reauth_with_the_reason(sim: Any) -> None:
    tenant = vn_tenant(sim)
    company = credentials_of(get_tenant(tenant))["tenant_id"]
    sim.identity.set_approval(VN_APP[0], company, False)
    with pytest.raises(NeedsReauth) as refused:
        VismaNetProvider(get_tenant(tenant)).http.get_json("/v1/currency")
    assert "approve the app" in refused.value.message
    assert "unauthorized_client" in refused.value.message


# -- exactly once ------------------------------------------------------------------------------


def test_a_lost_answer_to_the_draft_is_found_by_its_external_reference(sim: Any) -> None:
    tenant = vn_tenant(sim)
    booked(invoice_job(tenant))  # the customer and article exist now
    payload = invoice_job(tenant)
    sim.faults.update({"drop_after_write_rate": 1.0})
    try:
        first = run(payload)
    finally:
        sim.faults.update({"drop_after_write_rate": 0.0})
    assert first.state == "retry_scheduled"
    job = booked(payload)
    key = payload["idempotency_key"]
    mine = [d for d in company_of(sim, tenant).documents.values()
            if d.fields.get("externalReference") == key]  # fmt: skip
    assert [d.number for d in mine] == [job.remote["draft"]["number"]]
    assert writes(sim, "POST /v2/customerinvoice") == 2  # the first invoice and the lost one


def test_lookups_find_documents_and_payments_by_the_jobs_key(sim: Any) -> None:
    tenant = vn_tenant(sim, payment_method="BANK")
    invoice = invoice_job(tenant)
    remote = booked(invoice).remote
    provider = VismaNetProvider(get_tenant(tenant))
    ctx = StepContext(parse_job(invoice), tenant, "NO", {}, {})
    assert provider.prepare(ctx).step("draft").lookup(ctx) == [remote["draft"]]
    pay = bank_payment(tenant, invoice["idempotency_key"], "100.00")
    paid = booked(pay).remote
    related = {"invoice": remote, "invoice_payload": invoice}
    ctx = StepContext(parse_job(pay), tenant, "NO", {}, {}, related=related)
    assert provider.prepare(ctx).step("pay").lookup(ctx) == [paid["pay"]]
    queries = sim.log.queries_to("GET", "/v1/customerPayment")
    assert any("invoiceRefNbr=" in q and "pageNumber=1" in q and "pageSize=" in q for q in queries)


def test_a_recorded_background_id_is_polled_not_sent_again(
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = vn_tenant(sim, payment_method="BANK")
    invoice = invoice_job(tenant)
    booked(invoice)
    sim.update_config({"background_delay_seconds": 1.5})
    monkeypatch.setattr(transport, "WAIT_SECONDS", 0.2)
    payload = bank_payment(tenant, invoice["idempotency_key"], "15000.00")
    first = run(payload)
    assert (first.state, first.error_code) == ("retry_scheduled", "background_pending")
    assert first.intent is not None and first.intent["background_id"]
    time.sleep(1.6)
    job = booked(payload)
    assert job.remote["release"]["background_id"] == first.intent["background_id"]
    assert writes(sim, "POST /v1/customerPayment/{id}/action/release") == 1


def test_a_queued_release_is_confirmed_by_reading_the_status(sim: Any) -> None:
    tenant = vn_tenant(sim)
    sim.update_config({"release_queued_rate": 1.0, "release_queued_seconds": 0.5})
    job = booked(invoice_job(tenant))
    assert document(sim, tenant, "Invoice", job.remote["book"]["number"]).status == "Open"
    assert writes(sim, "POST /v1/customerinvoice/{id}/action/release") == 1
    assert writes(sim, "GET /v1/customerinvoice/{id}") >= 1


def test_a_failed_background_release_is_sent_again_once_it_failed(sim: Any) -> None:
    tenant = vn_tenant(sim, payment_method="BANK")
    invoice = invoice_job(tenant)
    booked(invoice)
    sim.update_config({"background_fail_rate": 1.0})
    payload = bank_payment(tenant, invoice["idempotency_key"], "15000.00")
    first = run(payload)
    assert (first.state, first.error_code) == ("retry_scheduled", "background_failed")
    sim.update_config({"background_fail_rate": 0.0})
    job = booked(payload)
    assert job.remote["release"]["background_id"] != first.intent["background_id"]
    assert writes(sim, "POST /v1/customerPayment/{id}/action/release") == 2
    assert writes(sim, "POST /v1/customerPayment") == 1


def test_credit_note_lookup_uses_the_credit_note_list(sim: Any) -> None:
    tenant = vn_tenant(sim)
    invoice = invoice_job(tenant)
    booked(invoice)
    note = credit_note_job(tenant, invoice["idempotency_key"])
    remote = booked(note).remote
    provider = VismaNetProvider(get_tenant(tenant))
    related = {"invoice": booked(invoice).remote, "invoice_payload": invoice}
    ctx = StepContext(parse_job(note), tenant, "NO", {}, {}, related=related)
    found = provider.prepare(ctx).step("draft").lookup(ctx)
    assert [f["number"] for f in found] == [remote["draft"]["number"]]
    key = note["idempotency_key"]
    assert any(
        f"externalReference={key}" in q and "pageNumber=1" in q
        for q in sim.log.queries_to("GET", "/v1/customerCreditNote")
    )


def test_a_parked_tenant_resumes_once_connected_with_the_company_tenant_id(
    vn_session_sim: Any,
) -> None:
    """On the session's simulator: the resumed job is sent to the queue, and a session
    worker running in this test process may take it before this test runs it itself;
    both reach the same simulator, so whichever books it books it once."""
    from worker.providers.vismanet import connect

    sim = vn_session_sim
    tenant = vn_tenant(sim, company_tenant_id=CONTRACT_TENANT)
    payload = invoice_job(tenant)
    assert run(payload).state == "waiting_for_reauth"
    company = f"{tenant}-fixed"
    sim.add_company(company, "Fixed AS")
    done = connect.connect(tenant, company, "test")
    assert (done.resumed, done.company.id) == (1, company)
    assert get_tenant(tenant).connection_state == "connected"
    job_id = job_id_for(payload["tenant_id"], payload["idempotency_key"])
    pipeline.process(payload)
    job = wait_for(lambda: (j := store.get_job(job_id)).state == "booked" and j, 60)
    assert job.remote["book"]["number"]
    assert len(sim.companies[company].documents) == 1


def test_cli_adds_a_tenant_with_its_company_tenant_id(sim: Any) -> None:
    from typer.testing import CliRunner

    from worker.cli import app

    tenant = unique("vn-cli")
    result = CliRunner().invoke(
        app, ["tenants", "add", tenant, "--provider", "vismanet", "--country", "NO",
              "--tenant-id", "nordlys-company-tenant"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert credentials_of(get_tenant(tenant)) == {"tenant_id": "nordlys-company-tenant"}
    refused = CliRunner().invoke(app, ["tenants", "connect-url", tenant])
    assert refused.exit_code == 1
    assert "client credentials" in refused.output


def test_both_error_forms_map_to_the_taxonomy() -> None:
    import httpx

    from worker.providers.base import Rejected
    from worker.providers.vismanet.errors import map_error

    request = httpx.Request("POST", "https://api.finance.visma.net/v2/customerinvoice")
    business = httpx.Response(400, request=request, json={
        "message": "VismaId: 0b6e. Error creating document. Error: TaxCategoryID '0' cannot "
                   "be found in the system."})  # fmt: skip
    rejected = map_error(business)
    assert isinstance(rejected, Rejected)
    assert [f["field"] for f in rejected.fields] == ["invoice.lines.vat_rate"]
    payment = httpx.Response(400, request=request, json={
        "message": "Error creating payment. Error: AdjdRefNbr '000225' cannot be found in "
                   "the system."})  # fmt: skip
    assert [f["field"] for f in map_error(payment, "payment").fields] == [  # type: ignore[attr-defined]
        "payment.invoice_idempotency_key"
    ]
    ipp = httpx.Response(400, request=request, json={
        "ExceptionType": "IPPException", "ExceptionMessage": "No license for this company.",
        "ExceptionFaultCode": "12027", "ExceptionMessageID": "12027_x", "ExceptionDetails": ""})  # fmt: skip
    assert isinstance(map_error(ipp), NeedsReauth)
    throttled = httpx.Response(429, request=request, headers={"Retry-After": "7"}, json={})
    mapped = map_error(throttled)
    assert isinstance(mapped, Transient) and mapped.retry_after == 7


def test_a_lost_answer_to_the_payment_is_found_by_its_payment_ref(sim: Any) -> None:
    tenant = vn_tenant(sim, payment_method="BANK")
    invoice = invoice_job(tenant)
    booked(invoice)
    payload = bank_payment(tenant, invoice["idempotency_key"], "2500.00")
    sim.faults.update({"drop_after_write_rate": 1.0})
    try:
        assert run(payload).state == "retry_scheduled"
    finally:
        sim.faults.update({"drop_after_write_rate": 0.0})
    job = booked(payload)
    payments = [p for p in company_of(sim, tenant).payments.values()
                if p.fields.get("paymentRef") == payload["idempotency_key"]]  # fmt: skip
    assert [p.number for p in payments] == [job.remote["pay"]["number"]]


def test_lists_are_read_page_by_page_to_the_total_count(sim: Any) -> None:
    tenant = vn_tenant(sim)
    for _ in range(3):
        booked(invoice_job(tenant))
    sim.max_page_sizes = {"customerinvoice": 2}  # pages cut silently below our pageSize
    provider = VismaNetProvider(get_tenant(tenant))
    sim.log.queries.clear()
    assert len(provider.http.collect("/v1/customerinvoice")) == 3
    pages = [q for q in sim.log.queries_to("GET", "/v1/customerinvoice")]
    assert pages == ["pageNumber=1&pageSize=1000", "pageNumber=2&pageSize=1000"]


def test_payment_sync_reads_the_balances_of_changed_invoices(sim: Any) -> None:
    import datetime as dt

    from worker.providers.registry import spec_for

    tenant = vn_tenant(sim, payment_method="BANK")
    invoice = invoice_job(tenant)
    number = booked(invoice).remote["book"]["number"]
    booked(bank_payment(tenant, invoice["idempotency_key"], "4000.00"))
    provider = VismaNetProvider(get_tenant(tenant))
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    sim.log.queries.clear()
    found = spec_for("vismanet").payment_sync(provider, {number}, since)
    assert {k: Decimal(str(v)) for k, v in found.items()} == {number: Decimal("11000.00")}
    [query] = sim.log.queries_to("GET", "/v1/customerinvoice")
    assert "lastModifiedDateTime=" in query and "lastModifiedDateTimeCondition=>=" in query


PROCESS_JOBS = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from worker import pipeline
jobs = json.load(sys.stdin)
with ThreadPoolExecutor(len(jobs)) as pool:
    print(json.dumps([o.state for o in pool.map(pipeline.process, jobs)]))
"""


def test_revoked_token_gets_one_new_token_for_32_jobs_in_two_processes(
    sim: Any, vn_server: tuple[Any, str]
) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    _, url = vn_server
    tenant = vn_tenant(sim)
    booked(invoice_job(tenant))  # references cached, a token stored
    sim.identity.expire(credentials_of(get_tenant(tenant))["tenant_id"])
    calls = sim.identity.calls
    env = {
        **os.environ, "LEDGERPUSH_VISMANET_API_URL": url, "LEDGERPUSH_VISMANET_IDENTITY_URL": url,
        "LEDGERPUSH_VISMANET_CLIENT_ID": VN_APP[0], "LEDGERPUSH_VISMANET_CLIENT_SECRET": VN_APP[1],
        "LEDGERPUSH_VISMANET_RATE_PER_HOUR": "100000",
    }  # fmt: skip
    payloads = [invoice_job(tenant) for _ in range(32)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_JOBS],
            cwd=ROOT,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [
        process.communicate(json.dumps(payloads[i::2]), timeout=120)[0]
        for i, process in enumerate(processes)
    ]
    states = [state for out in outputs for state in json.loads(out.strip().splitlines()[-1])]
    assert states == ["booked"] * 32
    assert sim.identity.calls == calls + 1


def test_a_mapped_subaccount_is_sent_as_segments(sim: Any) -> None:
    tenant = vn_tenant(sim, subaccount="1=0")
    job = booked(
        invoice_job(tenant, lines=[{**line("Work", "1", "100.00", "25"), "account": 3000}])
    )
    invoice = document(sim, tenant, "Invoice", job.remote["book"]["number"])
    assert invoice.lines[0].subaccount == [{"segmentId": 1, "segmentValue": "0"}]
    assert invoice.lines[0].account == "3000"


def test_a_process_killed_after_sending_the_payment_release_books_it_once(
    sim: Any, vn_server: tuple[Any, str]
) -> None:
    """The release is applied but its 202 (with the request id) never reaches the
    process, which is killed: the next run finds the payment released by its status."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, wait_for

    _, url = vn_server
    tenant = vn_tenant(sim, payment_method="BANK")
    invoice = invoice_job(tenant)
    booked(invoice)
    payload = bank_payment(tenant, invoice["idempotency_key"], "15000.00")
    sim.faults.update({"hang_after_write_path": r"/customerPayment/\d+/action/release$"})
    env = {
        **os.environ, "LEDGERPUSH_VISMANET_API_URL": url, "LEDGERPUSH_VISMANET_IDENTITY_URL": url,
        "LEDGERPUSH_VISMANET_CLIENT_ID": VN_APP[0], "LEDGERPUSH_VISMANET_CLIENT_SECRET": VN_APP[1],
        "LEDGERPUSH_LEASE_SECONDS": "5",
    }  # fmt: skip
    script = "import json, sys; from worker import pipeline; pipeline.process(json.load(sys.stdin))"
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, text=True,
                               stdin=subprocess.PIPE)  # fmt: skip
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(payload))
        process.stdin.close()
        company = company_of(sim, tenant)
        wait_for(lambda: [p for p in company.payments.values() if p.status != "Balanced"], 30)
    finally:
        process.kill()
        process.wait()
        sim.faults.update({"hang_after_write_path": ""})
    assert store.get_job(job_id_for(tenant, payload["idempotency_key"])).state == "booking"
    time.sleep(5.5)  # the dead process's lease runs out
    job = booked(payload)
    assert "background_id" not in job.remote["release"]  # found by the payment's status
    assert writes(sim, "POST /v1/customerPayment/{id}/action/release") == 1
    assert len(company_of(sim, tenant).payments) == 1
