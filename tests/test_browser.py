"""The dashboard in a real headless Chromium (Debian's, no browser download) against a
`ledgerpush web` process, a real worker process and the eAccounting simulator.

Failing jobs are made the way they fail in production: a tenant whose mapping pins a
VAT coding that does not exist (the provider rejects it: `mapping_invalid`), and a
tenant whose refresh token the simulator revoked (the job is parked, the tenant needs
re-authorization).

Screenshots go to test-artifacts/; docs/screenshots/ (shown in the README) is written
when it has none yet or when LEDGERPUSH_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ROOT,
    WorkerProcess,
    connect_ea_tenant,
    invoice_job,
    needs,
    unique,
    wait_for,
)
from worker.ledger.store import find_job
from worker.web.accounts import add_user, create_api_key

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "browser-test-password"

pytestmark = [
    pytest.mark.browser,
    needs(Path(CHROMIUM).exists(), f"Debian's chromium at {CHROMIUM} (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def web_url(base_env: dict[str, str]) -> Iterator[str]:
    """`ledgerpush web` in its own process, with the OAuth redirect pointing at it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **base_env,
        "LEDGERPUSH_EACCOUNTING_REDIRECT_URI": f"{url}/connect/eaccounting/callback",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "web.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "web", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: _healthy(url) or process.poll() is not None, 90)
            assert process.poll() is None, (ARTIFACTS / "web.log").read_text()[-3000:]
            yield url
        finally:
            process.terminate()
            process.wait(10)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser: Any, web_url: str) -> Iterator[Any]:
    """A signed-in page (through the sign-in form)."""
    operator = unique("operator")
    add_user(operator, PASSWORD, role="admin")  # fixes mappings and reconnects, too
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.goto(f"{web_url}/jobs")
    assert "/login" in tab.url
    tab.fill("#username", operator)
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{web_url}/jobs")
    yield tab
    context.close()


def _submit(web_url: str, key: str, job: dict[str, Any]) -> str:
    response = httpx.post(
        f"{web_url}/api/jobs", json=job, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _invoice_for_customer(tenant: str, number: int) -> dict[str, Any]:
    """Distinct customers, so the overview shows a little variety."""
    job = invoice_job(tenant)
    customer = dict(
        job["invoice"]["customer"], external_id=f"c-{number}", name=f"Kunde {number} AS"
    )
    return invoice_job(tenant, customer=customer)


def _settled(job_id: str, *states: str) -> Any:
    def check() -> Any:
        job = find_job(job_id)
        return job if job is not None and job.state in states else None

    return wait_for(check, 45)


def _screenshot(tab: Any, name: str) -> None:
    target = ARTIFACTS / name
    tab.screenshot(path=str(target), full_page=True)
    if name not in ("overview.png", "job.png"):
        return
    if os.environ.get("LEDGERPUSH_UPDATE_SCREENSHOTS") == "1" or not (SCREENSHOTS / name).exists():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, SCREENSHOTS / name)


