"""Webhook endpoints managed over the JSON API and the dashboard: the web app with real
Redis and the ledger, test-sends to a real local receiver that verifies each post with
the `standardwebhooks` library, scopes, and secrets that are shown once and nowhere
else (not in listings, pages or logs)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import unique, wait_for
from tests.web_helpers import PASSWORD, make_tenant, sign_in
from tests.webhook_receiver import Receiver, verifies
from worker.ledger.db import session
from worker.ledger.models import PaymentSync, TrackedInvoice
from worker.ops import events, webhooks
from worker.web.access import JOBS_OPERATE, JOBS_READ, JOBS_WRITE, WEBHOOKS_ADMIN
from worker.web.accounts import add_user, create_api_key

pytest_plugins = ["tests.web_fixtures"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


ENDPOINTS = "/api/webhooks/endpoints"


def client_with(*scopes: str) -> TestClient:
    from worker.web.app import create_app

    key = create_api_key(unique("key"), list(scopes))
    return TestClient(create_app(), headers={"Authorization": f"Bearer {key}"})


def add(api: TestClient, url: str, **fields: Any) -> tuple[dict[str, Any], str]:
    response = api.post(ENDPOINTS, json={"url": url, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["endpoint"], body["secret"]


def test_api_adds_lists_changes_rotates_and_removes_an_endpoint(api: TestClient) -> None:
    tenant = unique("t")
    endpoint, secret = add(
        api, "https://saas.example/hooks", events=["job.booked", "invoice.paid"], tenant_id=tenant
    )
    assert secret.startswith("whsec_")
    assert endpoint["events"] == ["job.booked", "invoice.paid"]
    assert (endpoint["tenant_id"], endpoint["enabled"], endpoint["source"]) == (tenant, True, "api")
    path = f"{ENDPOINTS}/{endpoint['id']}"

    listed = api.get(ENDPOINTS)
    assert listed.status_code == 200 and secret not in listed.text
    assert endpoint["id"] in [e["id"] for e in listed.json()]
    assert secret not in api.get(path).text

    changed = api.patch(path, json={"events": [], "tenant_id": None, "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["*"] and changed.json()["tenant_id"] is None
    assert changed.json()["enabled"] is False
    only_enabled = api.patch(path, json={"enabled": True}).json()
    assert only_enabled["enabled"] is True and only_enabled["events"] == ["*"]

    rotated = api.post(f"{path}/rotate-secret", json={"overlap_hours": 2})
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert rotated.json()["endpoint"]["previous_secret_until"] is not None
    shown = api.get(path).text
    assert secret not in shown and new_secret not in shown

    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404
    assert api.post(f"{path}/test").status_code == 404


def test_api_names_the_bad_field(api: TestClient) -> None:
    bad_type = api.post(ENDPOINTS, json={"url": "https://x.example", "events": ["job.nope"]})
    assert bad_type.status_code == 422
    assert bad_type.json()["detail"][0]["field"] == "events" and "job.nope" in bad_type.text
    bad_url = api.post(ENDPOINTS, json={"url": "ftp://x.example"})
    assert bad_url.status_code == 422 and bad_url.json()["detail"][0]["field"] == "url"
    for no_host in ("http://", "https://[::1"):
        refused = api.post(ENDPOINTS, json={"url": no_host})
        assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "url"
    unknown = api.post(ENDPOINTS, json={"url": "https://x.example", "secret": "mine"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "secret"
    endpoint, _ = add(api, "https://x.example/hooks")
    too_long = api.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret", json={"overlap_hours": -1})
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["field"] == "overlap_hours"


def test_scopes_decide_who_reads_changes_and_test_sends(receiver: Receiver) -> None:
    with client_with(WEBHOOKS_ADMIN) as admin:
        endpoint, secret = add(admin, receiver.url)
    receiver.secrets.append(secret)
    path = f"{ENDPOINTS}/{endpoint['id']}"
    with client_with(JOBS_READ) as reader:
        assert reader.get(ENDPOINTS).status_code == 200
        refused = reader.post(ENDPOINTS, json={"url": "https://x.example"})
        assert refused.status_code == 403 and WEBHOOKS_ADMIN in refused.json()["detail"]
        assert reader.patch(path, json={"enabled": False}).status_code == 403
        assert reader.post(f"{path}/rotate-secret").status_code == 403
        assert reader.delete(path).status_code == 403
        assert reader.post(f"{path}/test").status_code == 403
    with client_with(JOBS_WRITE) as producer:
        assert producer.get(ENDPOINTS).status_code == 403
    with client_with(JOBS_OPERATE) as operator:
        assert operator.post(f"{path}/test").json()["status_code"] == 200
        assert operator.delete(path).status_code == 403
    assert webhooks.get_endpoint(endpoint["id"]).enabled


def test_test_send_reaches_the_receiver_signed_and_is_not_an_event(
    api: TestClient, receiver: Receiver
) -> None:
    tenant = unique("t")
    endpoint, secret = add(api, receiver.url, tenant_id=tenant)
    receiver.secrets.append(secret)
    api.patch(f"{ENDPOINTS}/{endpoint['id']}", json={"enabled": False})  # disabled: still tests
    sent = api.post(f"{ENDPOINTS}/{endpoint['id']}/test")
    assert sent.status_code == 200, sent.text
    result = sent.json()
    assert result["ok"] is True and result["status_code"] == 200 and result["error"] is None
    assert 0 < result["latency_ms"] < 10_000
    [hook] = receiver.accepted
    assert verifies(secret, hook.headers, _raw(hook))
    assert hook.body["type"] == "webhook.test" and hook.headers["webhook-id"] == hook.body["id"]
    assert hook.body["data"]["endpoint_id"] == endpoint["id"]
    assert hook.body["data"]["tenant_id"] == tenant
    assert events.feed(0, (), tenant) == [] and webhooks.deliveries_of(endpoint["id"]) == []

    receiver.down = True
    failed = api.post(f"{ENDPOINTS}/{endpoint['id']}/test").json()
    assert (failed["ok"], failed["status_code"], failed["error"]) == (False, 503, "HTTP 503")
    assert webhooks.get_endpoint(endpoint["id"]).failing_since is None  # health untouched
    nobody = add(api, "http://127.0.0.1:9/hooks")[0]
    unreachable = api.post(f"{ENDPOINTS}/{nobody['id']}/test").json()
    assert unreachable["ok"] is False and unreachable["status_code"] is None
    assert unreachable["error"].startswith("ConnectError")


def _raw(hook: Any) -> bytes:
    import json

    return json.dumps(hook.body, sort_keys=True).encode()


def test_rotation_both_secrets_verify_during_the_overlap_then_only_the_new(
    api: TestClient,
) -> None:
    old_only, new_only = Receiver().start(), Receiver().start()
    try:
        endpoint, old = add(api, old_only.url)
        path = f"{ENDPOINTS}/{endpoint['id']}"
        new = api.post(f"{path}/rotate-secret", json={"overlap_hours": 1}).json()["secret"]
        old_only.secrets.append(old)
        new_only.secrets.append(new)
        for receiver in (old_only, new_only):
            webhooks_url(endpoint["id"], receiver.url)
            assert api.post(f"{path}/test").json()["status_code"] == 200
            [hook] = receiver.accepted
            assert len(hook.headers["webhook-signature"].split(" ")) == 2
        newest = api.post(f"{path}/rotate-secret", json={"overlap_hours": 0}).json()["secret"]
        new_only.secrets[:] = [newest]
        old_only.secrets[:] = [new]
        for receiver, status in ((new_only, 200), (old_only, 401)):
            webhooks_url(endpoint["id"], receiver.url)
            assert api.post(f"{path}/test").json()["status_code"] == status
        assert api.get(path).json()["previous_secret_until"] is None
    finally:
        old_only.stop()
        new_only.stop()


def webhooks_url(endpoint_id: int, url: str) -> None:
    """Point an endpoint at another receiver (the API keeps a URL: remove and add)."""
    from worker.ledger.models import WebhookEndpoint

    with session() as db:
        row = db.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        row.url = url


def test_cli_test_send_uses_the_same_function(receiver: Receiver) -> None:
    from typer.testing import CliRunner

    from worker.cli import app

    endpoint, secret = webhooks.add_endpoint(receiver.url, None, unique("t"))
    receiver.secrets.append(secret)
    done = CliRunner().invoke(app, ["webhooks", "endpoints", "test", str(endpoint.id)])
    assert done.exit_code == 0 and "HTTP 200" in done.output, done.output
    assert receiver.accepted[-1].body["type"] == "webhook.test"


@pytest.fixture
def admin_session(anon: TestClient) -> tuple[TestClient, str]:
    name = unique("admin")
    add_user(name, PASSWORD, role="admin")
    return anon, sign_in(anon, name)


def _flash(client: TestClient, page: str = "/webhooks") -> str:
    found = re.findall(
        r'<div class="flash[^"]*" role="status">([^<]*)</div>', client.get(page).text
    )
    return " ".join(found)


def test_dashboard_adds_disables_rotates_test_sends_and_removes(
    admin_session: tuple[TestClient, str], receiver: Receiver
) -> None:
    client, csrf = admin_session
    tenant = unique("t")
    form = {"csrf_token": csrf, "url": receiver.url, "events": ["job.booked"], "tenant_id": tenant}
    added = client.post("/webhooks/endpoints/add", data=form)
    assert added.status_code == 200 and "not shown again" in added.text
    secret = re.search(r'id="endpoint-secret" readonly value="(whsec_[^"]+)"', added.text)
    assert secret
    receiver.secrets.append(secret.group(1))
    [endpoint] = [e for e in webhooks.list_endpoints() if e.tenant_id == tenant]
    assert endpoint.event_types == "job.booked"
    page = client.get("/webhooks").text
    assert f'id="endpoint-{endpoint.id}"' in page and secret.group(1) not in page
    assert f'id="test-{endpoint.id}"' in page and f'id="rotate-{endpoint.id}"' in page

    base = f"/webhooks/endpoints/{endpoint.id}"
    assert client.post(f"{base}/disable", data={"csrf_token": csrf}).status_code == 303
    assert not webhooks.get_endpoint(endpoint.id).enabled
    assert "disabled" in _flash(client)
    assert client.post(f"{base}/enable", data={"csrf_token": csrf}).status_code == 303
    assert webhooks.get_endpoint(endpoint.id).enabled

    tested = client.post(f"{base}/test", data={"csrf_token": csrf})
    assert tested.status_code == 303
    assert re.search(r"Test event to endpoint \d+: HTTP 200 in \d+ ms", _flash(client))
    assert receiver.accepted[-1].body["type"] == "webhook.test"

    rotated = client.post(f"{base}/rotate-secret", data={"csrf_token": csrf, "overlap_hours": "1"})
    new = re.search(r'id="endpoint-secret" readonly value="(whsec_[^"]+)"', rotated.text)
    assert rotated.status_code == 200 and new and new.group(1) != secret.group(1)
    assert "previous secret also signs until" in rotated.text
    assert new.group(1) not in client.get("/webhooks").text

    assert client.get(f"{base}/remove").status_code == 200
    assert client.post(f"{base}/remove", data={"csrf_token": csrf}).status_code == 303
    assert endpoint.id not in [e.id for e in webhooks.list_endpoints()]
    bad = client.post("/webhooks/endpoints/add", data={"csrf_token": csrf, "url": "nope"})
    assert bad.status_code == 422 and "must start with http" in bad.text


def test_dashboard_forms_need_the_csrf_token_and_the_role(
    anon: TestClient, receiver: Receiver
) -> None:
    endpoint, _ = webhooks.add_endpoint(receiver.url, None, unique("t"))
    base = f"/webhooks/endpoints/{endpoint.id}"
    name = unique("admin")
    add_user(name, PASSWORD, role="admin")
    sign_in(anon, name)
    assert anon.post(f"{base}/disable", data={}).status_code == 403
    assert anon.post(f"{base}/test", data={"csrf_token": "wrong"}).status_code == 403
    assert webhooks.get_endpoint(endpoint.id).enabled and receiver.accepted == []

    anon.cookies.clear()
    viewer = unique("viewer")
    add_user(viewer, PASSWORD, role="viewer")
    csrf = sign_in(anon, viewer)
    page = anon.get("/webhooks").text
    assert f'id="endpoint-{endpoint.id}"' in page
    assert f'id="test-{endpoint.id}"' not in page and 'id="add-endpoint"' not in page
    refused = anon.post(f"{base}/remove", data={"csrf_token": csrf})
    assert refused.status_code == 403 and WEBHOOKS_ADMIN in refused.text

    anon.cookies.clear()
    operator = unique("operator")
    add_user(operator, PASSWORD, role="operator")
    csrf = sign_in(anon, operator)
    page = anon.get("/webhooks").text
    assert f'id="test-{endpoint.id}"' in page and f'id="rotate-{endpoint.id}"' not in page
    assert anon.post(f"{base}/disable", data={"csrf_token": csrf}).status_code == 403


def test_secrets_never_reach_logs_or_pages(
    api: TestClient,
    admin_session: tuple[TestClient, str],
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from typer.testing import CliRunner

    from worker.cli import app

    client, csrf = admin_session
    caplog.set_level(logging.DEBUG)
    endpoint, first = add(api, receiver.url)
    second = api.post(f"{ENDPOINTS}/{endpoint['id']}/rotate-secret").json()["secret"]
    receiver.secrets.append(second)
    api.post(f"{ENDPOINTS}/{endpoint['id']}/test")
    client.post(f"/webhooks/endpoints/{endpoint['id']}/test", data={"csrf_token": csrf})
    shown = [
        caplog.text,
        api.get(ENDPOINTS).text,
        client.get("/webhooks").text,
        client.get("/api/openapi.json").text,
        CliRunner().invoke(app, ["webhooks", "endpoints", "list", "--json"]).output,
    ]
    for text in shown:
        assert first not in text and second not in text
        assert first.removeprefix("whsec_") not in text
    assert "webhook endpoint" in caplog.text  # the actions are logged, the secrets not


@pytest.fixture
def tracked_tenant() -> Iterator[str]:
    """A tenant with one invoice whose payment status is read back from the books."""
    from tests.conftest import connect_ea_tenant

    tenant = connect_ea_tenant("NO")
    with session() as db:
        db.add(
            TrackedInvoice(
                tenant_id=tenant, job_id=unique("job"), idempotency_key=unique("key"),
                remote_id="00000000-0000-0000-0000-00000000abcd", currency="NOK",
                remaining="1250.00", paid=False,
            )
        )  # fmt: skip
    yield tenant


def test_tenant_page_shows_the_payment_sync_and_syncs_now(
    session_worker: Any, admin_session: tuple[TestClient, str], tracked_tenant: str
) -> None:
    client, csrf = admin_session
    page = client.get(f"/tenants/{tracked_tenant}").text
    assert 'id="payment-sync"' in page
    assert re.search(r'id="payments-open">1<', page)
    assert re.search(r'id="payments-last-sync">-<', page)
    assert 'id="payments-next">none needed' not in page
    synced = client.post(f"/tenants/{tracked_tenant}/payments/sync", data={"csrf_token": csrf})
    assert synced.status_code == 303
    assert "Payment sync queued" in _flash(client, f"/tenants/{tracked_tenant}")

    def last_sync() -> Any:
        with session() as db:
            row = db.get(PaymentSync, tracked_tenant)
            return row is not None and row.last_sync_at

    wait_for(last_sync, 60)
    page = client.get(f"/tenants/{tracked_tenant}").text
    assert re.search(r'id="payments-last-sync">\d{4}-\d\d-\d\d ', page)
    assert re.search(r'id="payments-error"><span class="muted">none', page)


def test_tenant_page_shows_the_last_sync_error_and_no_next_sync_without_open_invoices(
    admin_session: tuple[TestClient, str],
) -> None:
    client, _ = admin_session
    idle = make_tenant()
    page = client.get(f"/tenants/{idle}").text
    assert re.search(r'id="payments-next"><span class="muted">none needed', page)
    with session() as db:
        db.add(PaymentSync(tenant_id=idle, last_error="HTTP 503 from the books"))
    page = client.get(f"/tenants/{idle}").text
    assert "HTTP 503 from the books" in page
