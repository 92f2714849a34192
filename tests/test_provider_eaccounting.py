"""eAccounting end to end: a real worker process, the simulator over HTTP."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import WorkerProcess, connect_ea_tenant, invoice_job, unique, wait_for
from worker.devtools.factories import credit_note_job, line, payment_job
from worker.jobs import JobValidationError, job_id_for
from worker.ledger.store import attempts_of, find_job
from worker.transport.producer import enqueue, send

TERMINAL = ("booked", "failed", "waiting_for_reauth")


def settle(job_id: str, timeout: float = 60) -> Any:
    def done() -> Any:
        job = find_job(job_id)
        return job if job is not None and job.state in TERMINAL else None

    return wait_for(done, timeout)


def invoices_of(sim: Any, company: str) -> list[dict[str, Any]]:
    return list(sim.state_dump()[company]["invoices"])


def test_invoice_is_booked_with_vat(session_worker: WorkerProcess, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    job = settle(enqueue(invoice_job(tenant, "inv-1")))
    assert job.state == "booked", (job.error_code, job.error_message)
    invoices = invoices_of(ea_sim, tenant)
    assert len(invoices) == 1
    assert Decimal(str(invoices[0]["TotalAmount"])) == Decimal("15000.00")
    assert Decimal(str(invoices[0]["TotalVatAmount"])) == Decimal("3000.00")
    assert job.remote["book"]["number"] == invoices[0]["InvoiceNumber"]


def test_several_vat_rates_use_codings_per_rate(session_worker: WorkerProcess, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    lines = [
        line("Software", "1", "1000.00", "25"),
        line("Food", "2", "100.00", "15"),
        line("Cinema", "1", "100.00", "12"),
    ]
    job = settle(enqueue(invoice_job(tenant, "inv-rates", lines=lines)))
    assert job.state == "booked", job.error_message
    invoice = invoices_of(ea_sim, tenant)[0]
    assert Decimal(str(invoice["TotalVatAmount"])) == Decimal("292.00")  # 250 + 30 + 12
    articles = {a["Number"] for a in ea_sim.state_dump()[tenant]["articles"]}
    assert {"LP-VAT25", "LP-VAT15", "LP-VAT12"} <= articles


def test_foreign_currency_and_foreign_customer(session_worker: WorkerProcess, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    customer = {
        "external_id": "de-1", "name": "Berlin GmbH", "country": "DE", "is_private_person": False,
        "address": {"line1": "Unter den Linden 1", "postal_code": "10117", "city": "Berlin"},
    }  # fmt: skip
    lines = [line("Consulting", "3", "99.1234", "0")]
    job = settle(
        enqueue(invoice_job(tenant, "inv-eur", currency="EUR", customer=customer, lines=lines))
    )
    assert job.state == "booked", job.error_message
    invoice = invoices_of(ea_sim, tenant)[0]
    assert invoice["CurrencyCode"] == "EUR"
    assert Decimal(str(invoice["TotalAmountInvoiceCurrency"])) == Decimal("297.37")


def test_domestic_unit_price_with_four_decimals_is_refused_with_our_field(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    payload = invoice_job(tenant, "inv-dec", lines=[line("x", "1", "10.1234", "25")])
    with pytest.raises(JobValidationError) as refused:
        enqueue(payload)
    assert [e.field for e in refused.value.errors] == ["invoice.lines.0.unit_price"]
    # Sent raw (past the check at the door), it fails before any call to eAccounting.
    job = settle(send(payload, "invoice", job_id_for(tenant, "inv-dec")))
    assert (job.state, job.error_category, job.error_code) == (
        "failed",
        "invalid",
        "provider_limit",
    )
    assert [f["field"] for f in job.error_fields or []] == ["invoice.lines.0.unit_price"]
    assert invoices_of(ea_sim, tenant) == []


def test_credit_note_and_payment(session_worker: WorkerProcess, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(tenant, "inv-1"))).state == "booked"
    lines = [line("Consulting, November", "2", "1200.00", "25")]
    credit = credit_note_job(tenant, "cn-1", "inv-1", issue_date="2026-11-21", lines=lines)
    payment = payment_job(
        tenant, "pay-1", "inv-1", "5000.00", payment_date="2026-11-21", reference="bank-77"
    )
    assert settle(enqueue(credit)).state == "booked"
    paid = settle(enqueue(payment))
    assert paid.state == "booked", paid.error_message
    invoices = invoices_of(ea_sim, tenant)
    assert len(invoices) == 2
    credit_invoice = next(i for i in invoices if i["IsCreditInvoice"])
    assert Decimal(str(credit_invoice["TotalAmount"])) == Decimal("-3000.00")
    original = next(i for i in invoices if not i["IsCreditInvoice"])
    assert Decimal(str(original["RemainingAmount"])) == Decimal("10000.00")


def test_same_sized_payments_of_one_invoice_never_take_each_others_place(ea_sim: Any) -> None:
    """Payment A's worker died after committing its intent, before its request reached
    eAccounting. Payment B of the same invoice and amount must not write meanwhile: A's
    lookup, which can only compare the invoice's remaining amount, would take B's payment
    for its own and A's would never be made."""
    from worker import pipeline
    from worker.ledger import store
    from worker.ledger.models import BOOKING, utcnow

    tenant = connect_ea_tenant("NO")
    assert pipeline.process(invoice_job(tenant, "inv-split")).state == "booked"

    def payment(key: str) -> dict[str, Any]:
        return payment_job(
            tenant, key, "inv-split", "100.00", payment_date="2026-11-21", reference=key
        )

    first, second = payment("split-a"), payment("split-b")
    invoice = invoices_of(ea_sim, tenant)[0]
    remaining = Decimal(str(invoice["RemainingAmountInvoiceCurrency"]))
    job_a = job_id_for(tenant, "split-a")
    store.accept_job(job_a, tenant, "split-a", "payment", first)
    intent = {"step": "pay", "at": utcnow().isoformat(), "remaining_before": str(remaining)}
    store.advance(job_a, BOOKING, intent=intent)  # ... and the worker died here

    waiting = pipeline.process(second)
    assert waiting.state == "retry_scheduled"
    assert find_job(job_id_for(tenant, "split-b")).error_code == "payment_in_flight"  # type: ignore[union-attr]
    assert invoices_of(ea_sim, tenant)[0]["Payments"] == []  # B did not write

    assert pipeline.process(first).state == "booked"  # looked up: not made, so made now
    assert pipeline.process(second).state == "booked"
    paid = invoices_of(ea_sim, tenant)[0]
    assert sorted(p["Reference"] for p in paid["Payments"]) == ["split-a", "split-b"]
    assert Decimal(str(paid["RemainingAmountInvoiceCurrency"])) == remaining - 200