def test_operator_finds_fixes_and_retries_a_failed_job(
    page: Any, web_url: str, session_worker: WorkerProcess, ea_sim: Any
) -> None:
    key = create_api_key(unique("browser-producer"))
    healthy = connect_ea_tenant("NO")
    broken = connect_ea_tenant("NO", **{"vat.25": "999999"})
    for n in range(3):
        _settled(_submit(web_url, key, _invoice_for_customer(healthy, n)), "booked")
    _submit(web_url, key, invoice_job(unique("nobody")))  # an unknown tenant: a dead letter
    failing = _submit(web_url, key, invoice_job(broken, unique("inv-broken")))
    job = _settled(failing, "failed", "booked")
    assert job.error_code == "mapping_invalid", (job.state, job.error_code, job.error_message)

    # The overview updates itself (htmx polling) without reloading the page.
    page.goto(f"{web_url}/")
    page.evaluate("window.__stillHere = true")
    before = page.inner_text("#updated")
    page.wait_for_function(
        "before => document.querySelector('#updated').innerText !== before",
        arg=before,
        timeout=12_000,
    )
    assert page.evaluate("window.__stillHere") is True
    assert int(page.inner_text("#booked-hour")) >= 3
    _screenshot(page, "overview.png")

    # Find the failed job by filter and open it.
    page.click("header nav >> text=Jobs")
    page.select_option("select[name=tenant]", broken)
    page.select_option("select[name=state]", "failed")
    page.click("form.filters button[type=submit]")
    assert "1 job," in page.inner_text("main")
    _screenshot(page, "jobs.png")
    page.click(f"#jobs a.mono >> text={job.idempotency_key}")
    page.wait_for_url(f"{web_url}/jobs/{failing}")
    assert "mapping points at something that does not exist" in page.inner_text("#error h3")
    assert "coding 999999" in page.inner_text("#error .original")
    _screenshot(page, "job.png")

    # Fix the tenant's mapping, retry, see it booked.
    page.click(f"dd a[href='/tenants/{broken}']")
    assert "vat.25 = 999999" in page.input_value("#mapping")
    page.fill("#mapping", "vat.25 = 999999\ncolour = blue")
    page.click("#save-mapping")
    assert "unknown mapping key 'colour'" in page.inner_text("#mapping-errors")
    _screenshot(page, "tenant-mapping-error.png")
    page.fill("#mapping", "")
    page.click("#save-mapping")
    assert "Mapping saved" in page.inner_text(".flash")
    page.goto(f"{web_url}/jobs/{failing}")
    page.click("text=Retry now…")
    page.click("#confirm")
    page.wait_for_url(f"{web_url}/jobs/{failing}")
    assert "Retry now: done by" in page.inner_text(".flash")
    page.wait_for_selector("h1 .badge.s-booked", timeout=30_000)  # the page reloads itself
    assert "retry requested" in page.inner_text("#history")
    assert len(ea_sim.state_dump()[broken]["invoices"]) == 1


def test_operator_reconnects_a_tenant_that_needs_reauthorization(
    page: Any, web_url: str, session_worker: WorkerProcess, ea_sim: Any
) -> None:
    key = create_api_key(unique("browser-producer"))
    tenant = connect_ea_tenant("NO")
    ea_sim.revoke_refresh_tokens(tenant)
    ea_sim.expire_access_tokens(tenant)
    parked = _submit(web_url, key, invoice_job(tenant))
    _settled(parked, "waiting_for_reauth")

    page.goto(f"{web_url}/tenants")
    row = page.locator("#tenants tr", has_text=tenant)
    _screenshot(page, "tenants.png")
    assert "needs reauth" in row.inner_text()
    row.locator(f"a[href='/tenants/{tenant}']").click()
    assert "This tenant must reconnect" in page.inner_text("#reauth")
    assert page.inner_text("#parked") == "1"
    _screenshot(page, "tenant-reauth.png")
    page.click("#reconnect")
    # The simulated Visma consent page: choose the company, allow.
    page.check(f"input[name=company_id][value='{tenant}']")
    page.click("button[value=allow]")
    page.wait_for_url(f"{web_url}/connect/eaccounting/callback*")
    assert "is connected" in page.inner_text("body")
    _settled(parked, "booked")
    page.goto(f"{web_url}/tenants/{tenant}")
    assert "connected" in page.inner_text("h1")
    assert page.locator("#reauth").count() == 0
    page.goto(f"{web_url}/dead-letters")
    _screenshot(page, "dead-letters.png")


def test_api_docs_render_offline(page: Any, web_url: str) -> None:
    """Swagger UI is served from the app itself (no CDN) and allowed by its CSP."""
    page.goto(f"{web_url}/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "ledgerpush API" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock-summary-path", has_text="/api/jobs").count() >= 2


