"""The web app over HTTP (in-process ASGI client, real Redis and ledger): sign-in, CSRF,
API keys, the JSON API's idempotency and validation, operator actions, no secrets shown."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import invoice_job, unique, wait_for
from tests.web_helpers import PASSWORD, SECRETS, make_job, make_tenant, sign_in
from worker.explain import explain
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import session
from worker.ledger.models import Attempt, WebhookDelivery
from worker.tenancy.tenants import get_tenant, set_connection
from worker.transport.redis_client import get_redis
from worker.web import throttle
from worker.web.accounts import revoke_api_key, verify_api_key

pytest_plugins = ["tests.web_fixtures"]

PUBLIC = {
    "/health",
    "/metrics",
    "/login",
    "/connect/{provider}/callback",  # each provider's consent page sends the customer back
    "/webhooks/{provider}",  # an accounting system's notifications, signed by the sender
}
Signed = tuple[TestClient, str]


def all_routes() -> list[tuple[str, str]]:
    """(method, path) of every route, whatever way FastAPI keeps included routers."""
    from fastapi.routing import APIRoute

    from worker.web.app import create_app

    found: list[tuple[str, str]] = []

    def visit(routes: list[Any]) -> None:
        for route in routes:
            if hasattr(route, "effective_route_contexts"):
                visit(list(route.effective_route_contexts()))
            elif isinstance(route, APIRoute) or hasattr(route, "methods"):
                found.extend((m, route.path) for m in sorted(route.methods or ()) if m != "HEAD")

    visit(list(create_app().routes))
    return found


def concrete(path: str) -> str:
    return (
        path.replace("{action}", "retry")
        .replace("{provider}", "eaccounting")
        .replace("{job_id}", "00000000-0000-0000-0000-000000000000")
        .replace("{tenant_id}", "nobody")
        .replace("{delivery_id}", "1")
    )


def test_every_route_is_refused_without_session_or_key(anon: TestClient) -> None:
    routes = all_routes()
    assert len(routes) > 25
    for method, path in routes:
        if path in PUBLIC or path.startswith("/static"):
            continue
        response = anon.request(method, concrete(path))
        if path.startswith("/api"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login")


def test_public_routes_and_private_metrics(anon: TestClient, monkeypatch: Any) -> None:
    assert anon.get("/health").json()["status"] == "ok"
    assert anon.get("/metrics").status_code == 200
    import worker.web.app as web_app

    private = web_app.get_settings().model_copy(update={"metrics_public": False})
    monkeypatch.setattr(web_app, "get_settings", lambda: private)
    assert anon.get("/metrics").status_code == 401


def test_wrong_revoked_or_malformed_api_keys_are_refused(anon: TestClient, api_key: str) -> None:
    for bad in ("nope", api_key + "x", "lp_000000000000_abc", api_key.replace("lp_", "xx_")):
        response = anon.get("/api/jobs", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401
    assert anon.get("/api/jobs", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200
    assert revoke_api_key(api_key.split("_")[1]) == 1
    assert verify_api_key(api_key) is None
    assert anon.get("/api/jobs", headers={"Authorization": f"Bearer {api_key}"}).status_code == 401


def test_sign_in_cookie_flags_wrong_password_and_sign_out(anon: TestClient, operator: str) -> None:
    page = anon.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    wrong = anon.post(
        "/login", data={"username": operator, "password": "nope", "csrf_token": token.group(1)}
    )
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    no_csrf = anon.post("/login", data={"username": operator, "password": PASSWORD})
    assert no_csrf.status_code == 403
    page = anon.get("/login?next=/tenants")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    ok = anon.post(
        "/login",
        data={
            "username": operator,
            "password": PASSWORD,
            "csrf_token": token.group(1),
            "next": "//evil.example",
        },
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', anon.get("/").text)
    assert csrf
    old_session = anon.cookies.get("lp_session")
    assert anon.post("/logout").status_code == 403  # no CSRF token
    assert anon.post("/logout", data={"csrf_token": csrf.group(1)}).status_code == 303
    anon.cookies.set("lp_session", old_session or "")
    assert anon.get("/").status_code == 303  # the old cookie is dead everywhere


def test_session_cookie_is_secure_when_the_request_came_over_https(operator: str) -> None:
    from worker.web.app import create_app

    def cookie_flags(base_url: str) -> tuple[list[str], list[str]]:
        """The flags of the sign-in form's CSRF cookie and of the session cookie."""
        with TestClient(create_app(), base_url=base_url, follow_redirects=False) as client:
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            form = {"username": operator, "password": PASSWORD, "csrf_token": token.group(1)}
            ok = client.post("/login", data=form)
            assert ok.status_code == 303, ok.text
            session_cookie = next(
                c for c in ok.headers.get_list("set-cookie") if c.startswith("lp_session=")
            )
            return (
                page.headers["set-cookie"].lower().split("; "),
                session_cookie.lower().split("; "),
            )

    login_csrf, session_cookie = cookie_flags("https://testserver")
    assert "secure" in login_csrf and "secure" in session_cookie
    login_csrf, session_cookie = cookie_flags("http://testserver")
    assert "secure" not in login_csrf and "secure" not in session_cookie


