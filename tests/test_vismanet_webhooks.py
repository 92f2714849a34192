"""Visma.net notifications end to end over real HTTP: the session's simulator signs and
posts to the web app (`POST /webhooks/vismanet`), which queues them on the broker; a real
worker runs the task's half (`worker.ops.inbound.handle`), which re-reads what changed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from tests.conftest import SIMULATORS, VN_APP, WorkerProcess, invoice_job, unique, wait_for
from worker import pipeline
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import session
from worker.ledger.models import OutboundEvent
from worker.providers.vismanet.inbound import event_name, sign
from worker.providers.vismanet.settings import provider_settings as vismanet_settings
from worker.providers.vismanet.transport import path_id
from worker.simulators.common import SimulatorServer
from worker.tenancy import refcache
from worker.tenancy.refcache import cached_names
from worker.tenancy.tenants import add_tenant
from worker.transport.redis_client import get_redis

SECRET = "subscription-secret"
SCOPES = " ".join(f"vismanet_erp_service_api:{s}" for s in ("read", "create", "update"))


@pytest.fixture(scope="module")
def web_url() -> Iterator[str]:
    from worker.web.app import create_app

    server = SimulatorServer(create_app()).start()
    yield server.url
    server.stop()


@pytest.fixture
def sim(
    vn_session_sim: Any,
    session_worker: WorkerProcess,
    web_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """The simulator the workers reach, its webhooks sent to the web app."""
    monkeypatch.setattr(vismanet_settings(), "webhook_secret", SecretStr(f"old-secret, {SECRET}"))
    subscription = vn_session_sim.webhooks.subscribe(f"{web_url}/webhooks/vismanet", SECRET)
    vn_session_sim.webhooks.retry_interval_seconds = 0.05
    yield vn_session_sim
    vn_session_sim.webhooks.unsubscribe(subscription.id)


def seen(notification_id: str) -> bool:
    return bool(get_redis().exists(f"lp:inbound:vismanet:{notification_id}"))


def sim_url() -> str:
    return str(SIMULATORS["vn_url"])


def vn_tenant(sim: Any) -> tuple[str, str]:
    tenant_id = unique("vn-wh")
    company = f"{tenant_id}-company"
    sim.add_company(company, f"Company of {tenant_id}")
    add_tenant(
        tenant_id, "vismanet", "NO", {"tenant_id": company}, mapping={"payment_method": "BANK"}
    )
    return tenant_id, company


def book_invoice(tenant_id: str) -> str:
    payload = invoice_job(tenant_id)
    pipeline.process(payload)
    job = store.get_job(job_id_for(tenant_id, payload["idempotency_key"]))
    assert job.state == "booked", (job.error_code, job.error_message)
    return str(job.remote["book"]["number"])


def bookkeeper(sim_url: str, company: str) -> httpx.Client:
    """The company's own user of the API (not ledgerpush)."""
    form = {"grant_type": "client_credentials", "client_id": VN_APP[0],
            "client_secret": VN_APP[1], "scope": SCOPES, "tenant_id": company}  # fmt: skip
    token = httpx.post(f"{sim_url}/connect/token", data=form).json()["access_token"]
    return httpx.Client(base_url=sim_url, timeout=10, headers={"Authorization": f"Bearer {token}"})


def w(value: Any) -> dict[str, Any]:
    return {"value": value}


def register_payment(client: httpx.Client, invoice: str, amount: str) -> None:
    body = {
        "type": w("Payment"), "customer": w("c-42"), "paymentAmount": w(float(amount)),
        "paymentRef": w("BANK-77"), "applicationDate": w("2026-11-25"),
        "paymentLines": [{"operation": "Insert", "documentType": w("Invoice"),
                          "refNbr": w(invoice), "amountPaid": w(float(amount))}],
    }  # fmt: skip
    created = client.post("/v1/customerPayment", json=body)
    assert created.status_code == 201, created.text
    number = created.headers["Location"].rsplit("/", 1)[1]
    released = client.post(
        f"/v1/customerPayment/{number}/action/release", json={"type": w("Payment")}
    )
    assert released.status_code in (202, 204), released.text


def cached_customer(sim: Any) -> tuple[str, str]:
    """A tenant whose customer c-42 is in the reference cache, after the notification of
    its creation (which drops it) was handled."""
    tenant_id, company = vn_tenant(sim)
    book_invoice(tenant_id)
    wait_for(lambda: delivered(sim, company), 10)
    wait_for(lambda: "customer:c-42" not in cached_names(tenant_id), 60)
    refcache.forget(tenant_id, "customer:c-42")  # this process's own copy too
    book_invoice(tenant_id)  # found unchanged: read and cached, nothing written
    assert "customer:c-42" in cached_names(tenant_id)
    return tenant_id, company


def delivered(sim: Any, company: str) -> bool:
    """Every notification the simulator sent about the company was answered."""
    sent = [d for d in sim.webhooks.snapshot() if d["tenantId"] == company]
    return bool(sent) and all(d["attempts"] for d in sent)