def test_reconnect_with_another_company_is_refused_and_the_operator_rebinds(
    page: Any, web_url: str, session_worker: WorkerProcess, ea_sim: Any
) -> None:
    key = create_api_key(unique("browser-producer"))
    tenant = connect_ea_tenant("NO")
    _settled(_submit(web_url, key, invoice_job(tenant)), "booked")  # binds the tenant
    other = unique("other-company")
    ea_sim.add_company(other, "NO")
    ea_sim.revoke_refresh_tokens(tenant)
    ea_sim.expire_access_tokens(tenant)
    parked = _submit(web_url, key, invoice_job(tenant))
    _settled(parked, "waiting_for_reauth")

    page.goto(f"{web_url}/tenants/{tenant}")
    assert f"id {tenant})" in page.inner_text("#bound-company")
    page.click("#reconnect")
    page.check(f"input[name=company_id][value='{other}']")  # the customer picks another
    page.click("button[value=allow]")
    page.wait_for_url(f"{web_url}/connect/eaccounting/callback*")
    refusal = page.inner_text("#wrong-company")
    assert f"This link is for {tenant}, which books into" in refusal
    assert f"id {tenant})" in refusal and "You picked" in refusal and f"id {other})" in refusal
    _screenshot(page, "connect-wrong-company.png")
    assert find_job(parked).state == "waiting_for_reauth"

    page.goto(f"{web_url}/tenants/{tenant}")
    assert f"id {other})" in page.inner_text("#refused-company")
    page.click("#rebind")
    assert f"id {tenant})" in page.inner_text("#rebind-from")
    assert f"id {other})" in page.inner_text("#rebind-to")
    page.click("#confirm")
    page.wait_for_url(f"{web_url}/tenants/{tenant}")
    assert "Moved to" in page.inner_text(".flash")
    assert f"id {other})" in page.inner_text("#bound-company")
    assert "rebound" in page.inner_text("#tenant-events")
    page.click("#reconnect")
    page.check(f"input[name=company_id][value='{other}']")
    page.click("button[value=allow]")
    page.wait_for_url(f"{web_url}/connect/eaccounting/callback*")
    assert "is connected to" in page.inner_text("body")
    _settled(parked, "booked")
    assert len(ea_sim.state_dump()[other]["invoices"]) == 1


def _parked_job_with_an_earlier_error(tenant: str) -> str:
    """A job parked for re-authorization that still carries the error of an earlier
    attempt (it waited for its invoice before the tenant's consent broke)."""
    from worker.jobs import job_id_for
    from worker.ledger import store
    from worker.tenancy.tenants import set_connection

    key = unique("inv-parked")
    job_id = job_id_for(tenant, key)
    store.accept_job(job_id, tenant, key, "invoice", invoice_job(tenant, key))
    store.transition(
        job_id, "retry_scheduled", error_category="not_ready", error_code="invoice_not_booked",
        error_message="invoice 'x' is not booked yet (received)",
    )  # fmt: skip
    set_connection(tenant, "needs_reauth", "refresh token revoked")
    store.transition(job_id, "waiting_for_reauth", note="tenant needs re-authorization")
    return job_id


def test_parked_job_page_says_the_tenant_must_reconnect(page: Any, web_url: str) -> None:
    tenant = connect_ea_tenant("NO")
    job_id = _parked_job_with_an_earlier_error(tenant)

    page.goto(f"{web_url}/jobs/{job_id}")

    assert "must reconnect" in page.inner_text("#reauth")
    assert "Waiting for the invoice" not in page.inner_text("main")
    assert "The tenant must reconnect" in page.inner_text("#error h3")
    link = page.input_value("#connect-link")
    assert link.startswith("http") and "state=" in link
    assert page.locator("#copy-connect-link").is_visible()
    _screenshot(page, "job-parked.png")
    page.click("#tenant-link")
    page.wait_for_url(f"{web_url}/tenants/{tenant}")


def test_booked_job_page_offers_no_destructive_buttons(page: Any, web_url: str) -> None:
    from worker.jobs import job_id_for
    from worker.ledger import store

    tenant = connect_ea_tenant("NO")
    key = unique("inv-booked")
    job_id = job_id_for(tenant, key)
    store.accept_job(job_id, tenant, key, "invoice", invoice_job(tenant, key))
    store.transition(job_id, "booked", remote={"invoice_id": "remote-1"})

    page.goto(f"{web_url}/jobs/{job_id}")

    assert page.locator("#actions a, #actions button").count() == 0
    for label in ("Retry now…", "Replay…", "Cancel…"):
        assert page.get_by_role("link", name=label).count() == 0
        assert page.get_by_role("button", name=label).count() == 0
    assert "credit note" in page.inner_text("#no-actions")