def test_password_guessing_is_throttled(anon: TestClient, operator: str) -> None:
    def attempt(password: str) -> int:
        page = anon.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        form = {"username": operator, "password": password, "csrf_token": token.group(1)}
        return anon.post("/login", data=form).status_code

    # A few failures are free; then each holds this address and username for longer
    # (worker/web/throttle.py; tests/test_access.py shows other addresses are not held).
    assert [attempt("guess") for _ in range(throttle.FREE_PER_PAIR)] == [401] * 5
    for _ in range(30):
        if throttle.wait_seconds("testclient", operator) > 5:
            break
        assert attempt("guess") in (401, 429)
    assert attempt(PASSWORD) == 429
    throttle.forget("testclient", operator)  # other tests sign in from this address too


def test_admin_from_settings_can_sign_in(anon: TestClient, monkeypatch: Any) -> None:
    from pydantic import SecretStr

    import worker.web.accounts as accounts

    settings = accounts.get_settings().model_copy(
        update={"web_admin_user": "boss", "web_admin_password": SecretStr("s3cret-admin-pw")}
    )
    monkeypatch.setattr(accounts, "get_settings", lambda: settings)
    assert accounts.authenticate("boss", "s3cret-admin-pw") == "boss"
    assert accounts.authenticate("boss", "wrong") is None
    sign_in(anon, "boss", "s3cret-admin-pw")


def test_form_posts_need_the_csrf_token(browser_client: Signed) -> None:
    client, csrf = browser_client
    job = make_job(unique("nobody"), "failed")
    assert client.post(f"/jobs/{job.id}/cancel").status_code == 403
    assert client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": "forged"}).status_code == 403
    assert (
        client.post(f"/jobs/{job.id}/cancel", headers={"X-CSRF-Token": "forged"}).status_code == 403
    )
    assert store.get_job(job.id).state == "failed"
    done = client.post(f"/jobs/{job.id}/cancel", headers={"X-CSRF-Token": csrf})  # as htmx sends it
    assert done.status_code == 303
    assert store.get_job(job.id).state == "cancelled"
    # A session used on the API needs the header too.
    other = make_job(unique("nobody"), "failed")
    assert client.post(f"/api/jobs/{other.id}/cancel").status_code == 403
    assert (
        client.post(f"/api/jobs/{other.id}/cancel", headers={"X-CSRF-Token": csrf}).status_code
        == 200
    )


def test_no_secret_appears_in_any_page(browser_client: Signed, api: TestClient) -> None:
    client, _ = browser_client
    tenant = make_tenant(display_name="Secretive AS")
    set_connection(tenant, "needs_reauth", "refresh token rejected")
    job = make_job(tenant, "failed", message="token=SECRET-IN-MESSAGE-99 was refused")
    store.update_job(job.id, payload={**job.payload, "access_token": "SECRET-IN-PAYLOAD-42"})
    pages = [
        "/", "/overview/live", "/jobs", f"/jobs/{job.id}", f"/jobs/{job.id}/retry", "/tenants",
        f"/tenants/{tenant}", "/dead-letters", f"/bulk?tenant={tenant}",
    ]  # fmt: skip
    bodies = [client.get(p).text for p in pages]
    bodies += [
        api.get(p).text
        for p in ("/api/tenants", f"/api/tenants/{tenant}", f"/api/jobs/{job.id}", "/api/jobs")
    ]
    assert "Secretive AS" in bodies[6]
    forbidden = [
        *[str(v) for k, v in SECRETS.items() if k != "expires_at"],
        "SECRET-IN-PAYLOAD-42",
        "SECRET-IN-MESSAGE-99",
        "sim-secret",
    ]
    for body in bodies:
        for secret in forbidden:
            assert secret not in body


