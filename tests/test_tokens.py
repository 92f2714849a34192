"""Tokens and tenant connections: single-flight refresh under a storm, transient token
endpoint failures, a rotation lost by a dead worker, a second 401, proactive refresh,
and the connect flow's `state`. Real worker processes, Redis, the simulators over HTTP."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.conftest import connect_ea_tenant, connect_ec_tenant, invoice_job, unique, wait_for
from tests.connection_support import (
    CallbackServer,
    Fleet,
    callback_server,
    ea_config,
    fleet,
    refreshes,
    settle,
    settle_all,
    stays,
)
from worker.auth.state import StateRefused, consume_state, make_state
from worker.auth.tokens import REFRESH_FAILURES, refresh_single_flight
from worker.ledger.store import attempts_of, find_job
from worker.providers.eaccounting import auth as eaccounting
from worker.providers.eaccounting.auth import EAccountingAuth
from worker.providers.eaccounting.settings import provider_settings as eaccounting_settings
from worker.providers.economic.settings import provider_settings as economic_settings
from worker.settings import get_settings
from worker.tenancy.tenants import credentials_of, get_tenant, store_credentials
from worker.transport.producer import enqueue
from worker.transport.redis_client import get_redis


@pytest.fixture(scope="module")
def workers(base_env: dict[str, str]) -> Iterator[Fleet]:
    with fleet(base_env, count=2, concurrency=16) as started:
        yield started


@pytest.fixture(scope="module")
def callback(workers: Fleet) -> Iterator[CallbackServer]:
    with callback_server(workers.receiver.hook_url) as server:
        yield server


def _statuses(sim: Any) -> Counter[str]:
    return Counter(sim.log.snapshot()["by_status"])


@contextlib.contextmanager
def refresh_lock_held(tenant_id: str) -> Iterator[None]:
    """Hold the tenant's refresh lock (the one every worker takes), so that jobs pile up
    behind it: a barrier that makes them all meet the expired token at the same moment."""
    lock = get_redis().lock(f"lp:refresh:{tenant_id}", timeout=60)
    assert lock.acquire(blocking=False)
    try:
        yield
    finally:
        lock.release()


def _running_task_ids() -> set[str]:
    """Ids of the tasks the workers are executing right now (Celery's remote control)."""
    from worker.transport.app import app

    active = app.control.inspect(timeout=1.0).active() or {}
    return {task["id"] for tasks in active.values() for task in tasks}


def _set_expiry(tenant_id: str, expires_at: float) -> None:
    credentials = credentials_of(get_tenant(tenant_id))
    store_credentials(tenant_id, {**credentials, "expires_at": expires_at})


def _refresh_directly(refresh_token: str) -> dict[str, Any]:
    """What a worker that dies right after the token endpoint answered has done."""
    settings = eaccounting_settings()
    response = httpx.post(
        f"{settings.identity_url}/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(settings.client_id, settings.client_secret.get_secret_value()),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@contextlib.contextmanager
def company_removed(sim: Any, company: str) -> Iterator[None]:
    """The user lost access to the company: tokens and refresh still work at the identity
    server, but the API refuses every token for it with a 401."""
    with sim.lock:
        saved = sim.companies.pop(company)
    try:
        yield
    finally:
        with sim.lock:
            sim.companies[company] = saved


# ---------------------------------------------------------------- single-flight refresh


def test_refresh_storm_is_one_refresh_for_32_jobs_on_two_workers(
    workers: Fleet, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(tenant, "warm-up"))).state == "booked"
    with ea_config(refresh_mode="one_time", refresh_grace_seconds=0):
        ea_sim.expire_access_tokens(tenant)
        before, unauthorized = refreshes(tenant), _statuses(ea_sim)["401"]
        with refresh_lock_held(tenant):
            ids = [enqueue(invoice_job(tenant)) for _ in range(32)]
            # Every one of the 32 has sent its first call with the expired token and got a
            # 401; all now wait for the lock at the same moment.
            wait_for(lambda: _statuses(ea_sim)["401"] - unauthorized >= 32, 30)
        jobs = settle_all(ids, 60)
    assert [j.state for j in jobs] == ["booked"] * 32, {(j.state, j.error_code) for j in jobs}
    assert refreshes(tenant) - before == 1
    assert _statuses(ea_sim)["401"] - unauthorized == 32  # each replayed once, with success
    assert get_tenant(tenant).connection_state == "connected"
    by_worker = Counter(a.worker for j in jobs for a in attempts_of(j.id))
    assert len(by_worker) == 2 and sum(by_worker.values()) == 32, by_worker
    assert len(ea_sim.state_dump()[tenant]["invoices"]) == 33


def test_invalid_grant_after_another_worker_rotated_is_not_a_revocation(ea_sim: Any) -> None:
    """A worker whose lock expired mid-refresh: another one rotated the one-time token and
    stored the new one; our exchange of the old token fails with invalid_grant. We must
    recognise that (re-read, compare) and use the stored token, not report a revocation."""
    tenant = connect_ea_tenant("NO")
    with ea_config(refresh_mode="one_time", refresh_grace_seconds=0):
        seen = credentials_of(get_tenant(tenant))

        def racing_refresher(refresh_token: str) -> dict[str, Any]:
            store_credentials(tenant, {**seen, **eaccounting.refresh(refresh_token)})
            return eaccounting.refresh(refresh_token)

        result = refresh_single_flight(tenant, seen, racing_refresher)
    stored = credentials_of(get_tenant(tenant))
    assert result["access_token"] == stored["access_token"] != seen["access_token"]
    assert get_tenant(tenant).connection_state == "connected"
    assert refreshes(tenant) == 2
    assert get_redis().hget(REFRESH_FAILURES, tenant) is None  # a lost race, not a failure


# ---------------------------------------------------------------- transient failures


def test_token_endpoint_outage_is_retried_and_the_tenant_stays_connected(
    workers: Fleet, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    _set_expiry(tenant, time.time() - 5)  # known expired: the job refreshes first
    codes: list[str] = []

    def failed_attempts_with(code: str) -> bool:
        job = find_job(job_id)
        errors = [a.error for a in attempts_of(job_id)] if job else []
        codes[:] = [str(e.get("code")) for e in errors if e]
        return code in codes

    ea_sim.faults.update({"error_rate": 1.0})  # the token endpoint answers 503
    try:
        job_id = enqueue(invoice_job(tenant))
        wait_for(lambda: failed_attempts_with("token_endpoint_error"), 20)
        assert get_tenant(tenant).connection_state == "connected"
        ea_sim.faults.update({"error_rate": 0.0, "drop_rate": 1.0})  # connection dropped
        wait_for(lambda: failed_attempts_with("token_endpoint_unreachable"), 20)
        assert get_tenant(tenant).connection_state == "connected"
    finally:
        ea_sim.faults.update({"error_rate": 0.0, "drop_rate": 0.0})
    job = settle(job_id)
    assert job.state == "booked", (job.error_code, job.error_message)
    assert set(codes) <= {"token_endpoint_error", "token_endpoint_unreachable"}, codes
    tenant_row = get_tenant(tenant)
    assert (tenant_row.connection_state, tenant_row.connection_reason) == ("connected", None)
    assert not workers.receiver.hooks("tenant.reauth_required", tenant)


# ---------------------------------------------------------------- a rotation lost in a crash


def test_rotation_lost_by_a_dead_worker_is_survived_within_the_grace_period(
    workers: Fleet, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    with ea_config(refresh_mode="one_time", refresh_grace_seconds=60):
        stored = credentials_of(get_tenant(tenant))["refresh_token"]
        lost = _refresh_directly(stored)["refresh_token"]
        ea_sim.expire_access_tokens(tenant)
        job = settle(enqueue(invoice_job(tenant)))
    assert job.state == "booked", (job.error_code, job.error_message)
    assert get_tenant(tenant).connection_state == "connected"
    now_stored = credentials_of(get_tenant(tenant))["refresh_token"]
    assert now_stored not in (stored, lost)  # the successor we got was committed


def test_rotation_lost_without_grace_is_reported_not_silent(workers: Fleet, ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    with ea_config(refresh_mode="one_time", refresh_grace_seconds=0):
        _refresh_directly(credentials_of(get_tenant(tenant))["refresh_token"])
        ea_sim.expire_access_tokens(tenant)
        job = settle(enqueue(invoice_job(tenant)))
    assert (job.state, job.error_code) == ("waiting_for_reauth", "refresh_token_revoked")
    row = get_tenant(tenant)
    assert row.connection_state == "needs_reauth"
    assert "invalid_grant" in (row.connection_reason or "")
    assert "already been used" in (row.connection_reason or "")
    wait_for(lambda: workers.receiver.hooks("tenant.reauth_required", tenant), 20)
    wait_for(lambda: workers.receiver.sentry_events(tenant), 20)
    assert len(workers.receiver.hooks("tenant.reauth_required", tenant)) == 1
    assert len(workers.receiver.sentry_events(tenant)) == 1
    assert get_redis().hget(REFRESH_FAILURES, tenant) == b"1"  # ledgerpush_token_refresh_failures


# ---------------------------------------------------------------- a 401 that is not a loop


def test_second_401_after_a_fresh_token_parks_the_tenant_without_looping(
    workers: Fleet, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    ea_sim.expire_access_tokens(tenant)
    with company_removed(ea_sim, tenant):
        job = settle(enqueue(invoice_job(tenant)))
    assert (job.state, job.error_code) == ("waiting_for_reauth", "token_refused")
    assert refreshes(tenant) == 1
    # The job is parked before its attempt is closed with the calls it made.
    [attempt] = wait_for(lambda: [a for a in attempts_of(job.id) if a.ended_at is not None])
    assert [c["status"] for c in attempt.calls] == [401]  # one call: 401, refresh, replay, 401
    assert get_tenant(tenant).connection_state == "needs_reauth"


@pytest.mark.parametrize("known_expired", [False, True])
def test_auth_flow_refreshes_at_most_once_per_request(ea_sim: Any, known_expired: bool) -> None:
    tenant = connect_ea_tenant("NO")
    ea_sim.expire_access_tokens(tenant)
    if known_expired:
        _set_expiry(tenant, time.time() - 1)
    sent: list[str] = []
    auth = EAccountingAuth(tenant, credentials_of(get_tenant(tenant)))
    hooks = {"request": [lambda request: sent.append(request.url.path)]}
    with company_removed(ea_sim, tenant), httpx.Client(event_hooks=hooks) as client:
        response = client.get(f"{eaccounting_settings().api_url}/companysettings", auth=auth)
    assert response.status_code == 401
    # Known expired: refresh, send, 401 - final. Else: send, 401, refresh, replay, 401.
    assert sent == ["/v2/companysettings"] * (1 if known_expired else 2)
    assert refreshes(tenant) == 1


# ---------------------------------------------------------------- proactive refresh


def test_spread_is_stable_inside_the_time_left_and_spread_out() -> None:
    from worker.auth.proactive import SAFETY_MARGIN, spread_delay

    ids = [f"tenant-{n}" for n in range(3000)]
    delays = [spread_delay(t, 600) for t in ids]
    assert all(0 <= d <= 600 - SAFETY_MARGIN for d in delays)
    assert delays == [spread_delay(t, 600) for t in ids]  # stable per tenant
    per_second = Counter(int(d) for d in delays)
    assert len(per_second) > 450 and max(per_second.values()) <= 20, per_second.most_common(3)
    assert spread_delay("late", SAFETY_MARGIN - 1) == 0  # no room left: now


def test_beat_refreshes_tokens_inside_the_window_once_each(workers: Fleet, ea_sim: Any) -> None:
    from worker.auth.proactive import (
        SCHEDULED_GRACE,
        expiring_tenants,
        refresh_expiring_tokens,
        schedule_refreshes,
        scheduled_key,
    )
    from worker.transport.app import app

    entry = app.conf.beat_schedule["refresh-expiring-tokens"]  # what `ledgerpush beat` runs
    assert entry["task"] == "ledgerpush.maintenance.refresh_tokens" and entry["schedule"] <= 60

    soon = [connect_ea_tenant("NO") for _ in range(3)]
    later = connect_ea_tenant("NO")
    for offset, tenant in enumerate(soon):
        _set_expiry(tenant, time.time() + 61 + offset)  # little room: runs within seconds
    _set_expiry(later, time.time() + 3000)
    version = get_tenant(later).credentials_version
    with pytest.MonkeyPatch.context() as patch:
        # Only tokens within 90 s, so tenants of other tests are left alone.
        patch.setattr(get_settings(), "refresh_window_seconds", 90)
        found = dict(expiring_tenants(90))
        assert set(soon) <= set(found) and later not in found
        assert all(60 < found[t] <= 64 for t in soon), found
        first_tick = schedule_refreshes(90)
        assert set(soon) <= set(first_tick) and later not in first_tick
        # The next ticks, a minute apart, find the same tokens still inside the window:
        # each tenant's refresh is already scheduled, so nothing more is.
        refresh_expiring_tokens()
        assert not set(soon) & set(schedule_refreshes(90))
        marked = [get_redis().ttl(scheduled_key(t)) for t in soon]
        assert all(SCHEDULED_GRACE - 2 <= ttl <= SCHEDULED_GRACE + 5 for ttl in marked), marked

    def refreshed(tenant: str) -> bool:
        return float(credentials_of(get_tenant(tenant))["expires_at"]) > time.time() + 3000

    wait_for(lambda: all(refreshed(t) for t in soon), 20)
    assert [refreshes(t) for t in soon] == [1, 1, 1]
    assert refreshes(later) == 0 and get_tenant(later).credentials_version == version


def test_proactive_and_job_refresh_of_one_tenant_are_one_refresh(
    workers: Fleet, ea_sim: Any
) -> None:
    from tasks.maintenance import refresh_tenant_token

    tenant = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(tenant, "warm-up"))).state == "booked"
    _set_expiry(tenant, time.time() + 120)  # inside the window, not yet expired
    with ea_config(refresh_mode="one_time", refresh_grace_seconds=0):
        ea_sim.expire_access_tokens(tenant)
        unauthorized = _statuses(ea_sim)["401"]
        with refresh_lock_held(tenant):
            ids = [enqueue(invoice_job(tenant)) for _ in range(4)]
            proactive = {refresh_tenant_token.apply_async((tenant,)).id for _ in range(2)}
            wait_for(lambda: _statuses(ea_sim)["401"] - unauthorized >= 4, 20)
            # Both proactive tasks are running, so they wait on the lock held here too: all
            # six meet at its release.
            wait_for(lambda: proactive <= _running_task_ids(), 20, interval=0.2)
        jobs = settle_all(ids, 30)
        assert stays(lambda: refreshes(tenant) <= 1, 1.0)
    assert [j.state for j in jobs] == ["booked"] * 4
    assert refreshes(tenant) == 1
    assert get_tenant(tenant).connection_state == "connected"


def test_proactive_refresh_of_a_revoked_tenant_parks_it(workers: Fleet, ea_sim: Any) -> None:
    from tasks.maintenance import refresh_tenant_token

    tenant = connect_ea_tenant("NO")
    ea_sim.revoke_refresh_tokens(tenant)
    _set_expiry(tenant, time.time() + 120)
    refresh_tenant_token.apply_async((tenant,))
    wait_for(lambda: get_tenant(tenant).connection_state == "needs_reauth", 20)
    assert "invalid_grant" in (get_tenant(tenant).connection_reason or "")
    wait_for(lambda: workers.receiver.hooks("tenant.reauth_required", tenant), 20)
    refresh_tenant_token.apply_async((tenant,))  # another tick: no second refresh, no alert
    assert stays(lambda: refreshes(tenant) == 1, 1.5)
    assert len(workers.receiver.hooks("tenant.reauth_required", tenant)) == 1


# ---------------------------------------------------------------- connect flow and state


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_connect_url_command_prints_the_authorize_link() -> None:
    from typer.testing import CliRunner

    from worker.cli import app

    tenant = connect_ea_tenant("NO")
    result = CliRunner().invoke(app, ["tenants", "connect-url", tenant])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    settings = eaccounting_settings()
    assert url.startswith(f"{settings.identity_url}/connect/authorize?")
    query = _query(url)
    assert query["scope"].split() == [
        "ea:api",
        "offline_access",
        "ea:sales",
        "ea:accounting_readonly",
        "ea:purchase_readonly",
    ]
    assert query["prompt"] == "select_account"
    assert query["acr_values"].startswith("service:")
    assert query["response_type"] == "code"
    assert query["client_id"] == settings.client_id
    assert query["redirect_uri"] == settings.redirect_uri
    assert consume_state(query["state"], "eaccounting") == tenant
    with pytest.raises(StateRefused, match="already used"):
        consume_state(query["state"], "eaccounting")

    ec_tenant = connect_ec_tenant("DK")
    result = CliRunner().invoke(app, ["tenants", "connect-url", ec_tenant])
    install = _query(result.output.strip())
    assert install["appPublicToken"] == economic_settings().app_public_token
    redirect = install["redirectUrl"]
    assert redirect.startswith(economic_settings().redirect_uri)
    assert consume_state(_query(redirect)["state"], "economic") == ec_tenant

    missing = CliRunner().invoke(app, ["tenants", "connect-url", unique("nobody")])
    assert missing.exit_code == 1


def test_start_route_redirects_to_visma_with_a_short_lived_state(callback: CallbackServer) -> None:
    tenant = connect_ea_tenant("NO")
    response = httpx.get(f"{callback.url}/connect/eaccounting/{tenant}")
    assert response.status_code == 302
    query = _query(response.headers["location"])
    assert query["redirect_uri"] == callback.eaccounting_callback
    assert "ea:purchase_readonly" in query["scope"].split()
    assert query["prompt"] == "select_account" and query["acr_values"]
    assert httpx.get(f"{callback.url}/connect/eaccounting/{unique('x')}").status_code == 404
    assert httpx.get(f"{callback.url}/connect/bogus/{tenant}").status_code == 404


def test_bad_replayed_expired_or_foreign_state_is_refused(
    callback: CallbackServer, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    ok = callback.reconnect_eaccounting(tenant)
    assert ok.status_code == 200 and "Connected" in ok.text, ok.text
    credentials = credentials_of(get_tenant(tenant))
    exchanges = ea_sim.token_calls_for(tenant).get("authorization_code", 0)

    replayed = httpx.get(str(ok.url))  # the same callback URL, code and state again
    assert replayed.status_code == 400 and "already used" in replayed.text

    def callback_with(state: str) -> httpx.Response:
        return httpx.get(callback.eaccounting_callback, params={"state": state, "code": "x"})

    forged = make_state(tenant, "eaccounting")[:-3] + "AAA"
    assert "bad signature" in callback_with(forged).text
    assert "expired" in callback_with(make_state(tenant, "eaccounting", ttl=-1)).text
    assert "another accounting system" in callback_with(make_state(tenant, "economic")).text
    for response in (callback_with(forged), callback_with(""), callback_with("garbage")):
        assert response.status_code == 400
    denied = httpx.get(
        callback.eaccounting_callback,
        params={"error": "access_denied", "state": make_state(tenant, "eaccounting")},
    )
    assert denied.status_code == 400 and "access_denied" in denied.text
    # Nothing refused reached the token endpoint, and the stored tokens are untouched.
    assert ea_sim.token_calls_for(tenant).get("authorization_code", 0) == exchanges
    assert credentials_of(get_tenant(tenant)) == credentials


def _consent(link: str) -> str:
    """The customer consents at (simulated) Visma; where Visma sends their browser."""
    answer = httpx.get(link, follow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def test_token_endpoint_failure_leaves_the_link_usable_and_a_replay_is_refused(
    callback: CallbackServer, ea_sim: Any
) -> None:
    from worker.auth.connect import connect_url

    tenant = connect_ea_tenant("NO")
    back = _consent(f"{connect_url(tenant)}&login_hint={tenant}")
    assert back.startswith(callback.eaccounting_callback)
    before = credentials_of(get_tenant(tenant))
    ea_sim.faults.update({"error_rate": 1.0})  # the token endpoint answers 503
    try:
        failed = httpx.get(back, timeout=30)
    finally:
        ea_sim.faults.update({"error_rate": 0.0})
    assert failed.status_code == 502 and "token endpoint answered 503" in failed.text
    assert credentials_of(get_tenant(tenant)) == before
    ok = httpx.get(back, timeout=30)  # the customer reloads the page: the same link works
    assert ok.status_code == 200 and f"Tenant {tenant} is connected" in ok.text, ok.text
    assert credentials_of(get_tenant(tenant))["access_token"] != before["access_token"]
    exchanges = ea_sim.token_calls_for(tenant).get("authorization_code", 0)
    replayed = httpx.get(back, timeout=30)
    assert replayed.status_code == 400 and "already used" in replayed.text
    assert ea_sim.token_calls_for(tenant).get("authorization_code", 0) == exchanges


def test_consent_without_a_required_scope_is_not_connected(
    workers: Fleet, callback: CallbackServer, ea_sim: Any
) -> None:
    """The customer's consent grants less than asked (here: the link's scope cut short,
    as a user unticking permissions would): the tenant needs re-authorization, the
    reason names the missing scopes, and the customer sees why."""
    from worker.auth.connect import connect_url

    tenant = connect_ea_tenant("NO")
    before = credentials_of(get_tenant(tenant))
    parts = urlsplit(f"{connect_url(tenant)}&login_hint={tenant}")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["scope"] = "ea:api offline_access ea:sales"
    back = _consent(parts._replace(query=urlencode(query)).geturl())
    page = httpx.get(back, timeout=30)
    assert page.status_code == 400 and "Not connected" in page.text
    assert "ea:accounting_readonly, ea:purchase_readonly" in page.text
    row = get_tenant(tenant)
    assert row.connection_state == "needs_reauth"
    assert "ea:accounting_readonly" in (row.connection_reason or "")
    assert "ea:purchase_readonly" in (row.connection_reason or "")
    assert credentials_of(row) == before  # the narrower tokens are not stored
    wait_for(lambda: workers.receiver.hooks("tenant.reauth_required", tenant), 20)
    assert httpx.get(back, timeout=30).status_code == 400  # spent: the code was exchanged

    # A new link, every permission allowed: connected again.
    ok = callback.reconnect_eaccounting(tenant)
    assert ok.status_code == 200 and "is connected" in ok.text, ok.text
    assert get_tenant(tenant).connection_state == "connected"


def test_workers_reach_the_token_endpoint_at_their_own_address(
    ea_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In containers the browser and the workers know the identity server by different
    names: LEDGERPUSH_EACCOUNTING_TOKEN_URL is the workers' one."""
    import os

    from worker.providers.eaccounting.auth import refresh
    from worker.settings import get_settings

    tenant = connect_ea_tenant("NO")
    stored = credentials_of(get_tenant(tenant))["refresh_token"]
    monkeypatch.setenv(
        "LEDGERPUSH_EACCOUNTING_TOKEN_URL", os.environ["LEDGERPUSH_EACCOUNTING_IDENTITY_URL"]
    )
    monkeypatch.setenv("LEDGERPUSH_EACCOUNTING_IDENTITY_URL", "http://browser-only.invalid")
    get_settings.cache_clear()
    try:
        assert refresh(stored)["access_token"]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