def test_payment_waits_for_its_invoice(session_worker: WorkerProcess) -> None:
    tenant = connect_ea_tenant("NO")
    payment = payment_job(tenant, "pay-early", "inv-late", "100.00", payment_date="2026-11-21")
    pay_id = enqueue(payment)
    wait_for(lambda: (find_job(pay_id) or None) and find_job(pay_id).state == "retry_scheduled")  # type: ignore[union-attr]
    assert find_job(pay_id).error_code == "invoice_not_booked"  # type: ignore[union-attr]
    assert settle(enqueue(invoice_job(tenant, "inv-late"))).state == "booked"
    assert settle(pay_id).state == "booked"


def test_customer_created_once_then_found(session_worker: WorkerProcess, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    before = len(ea_sim.state_dump()[tenant]["customers"])
    for key in ("a", "b"):
        assert settle(enqueue(invoice_job(tenant, key))).state == "booked"
    customers = ea_sim.state_dump()[tenant]["customers"]
    assert len(customers) == before + 1
    assert sum(1 for c in customers if c["CustomerNumber"] == "c-42") == 1


def test_existing_customer_beyond_first_page_is_found(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    seeded = ea_sim.state_dump()[tenant]["customers"]
    assert len(seeded) > 50
    last = seeded[-1]
    customer = {
        "external_id": last["CustomerNumber"], "name": last["Name"], "country": "NO",
        "address": {"line1": "x", "postal_code": "0150", "city": "Oslo"},
    }  # fmt: skip
    assert settle(enqueue(invoice_job(tenant, "inv-old", customer=customer))).state == "booked"
    assert len(ea_sim.state_dump()[tenant]["customers"]) == len(seeded)
    assert invoices_of(ea_sim, tenant)[0]["CustomerId"] == last["Id"]


def test_every_reference_collection_is_read_to_its_last_page(
    ea_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With pages of 4, each reference list the invoice needs spans many pages: the job
    still finds what it needs, which it can only do by reading every page."""
    import math

    from worker import pipeline
    from worker.providers.eaccounting import client as eaccounting

    monkeypatch.setattr(eaccounting, "PAGE_SIZE", 4)
    tenant = connect_ea_tenant("NO")
    company = ea_sim.companies[tenant]
    assert pipeline.process(invoice_job(tenant, "paged")).state == "booked"

    calls = [c for a in attempts_of(job_id_for(tenant, "paged")) for c in a.calls]
    gets = Counter(c["path"] for c in calls if c["method"] == "GET")
    year = next(y for y in company.accounts if gets[f"/accounts/{y}"])  # the invoice date's
    expected = {
        f"/accounts/{year}": len(company.accounts[year]),
        "/vatcodes": len(company.vat_codes),
        "/articleaccountcodings": len(company.codings),
    }
    for path, items in expected.items():
        assert items > 4, path  # more than one page
        assert gets[path] == math.ceil(items / 4), (path, gets[path], items)
    assert len(invoices_of(ea_sim, tenant)) == 1


def test_same_job_twice_books_once(session_worker: WorkerProcess, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("SE")
    payload = invoice_job(tenant, "inv-twice", currency="SEK")
    first, second = enqueue(payload), enqueue(payload)
    assert settle(first).state == "booked"
    assert first == second
    assert len(invoices_of(ea_sim, tenant)) == 1


def test_steady_state_costs_draft_and_book_only(session_worker: WorkerProcess) -> None:
    tenant = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(tenant, "warm-up"))).state == "booked"
    job = settle(enqueue(invoice_job(tenant, "steady")))
    assert job.state == "booked"
    calls = [c for a in attempts_of(job.id) for c in a.calls]
    assert [(c["method"], c["path"].split("/")[-1]) for c in calls] == [
        ("POST", "customerinvoicedrafts"),
        ("POST", "convert"),
    ]


def test_missing_scope_parks_tenant_naming_the_scope(session_worker: WorkerProcess) -> None:
    from worker.tenancy.tenants import get_tenant

    tenant = connect_ea_tenant("NO", scopes=["ea:api", "offline_access", "ea:accounting_readonly"])
    job = settle(enqueue(invoice_job(tenant, "inv-scope")))
    assert job.state == "waiting_for_reauth"
    state = get_tenant(tenant)
    assert state.connection_state == "needs_reauth"
    assert "ea:sales" in (state.connection_reason or "")


def test_transient_errors_are_retried(session_worker: WorkerProcess, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    ea_sim.faults.update({"error_rate": 0.3, "seed": 7})
    try:
        job = settle(enqueue(invoice_job(tenant, "inv-flaky")), timeout=90)
    finally:
        ea_sim.faults.update({"error_rate": 0.0})
    assert job.state == "booked"
    assert len(invoices_of(ea_sim, tenant)) == 1


def test_connection_dropped_after_write_books_once(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(tenant, "warm"))).state == "booked"
    ea_sim.faults.update({"drop_after_write_rate": 1.0})
    try:
        job_id = enqueue(invoice_job(tenant, "inv-drop"))
        wait_for(lambda: (find_job(job_id) is not None) and find_job(job_id).attempts >= 2, 30)  # type: ignore[union-attr]
    finally:
        ea_sim.faults.update({"drop_after_write_rate": 0.0})
    job = settle(job_id)
    assert job.state == "booked", job.error_message
    assert len(invoices_of(ea_sim, tenant)) == 2
    assert not ea_sim.state_dump()[tenant]["drafts"]


def test_nl_accounts_carry_dutch_fields_only_there(session_worker: WorkerProcess) -> None:
    customer_nl = {
        "external_id": "nl-1", "name": "Utrecht BV", "country": "NL",
        "address": {"line1": "Oudegracht 1", "postal_code": "3511 AB", "city": "Utrecht"},
    }  # fmt: skip
    nl, no = connect_ea_tenant("NL"), connect_ea_tenant("NO")
    nl_job = invoice_job(
        nl, "inv-nl", currency="EUR", customer=customer_nl, lines=[line("x", "1", "100.00", "21")]
    )
    assert settle(enqueue(nl_job)).state == "booked"
    assert settle(enqueue(invoice_job(no, "inv-no"))).state == "booked"
    nl_accounts, no_accounts = _cached_accounts(nl), _cached_accounts(no)
    assert nl_accounts and all("ReferenceCode" in a and "Type" in a for a in nl_accounts)
    assert no_accounts and not any("ReferenceCode" in a for a in no_accounts)


def _cached_accounts(tenant_id: str) -> list[dict[str, Any]]:
    import json

    from worker.tenancy.refcache import TenantCache, cached_names
    from worker.transport.redis_client import get_redis

    cache = TenantCache(tenant_id)
    name = next(n for n in cached_names(tenant_id) if n.startswith("accounts:"))
    return list(json.loads(get_redis().get(cache._key(name)) or "[]"))


def test_unknown_key_for_credit_note_waits_not_fails(session_worker: WorkerProcess) -> None:
    tenant = connect_ea_tenant("NO")
    credit = credit_note_job(tenant, unique("cn"), "never-sent", issue_date="2026-11-21")
    job_id = enqueue(credit)
    wait_for(lambda: (find_job(job_id) is not None) and find_job(job_id).state == "retry_scheduled")  # type: ignore[union-attr]


@pytest.mark.parametrize(("scope", "shared"), [("company", False), ("client", True)])
def test_rate_limit_budget_per_company_or_per_client(
    monkeypatch: pytest.MonkeyPatch, scope: str, shared: bool
) -> None:
    from worker.providers.eaccounting.client import rate_limit_key
    from worker.settings import get_settings

    monkeypatch.setenv("LEDGERPUSH_EACCOUNTING_RATE_SCOPE", scope)
    get_settings.cache_clear()
    try:
        keys = {rate_limit_key("app", "acme-no"), rate_limit_key("app", "acme-nl")}
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert (len(keys) == 1) is shared


def test_ambiguous_lookup_fails_for_review_and_never_writes_again(ea_sim: Any) -> None:
    """Two jobs with the same content each lose the answer to their draft POST. Each
    lookup then sees both drafts (created within the clock-skew allowance of its intent):
    neither can tell which is its own, so both stop for an operator instead of guessing."""
    from worker import pipeline

    tenant = connect_ea_tenant("NO")
    assert pipeline.process(invoice_job(tenant, "warm")).state == "booked"
    twins = [invoice_job(tenant, "twin-1"), invoice_job(tenant, "twin-2")]
    ea_sim.faults.update({"drop_after_write_rate": 1.0})
    try:
        assert [pipeline.process(job).state for job in twins] == ["retry_scheduled"] * 2
    finally:
        ea_sim.faults.update({"drop_after_write_rate": 0.0})
    assert len(ea_sim.state_dump()[tenant]["drafts"]) == 2

    assert [pipeline.process(job).state for job in twins] == ["failed"] * 2
    for key in ("twin-1", "twin-2"):
        job = find_job(job_id_for(tenant, key))
        assert job is not None and job.error_code == "needs_review"
        assert [f["field"] for f in job.error_fields or []] == ["candidate", "candidate"]
    assert len(ea_sim.state_dump()[tenant]["drafts"]) == 2  # nothing written again
    assert len(invoices_of(ea_sim, tenant)) == 1  # only the warm-up invoice is booked


def test_operator_resolves_a_review_by_cleaning_up_then_replay_or_cancel(ea_sim: Any) -> None:
    """What the job page tells the operator to do with a `needs_review` job works: delete
    the extra draft remotely and replay (the lookup adopts the one left), or cancel."""
    from worker import pipeline
    from worker.ledger.store import events_of, get_job
    from worker.ops import operations
    from worker.providers.eaccounting.client import EAccountingProvider
    from worker.tenancy.tenants import get_tenant

    tenant = connect_ea_tenant("NO")
    assert pipeline.process(invoice_job(tenant, "warm")).state == "booked"
    twins = [invoice_job(tenant, "twin-a"), invoice_job(tenant, "twin-b")]
    ea_sim.faults.update({"drop_after_write_rate": 1.0})
    try:
        for job in twins:
            pipeline.process(job)
    finally:
        ea_sim.faults.update({"drop_after_write_rate": 0.0})
    assert [pipeline.process(job).state for job in twins] == ["failed"] * 2
    keep, extra = (d["Id"] for d in ea_sim.state_dump()[tenant]["drafts"])
    EAccountingProvider(get_tenant(tenant)).http.request(
        "DELETE", f"/customerinvoicedrafts/{extra}"
    )

    replayed, cancelled = (job_id_for(tenant, job["idempotency_key"]) for job in twins)
    operations.replay(replayed, "operator@example.com")
    pipeline.process(twins[0])
    wait_for(lambda: get_job(replayed).state == "booked", 30)
    assert get_job(replayed).remote["draft"]["id"] == keep
    with pytest.raises(operations.ActionRefused):
        operations.replay(replayed, "operator@example.com")  # booked now: immutable

    assert operations.cancel(cancelled, "operator@example.com").state == "cancelled"
    assert "reviewing the remote candidates" in (events_of(cancelled)[-1].note or "")
    assert len(invoices_of(ea_sim, tenant)) == 2  # the warm-up and the adopted draft
    assert ea_sim.state_dump()[tenant]["drafts"] == []


def test_bookkeeping_edition_is_unsupported_not_a_reauthorization(ea_sim: Any) -> None:
    """eAccounting Bookkeeping has no sales endpoints (endpoints.json variants): the job
    fails at once as unsupported, with plain words, and the tenant stays connected."""
    from worker import pipeline
    from worker.tenancy.tenants import get_tenant

    tenant = connect_ea_tenant("NO")
    ea_sim.companies[tenant].settings["ProductVariant"] = 3
    assert pipeline.process(invoice_job(tenant, "in-bookkeeping")).state == "failed"
    job = find_job(job_id_for(tenant, "in-bookkeeping"))
    assert job is not None and (job.error_category, job.error_code) == (
        "unsupported", "variant_unsupported",
    )  # fmt: skip
    assert "Bookkeeping" in (job.error_message or "")
    assert get_tenant(tenant).connection_state == "connected"
    calls = [c["path"] for a in attempts_of(job.id) for c in a.calls]
    assert calls == ["/companysettings"]  # nothing else tried


def test_retries_run_out_into_a_dead_letter_with_the_last_error(
    ea_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import pipeline
    from worker.settings import get_settings

    tenant = connect_ea_tenant("NO")
    monkeypatch.setenv("LEDGERPUSH_MAX_RETRIES", "2")
    get_settings.cache_clear()
    ea_sim.faults.update({"error_rate": 1.0})
    try:
        job = invoice_job(tenant, "always-503")
        outcomes = [pipeline.process(job).state for _ in range(3)]
    finally:
        ea_sim.faults.update({"error_rate": 0.0})
        monkeypatch.undo()
        get_settings.cache_clear()
    assert outcomes == ["retry_scheduled", "retry_scheduled", "failed"]
    failed = find_job(job_id_for(tenant, "always-503"))
    assert failed is not None and failed.error_code == "provider_unavailable"
    assert (failed.error_message or "").startswith("gave up after 3 attempts: ")
    assert len(attempts_of(failed.id)) == 3
    assert invoices_of(ea_sim, tenant) == [] and ea_sim.state_dump()[tenant]["drafts"] == []


def test_job_past_its_soft_time_limit_hands_back_before_writing(
    ea_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread pool cannot enforce Celery's time limits: the pipeline does, at its
    next write, and the job continues in a new run from the ledger."""
    from worker import pipeline
    from worker.settings import get_settings

    tenant = connect_ea_tenant("NO")
    monkeypatch.setenv("LEDGERPUSH_TASK_SOFT_TIME_LIMIT", "5")
    monkeypatch.setenv("LEDGERPUSH_TASK_TIME_LIMIT", "10")
    get_settings.cache_clear()
    ea_sim.faults.update({"latency_ms": 1500})  # a cold tenant's references take > 5 s
    try:
        job = invoice_job(tenant, "slow")
        assert pipeline.process(job).state == "retry_scheduled"
        row = find_job(job_id_for(tenant, "slow"))
        assert row is not None and row.error_code == "time_limit" and not row.remote
        assert not ea_sim.state_dump()[tenant]["drafts"]
    finally:
        ea_sim.faults.update({"latency_ms": 0})
        monkeypatch.undo()
        get_settings.cache_clear()
    assert pipeline.process(job).state == "booked"


def _coding_id(sim: Any, tenant: str, name: str) -> str:
    return str(next(c["Id"] for c in sim.companies[tenant].codings if c["NameEnglish"] == name))


def _row_codings(sim: Any, tenant: str, invoice_id: str) -> list[str]:
    state = sim.state_dump()[tenant]
    articles = {a["Id"]: a for a in state["articles"]}
    invoice = next(i for i in state["invoices"] if i["Id"] == invoice_id)
    return [articles[r["ArticleId"]]["CodingId"] for r in invoice["Rows"]]


def test_vat_pin_set_after_the_first_invoice_is_used(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    from worker.tenancy.tenants import update_mapping

    tenant = connect_ea_tenant("NO")
    goods, services = (_coding_id(ea_sim, tenant, n) for n in ("Goods 25 %", "Services 25 %"))
    first = settle(enqueue(invoice_job(tenant, "inv-before")))
    assert first.state == "booked", first.error_message
    assert _row_codings(ea_sim, tenant, first.remote["book"]["id"]) == [goods]

    update_mapping(tenant, {"vat.25": services})
    second = settle(enqueue(invoice_job(tenant, "inv-after")))
    assert second.state == "booked", second.error_message
    assert _row_codings(ea_sim, tenant, second.remote["book"]["id"]) == [services]
    rows = next(i for i in invoices_of(ea_sim, tenant) if i["Id"] == second.remote["book"]["id"])
    assert [r["_SalesAccount"] for r in rows["Rows"]] == [3030]


def test_vat_pin_to_a_missing_coding_is_rejected_naming_the_mapping(
    session_worker: WorkerProcess,
) -> None:
    tenant = connect_ea_tenant("NO", **{"vat.25": "00000000-0000-0000-0000-000000000000"})
    job = settle(enqueue(invoice_job(tenant, "inv-bad-pin")))
    assert job.state == "failed"
    assert job.error_code == "mapping_invalid"
    assert [f["field"] for f in job.error_fields or []] == ["mapping.vat.25"]


def test_pinned_bank_account_is_used_for_the_payment(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    banks = [b for b in ea_sim.companies[tenant].bank_accounts if b.get("IsActive")]
    other = next(b for b in banks if not b.get("IsDefaultChequeAccount"))
    from worker.tenancy.tenants import update_mapping

    update_mapping(tenant, {"bank_account": other["Id"]})
    assert settle(enqueue(invoice_job(tenant, "inv-paid"))).state == "booked"
    payment = payment_job(tenant, "pay-pinned", "inv-paid", "100.00", payment_date="2026-11-21")
    paid = settle(enqueue(payment))
    assert paid.state == "booked", paid.error_message
    [recorded] = invoices_of(ea_sim, tenant)[0]["Payments"]
    assert recorded["CompanyBankAccountId"] == other["Id"]


def test_line_account_chooses_the_coding_that_books_on_it(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    lines = [
        line("Goods", "1", "100.00", "25", account=3000),
        line("Services", "1", "100.00", "25", account=3030),
        line("Default", "1", "100.00", "25"),
    ]
    job = settle(enqueue(invoice_job(tenant, "inv-accounts", lines=lines)))
    assert job.state == "booked", job.error_message
    [invoice] = invoices_of(ea_sim, tenant)
    assert [r["_SalesAccount"] for r in invoice["Rows"]] == [3000, 3030, 3000]


def test_line_account_no_coding_books_on_is_rejected_on_that_line(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    lines = [line("a", "1", "100.00", "25"), line("b", "1", "100.00", "25", account=3010)]
    job = settle(enqueue(invoice_job(tenant, "inv-bad-account", lines=lines)))
    assert job.state == "failed"
    assert job.error_code == "no_coding_for_account"
    assert [f["field"] for f in job.error_fields or []] == ["invoice.lines.1.account"]
    assert "3000" in job.error_fields[0]["message"]  # type: ignore[index]
    assert not ea_sim.state_dump()[tenant]["drafts"]


def test_deleted_article_is_a_stale_reference_then_recreated(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(tenant, "inv-warm"))).state == "booked"
    company = ea_sim.companies[tenant]
    with ea_sim.lock:  # someone deletes our article in eAccounting
        company.articles.clear()
    job = settle(enqueue(invoice_job(tenant, "inv-stale")))
    assert job.state == "booked", job.error_message
    assert [a.error["code"] for a in attempts_of(job.id) if a.error] == ["reference_stale"]
    assert [a["Number"] for a in ea_sim.state_dump()[tenant]["articles"]] == ["LP-VAT25"]


def test_throttled_request_waits_as_long_as_the_answer_says(ea_sim: Any) -> None:
    import datetime as dt

    from worker import pipeline

    tenant = connect_ea_tenant("NO")
    assert pipeline.process(invoice_job(tenant, "warm")).state == "booked"
    ea_sim.faults.update({"throttle_rate": 1.0, "throttle_retry_after": 7})
    try:
        before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        outcome = pipeline.process(invoice_job(tenant, "throttled"))
    finally:
        ea_sim.faults.update({"throttle_rate": 0.0, "throttle_retry_after": 1})
    assert outcome.state == "retry_scheduled"
    assert outcome.retry_in is not None and outcome.retry_in >= 7  # backoff alone is <= 2 s
    row = find_job(job_id_for(tenant, "throttled"))
    assert row is not None and row.error_code == "rate_limited"
    assert row.next_retry_at is not None
    assert row.next_retry_at - before >= dt.timedelta(seconds=6.9)
    assert pipeline.process(invoice_job(tenant, "throttled")).state == "booked"