def events_of(tenant_id: str, kind: str) -> list[OutboundEvent]:
    with session() as db:
        query = select(OutboundEvent).where(
            OutboundEvent.tenant_id == tenant_id, OutboundEvent.type == kind
        )
        return list(db.scalars(query))


def signed_post(url: str, body: bytes, secret: str, notification_id: str) -> httpx.Response:
    headers = {"x-vwd-signature-v1": sign(secret.encode(), body),
               "x-vwd-notification-id": notification_id, "x-vwd-tenant-id": "some-company",
               "content-type": "application/json"}  # fmt: skip
    return httpx.post(f"{url}/webhooks/vismanet", content=body, headers=headers)


def test_bad_or_missing_signature_is_refused_and_nothing_queued(sim: Any, web_url: str) -> None:
    body = b'{"event":"Customer.Changed","number":"10000"}'
    bad, missing = str(uuid.uuid4()), str(uuid.uuid4())
    assert signed_post(web_url, body, "not-the-secret", bad).status_code == 401
    unsigned = httpx.post(f"{web_url}/webhooks/vismanet", content=body,
                          headers={"x-vwd-notification-id": missing})  # fmt: skip
    assert unsigned.status_code == 401
    assert not seen(bad) and not seen(missing)


def test_a_rotated_secret_overlaps_and_a_duplicate_is_ignored(sim: Any, web_url: str) -> None:
    body = b'{"event":"AR Invoice Status Changed","number":"1"}'
    notification_id = str(uuid.uuid4())
    first = signed_post(web_url, body, "old-secret", notification_id)
    assert first.status_code == 202 and first.json() == {"queued": True}
    again = signed_post(web_url, body, SECRET, notification_id)
    assert again.status_code == 200 and again.json() == {"queued": False}
    assert seen(notification_id)


def test_event_names_are_normalised() -> None:
    assert event_name({"event": "AR Invoice Status Changed"}) == "arinvoicestatuschanged"
    assert event_name({"Event": "ArInvoice.StatusChanged"}) == "arinvoicestatuschanged"
    assert event_name({"entity": "Customer", "eventType": "Changed"}) == "customerchanged"
    assert event_name({"event": {"nested": 1}}) == ""
    assert event_name({}) == ""


def test_a_payment_registered_by_the_bookkeeper_is_read_back_once(sim: Any) -> None:
    tenant_id, company = vn_tenant(sim)
    number = book_invoice(tenant_id)
    # The release's own status change is handled too: nothing changed for the payer.
    wait_for(lambda: delivered(sim, company), 10)
    assert events_of(tenant_id, "invoice.paid") == []

    with bookkeeper(sim_url(), company) as client:
        register_payment(client, number, "15000.00")
    httpx.post(f"{sim_url()}/_control/background/run")
    wait_for(lambda: sim.companies[company].document("Invoice", number).status == "Closed", 10)
    [paid] = wait_for(lambda: events_of(tenant_id, "invoice.paid") or None, 60)
    assert paid.job_id and Decimal(str(paid.payload["data"]["remaining"])) == 0

    # The dispatcher sends it again (a retry): seen before, not queued, no second event.
    delivery = [d for d in sim.webhooks.snapshot() if d["tenantId"] == company][-1]
    raw = json.dumps(delivery["body"], separators=(",", ":")).encode()
    again = httpx.post(
        f"{sim.webhooks.subscriptions[delivery['subscriptionId']].url}",
        content=raw,
        headers={"x-vwd-signature-v1": sign(SECRET.encode(), raw),
                 "x-vwd-notification-id": delivery["notificationId"], "x-vwd-tenant-id": company},
    )  # fmt: skip
    assert again.json() == {"queued": False}
    assert len(events_of(tenant_id, "invoice.paid")) == 1


def test_a_customer_change_drops_that_customer_from_the_cache(sim: Any) -> None:
    tenant_id, company = cached_customer(sim)
    with bookkeeper(sim_url(), company) as client:
        changed = client.put(f"/v1/customer/{path_id('c-42')}", json={"name": w("Nordic Tools")})
        assert changed.status_code == 204, changed.text
    wait_for(lambda: "customer:c-42" not in cached_names(tenant_id), 60)
    names = cached_names(tenant_id)
    assert any(not n.startswith("customer:") for n in names)  # the other references stay


def test_a_customer_change_without_a_number_drops_every_customer(sim: Any, web_url: str) -> None:
    tenant_id, company = cached_customer(sim)
    body = b'{"event":"Customer Changed"}'
    headers = {"x-vwd-signature-v1": sign(SECRET.encode(), body),
               "x-vwd-notification-id": str(uuid.uuid4()), "x-vwd-tenant-id": company}  # fmt: skip
    assert (
        httpx.post(f"{web_url}/webhooks/vismanet", content=body, headers=headers).status_code == 202
    )
    wait_for(lambda: not [n for n in cached_names(tenant_id) if n.startswith("customer:")], 60)