def test_copy_button_copies_the_tenants_connect_link(browser: Any, page: Any, web_url: str) -> None:
    tenant = connect_ea_tenant("NO")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web_url)
    page.goto(f"{web_url}/tenants/{tenant}")
    link = page.input_value("#connect-link")
    assert link.startswith("http") and "state=" in link

    page.click("#copy-connect-link")

    page.wait_for_function("document.querySelector('#copy-connect-link').innerText === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == link


def test_sign_in_returns_to_the_page_and_query_asked_for(browser: Any, web_url: str) -> None:
    operator = unique("operator")
    add_user(operator, PASSWORD)
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        tab.goto(f"{web_url}/jobs?state=failed")
        assert "/login" in tab.url
        tab.fill("#username", operator)
        tab.fill("#password", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{web_url}/jobs?state=failed")
        assert tab.locator("select[name=state]").input_value() == "failed"
    finally:
        context.close()


def test_operator_fixes_and_reinjects_a_poison_message(
    page: Any, web_url: str, session_worker: WorkerProcess
) -> None:
    import json

    from worker.jobs import job_id_for
    from worker.transport import poison
    from worker.transport.app import INVOICES_QUEUE
    from worker.transport.redis_client import get_redis

    tenant = connect_ea_tenant("NO")
    job = invoice_job(tenant)
    marker = unique("poison")
    # A job pushed without its Celery envelope, and with a field the contract does not know.
    get_redis().lpush(INVOICES_QUEUE, json.dumps({**job, "colour": marker}))
    entry = wait_for(
        lambda: next((e for e in poison.entries(200) if marker.encode() in e.raw), None), 30
    )

    page.goto(f"{web_url}/dead-letters")
    row = page.locator("#poison-list tr", has_text=entry.queue).filter(has_text="wrong_envelope")
    assert row.count() >= 1
    page.click(f"a[href='/poison/{entry.id}']")
    page.wait_for_url(f"{web_url}/poison/{entry.id}")
    assert page.get_attribute("#download", "href") == f"/poison/{entry.id}/raw"
    assert marker in page.input_value("#fixed")  # the job, ready to be fixed
    page.click("#reinject-button")
    assert "colour" in page.inner_text("#refusal")  # the contract names the field
    page.fill("#fixed", json.dumps(job, indent=2))
    page.click("#reinject-button")
    job_id = job_id_for(tenant, job["idempotency_key"])
    page.wait_for_url(f"{web_url}/jobs/{job_id}")
    assert _settled(job_id, "booked", "failed").state == "booked"


def test_disable_and_enable_a_tenant_from_its_page(page: Any, web_url: str) -> None:
    from worker.tenancy.tenants import get_tenant

    tenant = connect_ea_tenant("NO")
    page.goto(f"{web_url}/tenants/{tenant}")

    page.click("#disable")
    assert "its jobs wait" in page.inner_text("#action-text")
    assert get_tenant(tenant).connection_state == "connected"  # nothing until confirmed
    page.click("#confirm")
    page.wait_for_url(f"{web_url}/tenants/{tenant}")

    assert "disabled" in page.inner_text(".flash")
    assert "is disabled" in page.inner_text("#disabled-box")
    assert "disabled" in page.inner_text("#tenant-events")
    page.click("#enable")
    page.click("#confirm")
    page.wait_for_url(f"{web_url}/tenants/{tenant}")
    assert get_tenant(tenant).connection_state == "connected"
    assert "enabled" in page.inner_text("#tenant-events")
    assert page.locator("#disable").is_visible()


def test_test_send_button_shows_the_endpoints_answer(page: Any, web_url: str) -> None:
    """The receiver checks the post's signature with the `standardwebhooks` library."""
    import re

    from tests.webhook_receiver import Receiver
    from worker.ops import webhooks

    receiver = Receiver().start()
    try:
        endpoint, secret = webhooks.add_endpoint(receiver.url, "job.booked", unique("t"))
        receiver.secrets.append(secret)
        page.goto(f"{web_url}/webhooks")
        page.click(f"#test-{endpoint.id}")
        page.wait_for_url(f"{web_url}/webhooks#endpoint-{endpoint.id}")
        assert re.search(r"HTTP 200 in \d+ ms", page.inner_text(".flash"))
        [hook] = receiver.accepted
        assert hook.body["type"] == "webhook.test" and receiver.unverified == 0
        assert secret not in page.content()
    finally:
        receiver.stop()