def test_api_submit_is_idempotent_and_names_bad_fields(api: TestClient) -> None:
    payload = invoice_job(unique("nobody"))
    first = api.post("/api/jobs", json=payload)
    assert first.status_code == 201, first.text
    job_id = job_id_for(payload["tenant_id"], payload["idempotency_key"])
    assert first.json()["id"] == job_id and first.json()["created"] is True
    again = api.post("/api/jobs", json=payload)
    assert again.status_code == 200 and again.json()["id"] == job_id
    assert again.json()["created"] is False
    # Once a worker accepted it, the existing ledger row comes back.
    store.accept_job(job_id, payload["tenant_id"], payload["idempotency_key"], "invoice", payload)
    get_redis().delete(f"lp:enq:{job_id}")
    known = api.post("/api/jobs", json=payload)
    # A running worker may already have settled it (unknown tenant → failed).
    assert known.status_code == 200 and known.json()["job"]["state"] in ("received", "failed")

    bad = invoice_job(unique("nobody"))
    bad["invoice"]["lines"][0]["unit_price"] = 12.5
    response = api.post("/api/jobs", json=bad)
    assert response.status_code == 422
    fields = [d["field"] for d in response.json()["detail"]]
    assert fields == ["invoice.lines.0.unit_price"]
    assert "decimal string" in response.json()["detail"][0]["message"]
    not_json = api.post("/api/jobs", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["field"] == "(body)"
    extra = api.post("/api/jobs", json={**invoice_job("t1"), "surprise": 1})
    assert extra.status_code == 422 and extra.json()["detail"][0]["field"] == "surprise"


def test_api_lists_filters_and_paginates(api: TestClient) -> None:
    tenant = make_tenant()
    jobs = [make_job(tenant, "failed", code="mapping_invalid") for _ in range(3)]
    make_job(tenant, "booked")
    listed = api.get("/api/jobs", params={"tenant": tenant, "state": "failed", "per_page": 2})
    body = listed.json()
    assert body["total"] == 3 and len(body["items"]) == 2
    assert body["items"][0]["provider"] == "eaccounting"
    page2 = api.get(
        "/api/jobs", params={"tenant": tenant, "state": "failed", "per_page": 2, "page": 2}
    )
    ids = {j["id"] for j in body["items"]} | {j["id"] for j in page2.json()["items"]}
    assert ids == {j.id for j in jobs}
    key = jobs[0].idempotency_key
    assert [j["id"] for j in api.get("/api/jobs", params={"key": key[-6:]}).json()["items"]] == [
        jobs[0].id
    ]
    today = dt.date.today().isoformat()
    assert api.get("/api/jobs", params={"tenant": tenant, "since": today}).json()["total"] == 4
    assert (
        api.get("/api/jobs", params={"tenant": tenant, "until": "2001-01-01"}).json()["total"] == 0
    )
    bad = api.get("/api/jobs", params={"state": "nonsense"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "state"
    asc = api.get("/api/jobs", params={"tenant": tenant, "sort": "state", "order": "asc"}).json()
    assert [j["state"] for j in asc["items"]] == ["booked", "failed", "failed", "failed"]


def test_api_job_detail_explains_the_error(api: TestClient) -> None:
    job = make_job(unique("nobody"), "failed")
    body = api.get(f"/api/jobs/{job.id}").json()
    assert body["error"]["code"] == "unknown_tenant"
    assert "Unknown tenant" in body["error"]["explanation"]
    assert body["history"][-1]["to_state"] == "failed"
    assert api.get("/api/jobs/does-not-exist").status_code == 404


def test_job_detail_shows_what_the_accounting_system_said(
    api: TestClient, browser_client: Signed
) -> None:
    from worker.providers.base import Rejected

    job = make_job(unique("nobody"), "failed", category="rejected", code="rejected")
    answer = "HTTP 400 ErrorCode 4000: CustomerId does not exist"
    attempt_id, _ = store.begin_attempt(job.id, "test-worker")
    error = Rejected("eAccounting rejected the document", "rejected", answer).as_dict()
    store.end_attempt(attempt_id, "failed", [], error)

    body = api.get(f"/api/jobs/{job.id}").json()
    assert body["attempt_log"][-1]["error"]["original"] == answer
    client, _ = browser_client
    page = client.get(f"/jobs/{job.id}").text
    assert page.count("The accounting system said") == 2  # the job's error and the attempt's
    assert "CustomerId does not exist" in page


def test_actions_follow_the_rules_and_are_audited(api: TestClient, api_key: str) -> None:
    booked = make_job(unique("nobody"), "booked")
    replay = api.post(f"/api/jobs/{booked.id}/replay")
    assert replay.status_code == 409
    assert "booked invoices are immutable" in replay.json()["detail"]
    assert api.post(f"/api/jobs/{booked.id}/cancel").status_code == 409
    received = make_job(unique("nobody"))
    assert "only failed" in api.post(f"/api/jobs/{received.id}/retry").json()["detail"]
    assert api.post("/api/jobs/unknown/retry").status_code == 404

    failed = make_job(unique("nobody"), "failed")
    retried = api.post(f"/api/jobs/{failed.id}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "received"
    # The retried job is on the queue again: a worker may already have moved it on.
    audit = [e for e in store.events_of(failed.id) if e.note == "retry requested"]
    assert len(audit) == 1 and audit[0].actor.startswith("apikey:producer-")

    parked_tenant = make_tenant()
    set_connection(parked_tenant, "needs_reauth", "refresh token revoked")
    parked = make_job(parked_tenant, "failed", code="refresh_token_revoked")
    refused = api.post(f"/api/jobs/{parked.id}/replay")
    assert refused.status_code == 409 and "reconnect it first" in refused.json()["detail"]


def test_page_actions_confirm_then_act_or_refuse(browser_client: Signed, operator: str) -> None:
    client, csrf = browser_client
    booked = make_job(unique("nobody"), "booked")
    confirm = client.get(f"/jobs/{booked.id}/replay")
    assert confirm.status_code == 200 and "Confirm: replay" in confirm.text
    refused = client.post(f"/jobs/{booked.id}/replay", data={"csrf_token": csrf})
    assert refused.status_code == 409
    assert "Replay refused" in refused.text and "credit note" in refused.text
    failed = make_job(unique("nobody"), "failed")
    done = client.post(f"/jobs/{failed.id}/replay", data={"csrf_token": csrf})
    assert done.status_code == 303
    page = client.get(f"/jobs/{failed.id}")
    assert f"Replay: done by {operator}" in page.text
    assert any(e.actor == operator for e in store.events_of(failed.id))


def test_job_page_shows_plain_words_history_attempts_and_masked_payload(
    browser_client: Signed,
) -> None:
    client, _ = browser_client
    tenant = make_tenant()
    job = make_job(tenant)
    attempt_id, _ = store.begin_attempt(job.id, "w1@host")
    calls = [{"method": "POST", "path": "/v2/customerinvoicedrafts", "status": 400, "ms": 83.2}]
    store.end_attempt(
        attempt_id,
        "failed",
        calls,
        {"category": "rejected", "code": "mapping_invalid", "message": "coding 99 missing"},
    )
    fields = [{"field": "invoice.lines.0.vat_rate", "message": "no such VAT code"}]
    store.fail_job(
        job.id, "rejected", "mapping_invalid", "mapping vat.25 points at coding 99", fields
    )
    page = client.get(f"/jobs/{job.id}").text
    assert "The tenant&#39;s mapping points at something that does not exist" in page
    assert "invoice.lines.0.vat_rate: no such VAT code" in page
    assert "mapping vat.25 points at coding 99" in page  # the original, too
    assert "/v2/customerinvoicedrafts" in page and "83.2" in page
    assert "received → <strong>resolving</strong>" not in page
    assert "Nordic Tools AS" in page


def test_bulk_retry_previews_the_count_then_retries(browser_client: Signed, operator: str) -> None:
    client, csrf = browser_client
    code = unique("code").replace("-", "_")
    jobs = [make_job(unique("nobody"), "failed", code=code) for _ in range(3)]
    parked_tenant = make_tenant()
    set_connection(parked_tenant, "needs_reauth", "refresh token revoked")
    make_job(parked_tenant, "failed", code=code)
    preview = client.get("/bulk", params={"error_code": code})
    assert "3 failed jobs would be retried" in preview.text
    assert "1 more would be skipped" in preview.text and "waiting for reconnection" in preview.text
    assert "Confirm: retry 3 jobs" in preview.text
    assert all(store.get_job(j.id).state == "failed" for j in jobs)
    done = client.post("/bulk/retry", data={"csrf_token": csrf, "error_code": code})
    assert done.status_code == 303
    # Re-sent to the queue; a running worker may already have failed them again.
    assert all(any(e.actor == operator for e in store.events_of(j.id)) for j in jobs)
    assert (
        client.post("/bulk/retry", data={"csrf_token": csrf}).status_code == 303
    )  # refused: flash


def test_mapping_put_validates_and_replaces(api: TestClient) -> None:
    tenant = make_tenant()
    ok = api.put(
        f"/api/tenants/{tenant}/mapping", json={"vat.25": "3", "bank_account": 1, "layout": None}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["mapping"] == {"vat.25": "3", "bank_account": 1}
    unused = api.put(f"/api/tenants/{tenant}/mapping", json={"journal": 1})
    assert unused.status_code == 422
    assert unused.json()["detail"][0]["field"] == "journal"
    assert "not used by eaccounting" in unused.json()["detail"][0]["message"]
    bad = api.put(f"/api/tenants/{tenant}/mapping", json={"vat.25": "3", "colour": "blue"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "colour"
    assert "unknown mapping key" in bad.json()["detail"][0]["message"]
    wrong_type = api.put(f"/api/tenants/{tenant}/mapping", json={"vat.25": [1]})
    assert wrong_type.status_code == 422 and wrong_type.json()["detail"][0]["field"].startswith(
        "vat.25"
    )
    assert get_tenant(tenant).mapping == {"vat.25": "3", "bank_account": 1}
    assert api.put("/api/tenants/nobody-here/mapping", json={}).status_code == 404
    body = api.get(f"/api/tenants/{tenant}").json()
    assert body["has_credentials"] is True and "credentials" not in body
    assert body["connect_path"] == f"/connect/eaccounting/{tenant}"


def test_mapping_editor_page_shows_errors_and_saves(browser_client: Signed) -> None:
    client, csrf = browser_client
    tenant = make_tenant()
    bad = client.post(
        f"/tenants/{tenant}/mapping",
        data={"csrf_token": csrf, "mapping": "vat.25 = 3\ncolour = blue\nnonsense"},
    )
    assert bad.status_code == 422
    assert "line 2: unknown mapping key" in bad.text and "line 3" in bad.text
    assert get_tenant(tenant).mapping == {}
    good = client.post(
        f"/tenants/{tenant}/mapping",
        data={"csrf_token": csrf, "mapping": "vat.25.0 = 3\nbank_account = 2"},
    )
    assert good.status_code == 303
    assert get_tenant(tenant).mapping == {"vat.25": "3", "bank_account": "2"}
    unused = client.post(
        f"/tenants/{tenant}/mapping", data={"csrf_token": csrf, "mapping": "journal = 2"}
    )
    assert unused.status_code == 422 and "not used by eaccounting" in unused.text
    assert get_tenant(tenant).mapping == {"vat.25": "3", "bank_account": "2"}
    get_redis().set(
        f"lp:ref:{tenant}:{int(get_redis().get(f'lp:refgen:{tenant}') or 0)}:vat_codes", "[]"
    )
    page = client.get(f"/tenants/{tenant}").text
    assert "vat_codes" in page and "Connect" in page
    assert (
        client.post(f"/tenants/{tenant}/references/refresh", data={"csrf_token": csrf}).status_code
        == 303
    )
    assert "vat_codes" not in client.get(f"/tenants/{tenant}").text


def test_tenants_page_shows_health_and_reconnect_link(browser_client: Signed) -> None:
    client, _ = browser_client
    tenant = make_tenant("economic", "DK")
    set_connection(tenant, "needs_reauth", "grant revoked")
    make_job(tenant, "waiting_for_reauth")
    listing = client.get("/tenants").text
    assert f'href="/connect/economic/{tenant}"' in listing and "grant revoked" in listing
    detail = client.get(f"/tenants/{tenant}").text
    assert "This tenant must reconnect" in detail and "1 job parked" in detail
    overview = client.get("/overview/live").text
    assert tenant in overview


def test_dead_letters_group_by_reason(browser_client: Signed) -> None:
    client, _ = browser_client
    code = unique("weird").replace("-", "_")
    for _ in range(2):
        make_job(unique("nobody"), "failed", category="rejected", code=code)
    page = client.get("/dead-letters").text
    row = page[page.index(code) :]
    assert "The accounting system refused the document" in row
    assert f"/jobs?state=failed&error_code={code}" in row and ">2</a>" in row


def _delivery(tenant: str, status: str, job_id: str | None = None) -> int:
    """A webhook delivery row as the alerts module leaves it (no worker involved)."""
    data: dict[str, Any] = {"tenant_id": tenant, **({"job_id": job_id} if job_id else {})}
    event = "job.failed" if job_id else "tenant.reauth_required"
    with session() as db:
        row = WebhookDelivery(
            event=event,
            url="http://127.0.0.1:9/hooks",
            payload={"id": unique("evt"), "type": event, "created": 0, "data": data},
            status=status,
            attempts=9 if status == "failed" else 1,
            last_status_code=None if status == "delivered" else 503,
            last_error=None if status == "delivered" else "HTTP 503",
        )
        db.add(row)
        db.flush()
        return row.id


def _delivery_status(delivery_id: int) -> str:
    with session() as db:
        row = db.get(WebhookDelivery, delivery_id)
        assert row is not None
        return row.status


def test_dead_letters_page_shows_webhook_deliveries_and_resends(browser_client: Signed) -> None:
    client, csrf = browser_client
    tenant = make_tenant()
    job = make_job(tenant, "failed")
    failed = _delivery(tenant, "failed", job.id)
    delivered = _delivery(tenant, "delivered")
    page = client.get("/dead-letters").text
    section = page[page.index("Webhook deliveries") :]
    [row] = [r for r in section.split("<tr>") if f"/jobs/{job.id}" in r]
    assert "job.failed" in row and f"/tenants/{tenant}" in row
    assert "<td>failed</td>" in row and '<td class="num">9</td>' in row and "HTTP 503" in row
    assert f'action="/webhooks/{failed}/resend"' in row
    assert f'action="/webhooks/{delivered}/resend"' not in section  # nothing to resend

    assert client.post(f"/webhooks/{failed}/resend").status_code == 403  # no CSRF token
    sent = client.post(f"/webhooks/{failed}/resend", data={"csrf_token": csrf})
    assert sent.status_code == 303 and sent.headers["location"] == "/dead-letters#webhooks"
    assert _delivery_status(failed) != "failed"
    assert "queued again by" in client.get("/dead-letters").text
    refused = client.post(f"/webhooks/{delivered}/resend", data={"csrf_token": csrf})
    assert refused.status_code == 303
    assert "was delivered already" in client.get("/dead-letters").text


def test_cli_lists_and_resends_webhook_deliveries() -> None:
    from worker.cli import app

    runner = CliRunner()
    tenant = make_tenant()
    failed, delivered = _delivery(tenant, "failed"), _delivery(tenant, "delivered")
    listed = runner.invoke(app, ["webhooks", "list", "--status", "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert delivered not in rows and {r["status"] for r in rows.values()} == {"failed"}
    assert rows[failed]["tenant_id"] == tenant and rows[failed]["last_error"] == "HTTP 503"
    assert rows[failed]["event"] == "tenant.reauth_required" and rows[failed]["attempts"] == 9
    table = runner.invoke(app, ["webhooks", "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and tenant in table.output and "HTTP 503" in table.output
    resent = runner.invoke(app, ["webhooks", "resend", str(failed)])
    assert resent.exit_code == 0, resent.output
    assert _delivery_status(failed) != "failed"
    assert runner.invoke(app, ["webhooks", "resend", str(delivered)]).exit_code == 1
    assert runner.invoke(app, ["webhooks", "resend", "999999999"]).exit_code == 1


def test_jobs_page_filters_sorts_and_paginates(browser_client: Signed) -> None:
    client, _ = browser_client
    tenant = make_tenant()
    for _ in range(3):
        make_job(tenant, "failed")
    page = client.get("/jobs", params={"tenant": tenant, "state": "failed", "per_page": 2}).text
    assert "3 jobs, page 1 of 2" in page and "older →" in page
    assert client.get("/jobs", params={"since": "garbage", "sort": "evil"}).status_code == 200


def test_metrics_come_from_shared_state(anon: TestClient) -> None:
    tenant = make_tenant()
    job = make_job(tenant)
    attempt_id, _ = store.begin_attempt(job.id, "w")
    calls = [{"method": "POST", "path": "/v2/x", "status": 201, "ms": 120.0}]
    store.end_attempt(attempt_id, "booked", calls, None)
    with session() as db:
        row = db.get(Attempt, attempt_id)
        assert row is not None
        row.ended_at = row.started_at - dt.timedelta(seconds=60)
        folded_until = row.ended_at - dt.timedelta(seconds=1)
    # Calls are folded into Redis counters once; pretend the last fold was before this one.
    get_redis().set(
        "lp:metrics:calls_folded_until", folded_until.replace(tzinfo=dt.UTC).isoformat()
    )
    get_redis().hincrby("lp:stats:token_refreshes", tenant, 2)
    get_redis().hincrby("lp:stats:token_refresh_failures", tenant, 1)
    get_redis().delete("lp:metrics:aggregate")  # counted afresh, not a few seconds ago
    text = anon.get("/metrics").text
    assert 'ledgerpush_jobs{provider="eaccounting",state="received"}' in text
    assert 'ledgerpush_attempts_total{outcome="booked"}' in text
    assert (
        'ledgerpush_provider_calls_total{method="POST",provider="eaccounting",status="201"}' in text
    )
    assert (
        'ledgerpush_provider_call_duration_seconds_bucket{le="0.25",provider="eaccounting"}' in text
    )
    # No tenant ids in label values unless asked for (LEDGERPUSH_METRICS_TENANT_LABELS).
    assert tenant not in text and "tenant=" not in text
    assert "ledgerpush_token_refreshes_total " in text
    assert 'ledgerpush_queue_depth{queue="ledgerpush.invoices"}' in text
    assert "ledgerpush_tenants{" in text


def test_metrics_tenant_labels_only_when_enabled(anon: TestClient, monkeypatch: Any) -> None:
    import worker.web.app as web_app

    tenant = make_tenant()
    get_redis().hincrby("lp:stats:token_refreshes", tenant, 2)
    get_redis().hincrby("lp:stats:token_refresh_failures", tenant, 1)
    labelled = web_app.get_settings().model_copy(update={"metrics_tenant_labels": True})
    monkeypatch.setattr("worker.web.metrics.get_settings", lambda: labelled)
    text = anon.get("/metrics").text
    assert f'ledgerpush_token_refreshes_total{{tenant="{tenant}"}} 2.0' in text
    assert f'ledgerpush_token_refresh_failures_total{{tenant="{tenant}"}} 1.0' in text


def test_a_scrape_serves_the_cached_job_counts_and_refreshes_them_behind(
    anon: TestClient,
) -> None:
    from worker.web import metrics

    tenant = make_tenant()
    get_redis().delete("lp:metrics:aggregate")
    anon.get("/metrics")
    make_job(tenant)
    cached = json.loads(get_redis().get("lp:metrics:aggregate") or "{}")
    cached["at"] -= 60  # as if counted a minute ago
    get_redis().set("lp:metrics:aggregate", json.dumps(cached))

    anon.get("/metrics")  # served from the cache; a fresh count starts in the background

    def recounted() -> bool:
        data = json.loads(get_redis().get("lp:metrics:aggregate") or "{}")
        return bool(data.get("at", 0) > cached["at"] + 30)

    wait_for(recounted, 30)
    assert metrics.cached_aggregate()["jobs"]


def test_openapi_document_and_docs_need_auth(api: TestClient, anon: TestClient) -> None:
    document = api.get("/api/openapi.json").json()
    assert "/api/jobs" in document["paths"]
    assert document["components"]["schemas"]["Job"]["discriminator"]["propertyName"] == "kind"
    assert "swagger-ui" in api.get("/api/docs").text
    assert anon.get("/api/openapi.json").status_code == 401


def test_explain_names_fields_and_falls_back() -> None:
    plain = explain(
        "rejected", "something_new", fields=[{"field": "invoice.due_date", "message": "too early"}]
    )
    assert plain is not None and plain.fields == ("invoice.due_date: too early",)
    assert explain("unsupported", "module_missing: Projects") is not None
    assert "no plain-words" in (explain("alien", "zzz") or plain).text
    assert explain(None, None) is None


def test_cli_users_and_api_keys() -> None:
    from worker.cli import app

    runner = CliRunner()
    name = unique("cli")
    added = runner.invoke(app, ["users", "add", name, "--password-stdin"], input="longpassword\n")
    assert added.exit_code == 0, added.output
    assert (
        runner.invoke(
            app, ["users", "add", name, "--password-stdin"], input="longpassword\n"
        ).exit_code
        == 1
    )
    created = runner.invoke(app, ["apikeys", "create", name])
    assert created.exit_code == 0
    key = created.stdout.strip().splitlines()[-1]
    assert verify_api_key(key) == name
    listed = runner.invoke(app, ["apikeys", "list"])
    assert name in listed.output and key not in listed.output
    assert runner.invoke(app, ["apikeys", "revoke", name]).exit_code == 0
    assert verify_api_key(key) is None
    assert runner.invoke(app, ["apikeys", "revoke", name]).exit_code == 1


@pytest.mark.parametrize("path", ["/api/jobs/x/retry", "/api/tenants/x/mapping"])
def test_session_without_csrf_cannot_change_through_api(browser_client: Signed, path: str) -> None:
    client, _ = browser_client
    method = "PUT" if path.endswith("mapping") else "POST"
    assert client.request(method, path, json={}).status_code == 403


def test_job_page_offers_only_actions_that_can_help(browser_client: Signed) -> None:
    client, _ = browser_client
    tenant = make_tenant()
    invalid = make_job(tenant, "failed", category="invalid", code="invalid_payload")
    page = client.get(f"/jobs/{invalid.id}").text
    assert f"/jobs/{invalid.id}/retry" not in page and f"/jobs/{invalid.id}/replay" not in page
    assert f"/jobs/{invalid.id}/cancel" in page
    rejected = make_job(tenant, "failed", code="mapping_invalid")
    page = client.get(f"/jobs/{rejected.id}").text
    for action in ("retry", "replay", "cancel"):
        assert f"/jobs/{rejected.id}/{action}" in page
    booked = make_job(tenant, "booked")
    page = client.get(f"/jobs/{booked.id}").text
    assert not re.search(rf"/jobs/{booked.id}/(retry|replay|cancel)", page)


def test_retry_all_is_not_offered_where_it_would_retry_nothing(browser_client: Signed) -> None:
    client, _ = browser_client
    tenant = make_tenant()
    make_job(tenant, "failed", category="invalid", code="invalid_payload")
    page = client.get(f"/tenants/{tenant}").text
    assert f'href="/bulk?tenant={tenant}"' not in page
    assert "nothing a retry would help" in page and "invalid payloads" in page
    letters = client.get("/dead-letters").text
    assert 'href="/bulk?error_code=invalid_payload"' not in letters
    assert "Nothing to retry" in letters


def test_mapping_editor_lists_only_the_providers_keys(browser_client: Signed) -> None:
    client, _ = browser_client
    keys = re.compile(r'<span id="mapping-keys">(.*?)</span>', re.S)
    ea = keys.search(client.get(f"/tenants/{make_tenant()}").text)
    ec = keys.search(client.get(f"/tenants/{make_tenant('economic', 'DK')}").text)
    assert ea and ec
    assert "bank_account" in ea.group(1) and "journal" not in ea.group(1)
    assert "account.&lt;rate&gt;" not in ea.group(1)
    assert "journal" in ec.group(1) and "bank_account" not in ec.group(1)


def test_sign_in_keeps_the_query_string(anon: TestClient) -> None:
    response = anon.get("/jobs?state=failed&tenant=x", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/jobs%3Fstate%3Dfailed%26tenant%3Dx"
    assert (
        'name="next" value="/jobs?state=failed&amp;tenant=x"'
        in anon.get(response.headers["location"]).text
    )


def test_a_vismanet_tenant_shows_on_the_pages_and_in_metrics_labels(
    browser_client: Signed, anon: TestClient
) -> None:
    client, _ = browser_client
    tenant = make_tenant("vismanet", "NO", mapping={"payment_method": "BANK"})
    set_connection(tenant, "needs_reauth", "approval withdrawn")
    make_job(tenant, "waiting_for_reauth")
    job = make_job(tenant)
    attempt_id, _ = store.begin_attempt(job.id, "w")
    calls = [{"method": "POST", "path": "/v2/customerinvoice", "status": 201, "ms": 80.0}]
    store.end_attempt(attempt_id, "booked", calls, None)
    with session() as db:
        row = db.get(Attempt, attempt_id)
        assert row is not None
        row.ended_at = row.started_at - dt.timedelta(seconds=60)
        folded_until = row.ended_at - dt.timedelta(seconds=1)
    get_redis().set(
        "lp:metrics:calls_folded_until", folded_until.replace(tzinfo=dt.UTC).isoformat()
    )
    get_redis().delete("lp:metrics:aggregate")

    listing = client.get("/tenants").text
    row = listing[listing.index(tenant) :]
    assert "vismanet" in row[: row.index("</tr>")]
    detail = client.get(f"/tenants/{tenant}").text
    assert "This tenant must reconnect" in detail and "1 job parked" in detail
    # Visma.net has no consent page: the page says how it is connected instead.
    assert "consent page" not in detail and "--tenant-id" in detail
    keys = re.search(r'<span id="mapping-keys">(.*?)</span>', detail, re.S)
    assert keys and "payment_method" in keys.group(1) and "journal" not in keys.group(1)
    assert tenant in client.get("/overview/live").text
    assert client.get(f"/jobs?tenant={tenant}").status_code == 200

    text = anon.get("/metrics").text
    assert 'ledgerpush_jobs{provider="vismanet",state="received"}' in text
    assert 'ledgerpush_provider_calls_total{method="POST",provider="vismanet",status="201"}' in text
    assert 'ledgerpush_tenants{connection_state="needs_reauth",provider="vismanet"}' in text
