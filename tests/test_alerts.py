"""Alerts on transitions, not per job: a broken connection gives one Sentry event (real
sentry-sdk transport into a local envelope receiver) and one signed webhook, however many
jobs and workers meet it; reconnecting through the real callback resumes parked jobs."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import (
    connect_ea_tenant,
    connect_ec_tenant,
    danish_customer,
    invoice_job,
    unbookable_line,
    unique,
    wait_for,
)
from tests.connection_support import (
    WEBHOOK_SECRET,
    CallbackServer,
    Fleet,
    Received,
    callback_server,
    fleet,
    refreshes,
    settle,
    settle_all,
    stays,
    webhook_data,
)
from worker.auth.connect import connect_url
from worker.jobs import job_id_for
from worker.ledger.db import session
from worker.ledger.models import EventDelivery, JobEvent, OutboundEvent, WebhookDelivery
from worker.ledger.store import find_job
from worker.ops.alerts import SIGNATURE_HEADER, sign, verify
from worker.tenancy.tenants import get_tenant
from worker.transport.producer import enqueue, send


@pytest.fixture(scope="module")
def workers(base_env: dict[str, str]) -> Iterator[Fleet]:
    with fleet(base_env, count=2, concurrency=8) as started:
        yield started


@pytest.fixture(scope="module")
def callback(workers: Fleet) -> Iterator[CallbackServer]:
    with callback_server(workers.receiver.hook_url) as server:
        yield server


def _type(item: Received) -> str:
    return str(webhook_data(item)["type"])


def signed(item: Received) -> bool:
    header = item.headers.get(SIGNATURE_HEADER) or ""
    return verify(item.body, header, WEBHOOK_SECRET)


def one_hook(workers: Fleet, event: str, tenant: str) -> dict[str, Any]:
    """Wait for the webhook, then make sure no second one follows."""
    wait_for(lambda: workers.receiver.hooks(event, tenant), 20)
    assert stays(lambda: len(workers.receiver.hooks(event, tenant)) == 1, 1.5)
    [item] = workers.receiver.hooks(event, tenant)
    assert signed(item), item.headers
    return webhook_data(item)


def one_sentry_event(workers: Fleet, tenant: str) -> dict[str, Any]:
    wait_for(lambda: workers.receiver.sentry_events(tenant), 20)
    assert stays(lambda: len(workers.receiver.sentry_events(tenant)) == 1, 1.0)
    [event] = workers.receiver.sentry_events(tenant)
    return event


def _dk_invoice(tenant: str) -> dict[str, Any]:
    return invoice_job(tenant, currency="DKK", customer=danish_customer())


def test_password_change_parks_alerts_once_and_reconnect_resumes_in_order(
    workers: Fleet, callback: CallbackServer, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(tenant, "before"))).state == "booked"
    ea_sim.revoke_refresh_tokens(tenant)  # the user changed their password
    ea_sim.expire_access_tokens(tenant)
    ids = [enqueue(invoice_job(tenant, f"parked-{n}")) for n in range(8)]
    jobs = settle_all(ids)
    assert [j.state for j in jobs] == ["waiting_for_reauth"] * 8
    row = get_tenant(tenant)
    assert row.connection_state == "needs_reauth"
    assert "invalid_grant" in (row.connection_reason or "")
    assert "revoked" in (row.connection_reason or "")
    # Eight jobs on two workers: one spent the dead refresh token, the rest saw the verdict.
    assert refreshes(tenant) == 1
    late = enqueue(invoice_job(tenant, "parked-late"))  # arrives while disconnected
    assert settle(late).state == "waiting_for_reauth"

    hook = one_hook(workers, "tenant.reauth_required", tenant)
    assert hook["data"] == {
        "tenant_id": tenant,
        "provider": "eaccounting",
        "reason": row.connection_reason,
    }
    event = one_sentry_event(workers, tenant)
    assert event["fingerprint"] == ["tenant-reauth", tenant]
    assert event["level"] == "error"
    tags = dict(event["tags"])
    assert tags["tenant"] == tenant and tags["provider"] == "eaccounting"
    assert "invalid_grant" in tags["reason"]

    page = callback.reconnect_eaccounting(tenant)
    assert page.status_code == 200 and "9 waiting jobs were resumed" in page.text, page.text
    assert get_tenant(tenant).connection_state == "connected"
    booked = settle_all([*ids, late])
    assert [j.state for j in booked] == ["booked"] * 9, {(j.state, j.error_code) for j in booked}
    assert len(ea_sim.state_dump()[tenant]["invoices"]) == 10
    back = one_hook(workers, "tenant.reconnected", tenant)
    assert back["data"] == {"tenant_id": tenant, "provider": "eaccounting", "by": "oauth"}
    assert len(workers.receiver.sentry_events(tenant)) == 1  # reconnecting is not an error

    with session() as db:
        resumed = [
            e.job_id
            for e in db.query(JobEvent)
            .filter(JobEvent.job_id.in_([*ids, late]), JobEvent.note == "resumed after reconnect")
            .order_by(JobEvent.id)
        ]
        deliveries = [
            d for d in db.query(WebhookDelivery) if d.payload["data"].get("tenant_id") == tenant
        ]
    arrival = sorted(settle_all([*ids, late]), key=lambda j: (j.created_at, j.id))
    assert resumed == [j.id for j in arrival]  # oldest first
    assert resumed[-1] == late
    assert sorted(d.event for d in deliveries) == ["tenant.reauth_required", "tenant.reconnected"]
    assert {d.status for d in deliveries} == {"delivered"}


def test_revoked_economic_grant_parks_alerts_once_and_reinstall_resumes(
    workers: Fleet, callback: CallbackServer, ec_sim: Any
) -> None:
    import httpx

    tenant = connect_ec_tenant("DK")
    grant = f"grant-{tenant}"
    ec_sim.revoke_grant(grant)
    ids = [enqueue(_dk_invoice(tenant)) for _ in range(4)]
    jobs = settle_all(ids)
    assert {(j.state, j.error_code) for j in jobs} <= {
        ("waiting_for_reauth", "grant_revoked"),
        ("waiting_for_reauth", None),
    }
    assert any(j.error_code == "grant_revoked" for j in jobs)
    row = get_tenant(tenant)
    assert row.connection_state == "needs_reauth" and "grant revoked" in (
        row.connection_reason or ""
    )
    hook = one_hook(workers, "tenant.reauth_required", tenant)
    assert hook["data"]["provider"] == "economic"
    event = one_sentry_event(workers, tenant)
    assert event["fingerprint"] == ["tenant-reauth", tenant]
    assert event["tags"]["provider"] == "economic"

    # The customer installs the app again (the simulator's stand-in re-enables the grant).
    with ec_sim.lock:
        ec_sim._agreement(grant).revoked = False
    link = f"{connect_url(tenant)}&agreement={grant}"
    page = httpx.get(link, follow_redirects=True, timeout=30)
    assert page.status_code == 200 and "4 waiting jobs were resumed" in page.text, page.text
    assert [j.state for j in settle_all(ids)] == ["booked"] * 4
    back = one_hook(workers, "tenant.reconnected", tenant)
    assert back["data"]["by"] == "installation"
    assert httpx.get(str(page.url)).status_code == 400  # the installation state is spent too


def test_dead_lettered_job_webhook_is_retried_and_its_deliveries_recorded(
    workers: Fleet, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    workers.receiver.fail_type = "job.failed"  # other tests' events use the same receiver
    workers.receiver.fail_next = 2
    bad = invoice_job(tenant, unique("bad"), lines=[unbookable_line()])  # sent raw, past the door
    job = settle(send(bad, "invoice", job_id_for(tenant, bad["idempotency_key"])))
    assert job.state == "failed"

    def delivery() -> EventDelivery | None:
        with session() as db:
            query = (
                db.query(EventDelivery)
                .join(OutboundEvent, OutboundEvent.id == EventDelivery.event_pk)
                .filter(OutboundEvent.type == "job.failed", OutboundEvent.job_id == job.id)
            )
            return query.first()

    failing = wait_for(lambda: (d := delivery()) is not None and d.attempts >= 1 and d, 20)
    assert failing.status in ("pending", "delivered")
    done = wait_for(lambda: (d := delivery()) is not None and d.status == "delivered" and d, 30)
    assert done.attempts == 3 and done.last_status_code == 200 and done.delivered_at
    attempts = [
        item
        for item in workers.receiver.hooks("job.failed", tenant)
        if webhook_data(item)["data"]["job_id"] == job.id
    ]
    assert len(attempts) == 3 and all(signed(item) for item in attempts)
    data = webhook_data(attempts[-1])["data"]
    assert (
        data["error"]["code"] == "provider_limit" and data["idempotency_key"] == job.idempotency_key
    )
    assert len({webhook_data(item)["id"] for item in attempts}) == 1  # same event, retried
    assert find_job(job.id) is not None


def test_signature_covers_timestamp_and_body() -> None:
    body = json.dumps({"type": "tenant.reconnected", "data": {"tenant_id": "t"}}).encode()
    now = int(time.time())
    header = sign(body, now, "s3cret")
    assert header.startswith(f"t={now},v1=")
    assert verify(body, header, "s3cret")
    assert not verify(body + b" ", header, "s3cret")
    assert not verify(body, header, "other")
    assert not verify(body, header.replace(f"t={now}", f"t={now + 1}"), "s3cret")
    old = sign(body, now - 3600, "s3cret")
    assert not verify(body, old, "s3cret")
    assert not verify(body, "", "s3cret") and not verify(body, "garbage", "s3cret")


def test_job_parked_just_after_a_reconnect_is_resumed_by_the_reconciler(workers: Fleet) -> None:
    """A worker read "needs_reauth", then the tenant was reconnected and its parked jobs
    resumed, and only then did that worker park its job: the periodic reconcile task
    finds parked jobs of connected tenants and resumes them."""
    from tasks.maintenance import reconcile
    from worker.jobs import parse_job
    from worker.ledger import store

    tenant = connect_ea_tenant("NO")
    job = parse_job(invoice_job(tenant))
    store.accept_job(job.job_id, tenant, job.idempotency_key, job.kind, job.model_dump(mode="json"))
    store.transition(job.job_id, "waiting_for_reauth", note="tenant needs re-authorization")
    assert get_tenant(tenant).connection_state == "connected"
    reconcile.delay()
    assert settle(job.job_id, states=("booked",)).state == "booked"
    # Nothing to alert about (the job's outcome events go to the same URL).
    alerts = ("tenant.reauth_required", "tenant.reconnected", "job.failed")
    assert not [h for h in workers.receiver.hooks(tenant=tenant) if h.body and _type(h) in alerts]


def test_alert_survives_a_broker_outage_and_the_reconciler_sends_it(
    workers: Fleet, base_env: dict[str, str]
) -> None:
    """The broker is unreachable when a connection breaks: the transition stands (no
    exception escapes), the delivery waits in the ledger as pending, and the periodic
    reconcile task sends it once its attempt is overdue."""
    from tasks.maintenance import reconcile
    from tests.conftest import ROOT

    tenant = connect_ea_tenant("NO")
    env = {
        **base_env,
        "LEDGERPUSH_REDIS_URL": "redis://127.0.0.1:1/0",  # nothing listens there
        "LEDGERPUSH_WEBHOOK_URL": workers.receiver.hook_url,
        "LEDGERPUSH_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    code = (
        "import sys\n"
        "from worker.tenancy.connections import tenant_needs_reauth\n"
        "tenant_needs_reauth(sys.argv[1], 'consent withdrawn')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, tenant],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "could not queue webhook delivery" in done.stderr
    assert get_tenant(tenant).connection_state == "needs_reauth"

    def delivery() -> WebhookDelivery:
        with session() as db:
            [row] = [
                d for d in db.query(WebhookDelivery) if d.payload["data"].get("tenant_id") == tenant
            ]
            return row

    lost = delivery()
    assert (lost.event, lost.status, lost.attempts) == ("tenant.reauth_required", "pending", 0)
    reconcile.delay()  # not overdue yet: left alone
    assert stays(lambda: delivery().status == "pending", 2.0)
    assert not workers.receiver.hooks("tenant.reauth_required", tenant)

    with session() as db:
        row = db.get(WebhookDelivery, lost.id)
        assert row is not None
        row.created_at = row.created_at - dt.timedelta(minutes=10)
    reconcile.delay()
    hook = one_hook(workers, "tenant.reauth_required", tenant)
    assert hook["data"]["reason"] == "consent withdrawn"
    wait_for(lambda: delivery().status == "delivered", 20)
    reconcile.delay()  # delivered: never sent again
    assert stays(lambda: len(workers.receiver.hooks("tenant.reauth_required", tenant)) == 1, 2.0)
