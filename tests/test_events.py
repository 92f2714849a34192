"""Outbound events: written with the state change, delivered by real worker processes to
a real HTTP receiver that verifies every post with the `standardwebhooks` library, in
order per tenant, and readable from the feed from any cursor."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import (
    WorkerProcess,
    connect_ea_tenant,
    connect_ec_tenant,
    credit_note_job,
    danish_customer,
    invoice_job,
    unbookable_line,
    unique,
    wait_for,
)
from tests.webhook_receiver import Receiver, verifies
from worker import crypto
from worker.jobs import parse_job
from worker.ledger import store
from worker.ledger.models import OutboundEvent
from worker.ops import events, payment_sync, webhooks
from worker.ops.operations import ActionRefused, cancel
from worker.tenancy.connections import tenant_needs_reauth
from worker.transport.producer import enqueue, send

pytest_plugins = ["tests.web_fixtures"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def worker(base_env: dict[str, str]) -> Iterator[WorkerProcess]:
    process = WorkerProcess(unique("events"), base_env, concurrency=8).start()
    yield process
    process.stop()


def subscribe(receiver: Receiver, tenant: str, types: str | None = None) -> int:
    endpoint, secret = webhooks.add_endpoint(receiver.url, types, tenant)
    receiver.secrets.append(secret)
    return endpoint.id


def settled(job_id: str, *states: str) -> Any:
    return wait_for(lambda: (j := store.find_job(job_id)) is not None and j.state in states and j)


def _cancelled(job_id: str) -> bool:
    """Cancel once no copy of the job runs (it retries while it waits)."""
    try:
        cancel(job_id, actor="test")
    except ActionRefused:
        return False
    return True


def test_every_job_event_type_from_a_real_run(
    worker: WorkerProcess, receiver: Receiver, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    subscribe(receiver, tenant)
    booked = settled(enqueue(invoice_job(tenant, unique("ok"))), "booked")
    # Sent raw, past the check at the door: the worker fails it before any write.
    bad = parse_job(invoice_job(tenant, unique("bad"), lines=[unbookable_line()]))
    failed = settled(send(bad.model_dump(mode="json"), bad.kind, bad.job_id), "failed")
    # A credit note of an invoice never sent waits (not ready) until cancelled.
    waiting = enqueue(credit_note_job(tenant, unique("none")))
    settled(waiting, "retry_scheduled")
    wait_for(lambda: _cancelled(waiting))
    tenant_needs_reauth(tenant, "password changed")
    parked = settled(enqueue(invoice_job(tenant, unique("parked"))), "waiting_for_reauth")

    try:
        wait_for(lambda: len(receiver.bodies(tenant)) == 4, 60)
    except AssertionError:
        raise AssertionError([b["type"] for b in receiver.bodies(tenant)]) from None
    by_type = {b["type"]: b for b in receiver.bodies(tenant)}
    assert set(by_type) == {"job.booked", "job.failed", "job.cancelled", "job.waiting_for_reauth"}
    assert receiver.unverified == 0

    data = by_type["job.booked"]["data"]
    assert (data["job_id"], data["idempotency_key"]) == (booked.id, booked.idempotency_key)
    [invoice] = [
        i
        for i in ea_sim.state_dump()[tenant]["invoices"]
        if str(i["Id"]) == str(booked.remote["book"]["id"])
    ]
    assert data["document"]["number"] == invoice["InvoiceNumber"]
    totals = data["totals"]
    assert Decimal(totals["gross"]) == Decimal(str(invoice["TotalAmountInvoiceCurrency"]))
    assert Decimal(totals["vat"]) == Decimal(str(invoice["TotalVatAmountInvoiceCurrency"]))
    assert Decimal(totals["net"]) == Decimal(totals["gross"]) - Decimal(totals["vat"])
    assert totals["currency"] == invoice["CurrencyCode"]

    failure = by_type["job.failed"]["data"]
    assert failure["job_id"] == failed.id and failure["error"]["category"] == "invalid"
    assert failure["explanation"]["title"] and failure["explanation"]["fix"]
    assert by_type["job.cancelled"]["data"]["job_id"] == waiting
    assert by_type["job.waiting_for_reauth"]["data"]["job_id"] == parked.id
    # Each event once (webhook-id is the event id), and the header matches the body.
    ids = [hook.headers["webhook-id"] for hook in receiver.accepted]
    assert len(ids) == len(set(ids)) == 4
    assert all(h.headers["webhook-id"] == h.body["id"] for h in receiver.accepted)


def test_waiting_for_reauth_once_per_job_and_needs_review_is_its_own_event() -> None:
    tenant = unique("t")
    job_id = unique("job")
    store.accept_job(job_id, tenant, unique("key"), "invoice", {})
    store.transition(job_id, "waiting_for_reauth")
    store.transition(job_id, "received")
    store.transition(job_id, "waiting_for_reauth")
    store.fail_job(job_id, "needs_review", "needs_review", "2 candidates")
    found = wait_for(lambda: len(found := events.feed(0, (), tenant)) == 2 and found, 10)
    assert [e.type for e in found] == ["job.waiting_for_reauth", "job.needs_review"]


def test_receiver_down_then_up_delivers_everything_in_order_per_tenant(
    worker: WorkerProcess, receiver: Receiver, ea_sim: Any
) -> None:
    tenants = [connect_ea_tenant("NO"), connect_ea_tenant("NO")]
    for tenant in tenants:
        subscribe(receiver, tenant)
    receiver.down = True
    jobs = [enqueue(invoice_job(t, unique("inv"))) for t in tenants for _ in range(3)]
    for job_id in jobs:
        settled(job_id, "booked")
    wait_for(lambda: receiver.refused >= 2, 60)
    receiver.down = False
    for tenant in tenants:
        wait_for(lambda t=tenant: len(receiver.bodies(t)) == 3, 120)
        written = [e.event_id for e in events.feed(0, ("job.booked",), tenant)]
        received = [b["id"] for b in receiver.bodies(tenant)]
        assert received == written  # in order, no gaps, no duplicates


def test_feed_returns_the_same_events_from_any_cursor(api: Any) -> None:
    tenant = unique("t")
    for number in range(5):
        job_id = unique("job")
        store.accept_job(job_id, tenant, f"key-{number}", "invoice", {})
        store.fail_job(job_id, "rejected", "x", "refused")
    wait_for(lambda: len(events.feed(0, (), tenant)) == 5, 10)
    everything = api.get("/api/events", params={"tenant": tenant}).json()
    ids = [item["id"] for item in everything["items"]]
    assert len(ids) == 5
    for index, item in enumerate(everything["items"]):
        page = api.get("/api/events", params={"tenant": tenant, "after": item["cursor"]}).json()
        assert [i["id"] for i in page["items"]] == ids[index + 1 :]
    read, cursor = [], 0
    while True:
        params = {"tenant": tenant, "after": cursor, "limit": 2, "types": "job.failed"}
        page = api.get("/api/events", params=params).json()
        read += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert read == ids
    bad = api.get("/api/events", params={"types": "job.nope"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "types"


def test_secret_rotation_both_sign_during_the_overlap_then_only_the_new() -> None:
    endpoint, old = webhooks.add_endpoint("http://127.0.0.1:9/hooks", None, unique("t"))
    new = webhooks.rotate_secret(endpoint.id, overlap_hours=1)
    [stored_row] = [e for e in webhooks.list_endpoints() if e.id == endpoint.id]
    stored = crypto.decrypt_json(stored_row.secrets)
    body = b'{"id":"evt_1"}'
    during = webhooks.signed_headers("evt_1", body, stored)
    assert len(during["webhook-signature"].split(" ")) == 2
    assert verifies(old, during, body) and verifies(new, during, body)
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    later = {**stored, "previous_until": ended.isoformat()}
    after = webhooks.signed_headers("evt_1", body, later)
    assert verifies(new, after, body) and not verifies(old, after, body)


def test_event_is_in_the_same_transaction_as_the_state_change() -> None:
    """A change that does not commit leaves no event; one that commits always has it
    (a worker killed after the commit finds the event in the ledger, to deliver once)."""
    tenant = unique("t")
    job_id = unique("job")
    store.accept_job(job_id, tenant, unique("key"), "invoice", {})
    with pytest.raises(store.JobNotFound):
        store.advance("no-such-job", "booked")
    store.advance(job_id, "booked", remote={"book": {"id": "1", "number": 7}})
    store.advance(job_id, "booked")  # no state change: no second event
    from worker.ledger.db import session

    with session() as db:
        rows = db.query(OutboundEvent).filter(OutboundEvent.tenant_id == tenant).all()
    assert [(r.type, r.job_id) for r in rows] == [("job.booked", job_id)]
    assert rows[0].payload["data"]["document"]["number"] == 7


KILLED_AFTER_COMMIT = """
import os, sys
from worker.ledger import events, store
events.after_commit(lambda: os._exit(9))  # the process dies right after the commit
job_id, tenant = sys.argv[1], sys.argv[2]
store.accept_job(job_id, tenant, job_id, "invoice", {})
store.advance(job_id, "booked", remote={"book": {"id": "9", "number": 9}})
"""


def test_process_killed_right_after_the_state_change_still_delivers_once(
    receiver: Receiver, base_env: dict[str, str]
) -> None:
    tenant, job_id = unique("t"), unique("job")
    subscribe(receiver, tenant)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_COMMIT, job_id, tenant], env=base_env, check=False
    )
    assert done.returncode == 9
    # Nothing asked for a delivery run; the periodic one (beat) finds the event.
    wait_for(lambda: webhooks.run_deliveries() >= 0 and receiver.bodies(tenant), 30)
    webhooks.run_deliveries()
    [body] = receiver.bodies(tenant)
    assert body["type"] == "job.booked" and body["data"]["job_id"] == job_id


def _bookkeeper_pays_ea(ea_sim: Any, tenant: str, invoice_id: str, amount: str) -> None:
    """A payment registered in eAccounting itself, not through ledgerpush."""
    from worker.simulators.eaccounting.payments import register_payment

    company = ea_sim.companies[tenant]
    invoice = company.invoices[invoice_id]
    body = {
        "PaymentDate": dt.date.today().isoformat(),
        "PaymentAmount": float(amount),
        "PaymentCurrency": invoice["CurrencyCode"],
        "PaymentType": 1,
        "CompanyBankAccountId": company.bank_accounts[0]["Id"],
    }
    register_payment(company, invoice, body, ea_sim.now())


def test_payments_registered_in_eaccounting_become_events(
    worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    job = settled(enqueue(invoice_job(tenant, unique("inv"))), "booked")
    invoice_id = str(job.remote["book"]["id"])
    assert payment_sync.sync_tenant(tenant) == []  # nothing changed
    _bookkeeper_pays_ea(ea_sim, tenant, invoice_id, "1000.00")
    assert payment_sync.sync_tenant(tenant) == ["invoice.payment_changed"]
    assert payment_sync.sync_tenant(tenant) == []
    _bookkeeper_pays_ea(ea_sim, tenant, invoice_id, "14000.00")  # 12 000 + 25 % VAT in all
    assert payment_sync.sync_tenant(tenant) == ["invoice.paid"]
    assert payment_sync.open_invoices(tenant) == []  # nothing left to ask about
    found = wait_for(lambda: len(f := events.feed(0, (), tenant)) == 3 and f, 10)
    changed, paid = found[1].payload["data"], found[2].payload["data"]
    assert (changed["remaining"], changed["job_id"]) == ("14000.00", job.id)
    assert Decimal(paid["remaining"]) == 0 and paid["previous_remaining"] == "14000.00"


def test_payment_registered_in_economic_becomes_invoice_paid(
    worker: WorkerProcess, ec_sim: Any
) -> None:
    tenant = connect_ec_tenant("DK")
    job = settled(
        enqueue(invoice_job(tenant, currency="DKK", customer=danish_customer())), "booked"
    )
    number = int(job.remote["book"]["number"])
    assert payment_sync.sync_tenant(tenant) == []
    with ec_sim.lock:  # the bookkeeper reconciles the bank statement in e-conomic
        ec_sim.agreements[f"grant-{tenant}"].booked[number]["remainder"] = Decimal("0.00")
    assert payment_sync.sync_tenant(tenant) == ["invoice.paid"]
    assert payment_sync.sync_tenant(tenant) == []


def test_cli_manages_endpoints_and_tails_events() -> None:
    from typer.testing import CliRunner

    from worker.cli import app

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, list(args))

    tenant = unique("t")
    added = run(
        "webhooks", "endpoints", "add", "https://saas.example/hooks",
        "--events", "job.booked,invoice.paid", "--tenant", tenant,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    [row] = [e for e in json.loads(run("webhooks", "endpoints", "list", "--json").output)
             if e["tenant_id"] == tenant]  # fmt: skip
    assert row["events"] == "job.booked invoice.paid" and secret not in str(row)
    endpoint = str(row["id"])
    assert run("webhooks", "endpoints", "disable", endpoint).exit_code == 0
    assert run("webhooks", "endpoints", "enable", endpoint).exit_code == 0
    rotated = run("webhooks", "endpoints", "rotate-secret", endpoint)
    assert rotated.exit_code == 0 and rotated.output.strip().splitlines()[-1] != secret
    bad = run("webhooks", "endpoints", "add", "https://x.example", "--events", "job.nope")
    assert bad.exit_code == 1 and "job.nope" in bad.output
    assert run("webhooks", "endpoints", "remove", endpoint).exit_code == 0
    assert run("webhooks", "endpoints", "remove", endpoint).exit_code == 1

    job_id = unique("job")
    store.accept_job(job_id, tenant, unique("key"), "invoice", {})
    store.transition(job_id, "cancelled", actor="test")
    wait_for(lambda: events.feed(0, (), tenant), 10)
    tail = run("events", "tail", "--tenant", tenant)
    [line] = [json.loads(line) for line in tail.output.splitlines()]
    assert line["type"] == "job.cancelled" and line["data"]["job_id"] == job_id


def test_dashboard_shows_endpoint_deliveries_and_sends_one_again(
    receiver: Receiver, browser_client: tuple[Any, str]
) -> None:
    client, csrf = browser_client
    tenant, job_id = unique("t"), unique("job")
    endpoint = subscribe(receiver, tenant)
    store.accept_job(job_id, tenant, unique("key"), "invoice", {})
    store.transition(job_id, "cancelled", actor="test")
    wait_for(lambda: webhooks.run_deliveries() >= 0 and receiver.bodies(tenant), 30)
    page = client.get("/webhooks")
    assert page.status_code == 200
    assert f"endpoint-{endpoint}" in page.text and "job.cancelled" in page.text
    [delivery] = [d for d in webhooks.deliveries_of(endpoint)]
    sent = client.post(f"/webhooks/deliveries/{delivery.id}/resend", data={"csrf_token": csrf})
    assert sent.status_code == 303
    wait_for(lambda: webhooks.run_deliveries() >= 0 and len(receiver.bodies(tenant)) == 2, 30)
    first, second = receiver.accepted[-2:]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the same event


def test_endpoint_failing_for_a_day_is_marked_once_and_recovers(receiver: Receiver) -> None:
    from worker.ledger.db import session
    from worker.ledger.models import WebhookEndpoint

    tenant, job_id = unique("t"), unique("job")
    endpoint, secret = webhooks.add_endpoint("http://127.0.0.1:9/hooks", None, tenant)
    receiver.secrets.append(secret)
    store.accept_job(job_id, tenant, unique("key"), "invoice", {})
    store.transition(job_id, "cancelled", actor="test")

    def row() -> WebhookEndpoint:
        [found] = [e for e in webhooks.list_endpoints() if e.id == endpoint.id]
        return found

    wait_for(lambda: webhooks.run_deliveries() >= 0 and row().failing_since is not None, 30)
    [delivery] = webhooks.deliveries_of(endpoint.id)
    assert not row().failing_alerted
    with session() as db:
        stored = db.get(WebhookEndpoint, endpoint.id)
        assert stored is not None
        stored.failing_since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)
    assert webhooks.deliver_one(delivery.id, force=True) is None
    assert row().failing_alerted
    with session() as db:
        stored = db.get(WebhookEndpoint, endpoint.id)
        assert stored is not None
        stored.url = receiver.url  # the receiver is back
    assert webhooks.deliver_one(delivery.id, force=True) is True
    assert row().failing_since is None and not row().failing_alerted
    assert [b["data"]["job_id"] for b in receiver.bodies(tenant)] == [job_id]
