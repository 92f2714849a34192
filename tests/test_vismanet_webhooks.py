"""Visma.net notifications end to end over real HTTP: the simulator's webhook sender
signs and posts to the web app (`POST /webhooks/vismanet`), which queues them on the
broker; the queued task's half (`worker.inbound.handle`) then re-reads what changed."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from tests.conftest import VN_APP, invoice_job, unique, wait_for
from worker import inbound, pipeline
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import session
from worker.ledger.models import OutboundEvent
from worker.providers.vismanet.inbound import event_name, sign
from worker.providers.vismanet.transport import path_id
from worker.redis_client import get_redis
from worker.refcache import cached_names
from worker.settings import get_settings
from worker.simulators.common import SimulatorServer
from worker.tasknames import HANDLE_INBOUND_TASK, MAINTENANCE_QUEUE
from worker.tenants import add_tenant

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
    vn_sim: Any, vn_server: tuple[Any, str], web_url: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The simulator, ledgerpush pointing at it, and its webhooks sent to the web app."""
    _, url = vn_server
    settings = get_settings()
    monkeypatch.setattr(settings, "vismanet_api_url", url)
    monkeypatch.setattr(settings, "vismanet_identity_url", url)
    monkeypatch.setattr(settings, "vismanet_client_id", VN_APP[0])
    monkeypatch.setattr(settings, "vismanet_client_secret", SecretStr(VN_APP[1]))
    monkeypatch.setattr(settings, "vismanet_webhook_secret", SecretStr(f"old-secret, {SECRET}"))
    vn_sim.webhooks.subscribe(f"{web_url}/webhooks/vismanet", SECRET)
    vn_sim.webhooks.retry_interval_seconds = 0.05
    drain()
    return vn_sim


def drain() -> list[str]:
    """Take the queued inbound notifications off the maintenance queue (their task's
    argument), leaving any other task where it is."""
    redis = get_redis()
    taken = []
    for raw in redis.lrange(MAINTENANCE_QUEUE, 0, -1):  # type: ignore[union-attr]
        message = json.loads(raw)
        if message.get("headers", {}).get("task") != HANDLE_INBOUND_TASK:
            continue
        if redis.lrem(MAINTENANCE_QUEUE, 1, raw):
            args = json.loads(base64.b64decode(message["body"]))[0]
            taken.append(str(args[0]))
    return taken


def handle_queued() -> list[dict[str, Any]]:
    notifications = drain()
    for serialized in notifications:
        inbound.handle(serialized)
    return [json.loads(n) for n in notifications]


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
    assert signed_post(web_url, body, "not-the-secret", str(uuid.uuid4())).status_code == 401
    unsigned = httpx.post(f"{web_url}/webhooks/vismanet", content=body,
                          headers={"x-vwd-notification-id": str(uuid.uuid4())})  # fmt: skip
    assert unsigned.status_code == 401
    assert drain() == []


def test_a_rotated_secret_overlaps_and_a_duplicate_is_ignored(sim: Any, web_url: str) -> None:
    body = b'{"event":"AR Invoice Status Changed","number":"1"}'
    notification_id = str(uuid.uuid4())
    first = signed_post(web_url, body, "old-secret", notification_id)
    assert first.status_code == 202 and first.json() == {"queued": True}
    again = signed_post(web_url, body, SECRET, notification_id)
    assert again.status_code == 200 and again.json() == {"queued": False}
    [queued] = handle_queued()
    assert queued["event"] == "arinvoicestatuschanged" and queued["company"] == "some-company"


def test_event_names_are_normalised() -> None:
    assert event_name({"event": "AR Invoice Status Changed"}) == "arinvoicestatuschanged"
    assert event_name({"Event": "ArInvoice.StatusChanged"}) == "arinvoicestatuschanged"
    assert event_name({"entity": "Customer", "eventType": "Changed"}) == "customerchanged"
    assert event_name({"event": {"nested": 1}}) == ""
    assert event_name({}) == ""


def test_a_payment_registered_by_the_bookkeeper_is_read_back_once(
    sim: Any, vn_server: tuple[Any, str]
) -> None:
    tenant_id, company = vn_tenant(sim)
    number = book_invoice(tenant_id)
    wait_for(lambda: any(d["attempts"] for d in sim.webhooks.snapshot()), 5)
    handle_queued()  # the release's own status change: nothing changed for the payer
    assert events_of(tenant_id, "invoice.paid") == []

    with bookkeeper(vn_server[1], company) as client:
        register_payment(client, number, "15000.00")
    httpx.post(f"{vn_server[1]}/_control/background/run")
    wait_for(lambda: sim.companies[company].document("Invoice", number).status == "Closed", 5)
    queued = wait_for(lambda: handle_queued() or None, 5)
    assert {n["event"] for n in queued} == {"arinvoicestatuschanged"}
    [paid] = events_of(tenant_id, "invoice.paid")
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
    assert drain() == []
    assert len(events_of(tenant_id, "invoice.paid")) == 1


def test_a_customer_change_drops_that_customer_from_the_cache(
    sim: Any, vn_server: tuple[Any, str]
) -> None:
    tenant_id, company = vn_tenant(sim)
    book_invoice(tenant_id)
    assert "customer:c-42" in cached_names(tenant_id)
    wait_for(lambda: any(d["attempts"] for d in sim.webhooks.snapshot()), 5)
    handle_queued()
    with bookkeeper(vn_server[1], company) as client:
        changed = client.put(f"/v1/customer/{path_id('c-42')}", json={"name": w("Nordic Tools")})
        assert changed.status_code == 204, changed.text
    queued = wait_for(lambda: handle_queued() or None, 5)
    assert [n["event"] for n in queued] == ["customerchanged"]
    names = cached_names(tenant_id)
    assert "customer:c-42" not in names
    assert any(not n.startswith("customer:") for n in names)  # the other references stay


def test_a_customer_change_without_a_number_drops_every_customer(sim: Any, web_url: str) -> None:
    tenant_id, company = vn_tenant(sim)
    book_invoice(tenant_id)
    wait_for(lambda: any(d["attempts"] for d in sim.webhooks.snapshot()), 5)
    handle_queued()
    body = b'{"event":"Customer Changed"}'
    headers = {"x-vwd-signature-v1": sign(SECRET.encode(), body),
               "x-vwd-notification-id": str(uuid.uuid4()), "x-vwd-tenant-id": company}  # fmt: skip
    assert (
        httpx.post(f"{web_url}/webhooks/vismanet", content=body, headers=headers).status_code == 202
    )
    handle_queued()
    assert not [n for n in cached_names(tenant_id) if n.startswith("customer:")]
