"""Each tenant is bound to one remote company. The walk-through of issue 14 end to end:
a reconnect that picks another company (or one bound to another tenant) is refused
before anything is stored, an operator rebind is explicit and audited, a company whose
identity changes under a live token parks the tenant before any write, tenants connected
before bindings existed are bound on their next call, and a refused application secret
holds jobs without touching any tenant's connection. Real worker processes, Redis, the
simulators over HTTP, the connect routes over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, inspect, select, text

from tests.conftest import (
    connect_ea_tenant,
    connect_ec_tenant,
    danish_customer,
    invoice_job,
    unique,
    wait_for,
)
from tests.connection_support import (
    CallbackServer,
    Fleet,
    callback_server,
    fleet,
    settle,
    settle_all,
    stays,
)
from worker.auth import app_credentials
from worker.auth.connect import connect_url
from worker.ledger.db import alembic_config, session
from worker.ledger.models import TenantEvent
from worker.tenancy import refcache
from worker.tenancy.tenants import add_tenant, credentials_of, get_tenant
from worker.transport.producer import enqueue

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.web_fixtures"]


@pytest.fixture(scope="module")
def workers(base_env: dict[str, str]) -> Iterator[Fleet]:
    with fleet(base_env, count=1, concurrency=8) as started:
        yield started


@pytest.fixture(scope="module")
def callback(workers: Fleet) -> Iterator[CallbackServer]:
    with callback_server(workers.receiver.hook_url) as server:
        yield server


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )


def tenant_events(tenant_id: str) -> list[TenantEvent]:
    with session() as db:
        return list(
            db.scalars(
                select(TenantEvent)
                .where(TenantEvent.tenant_id == tenant_id)
                .order_by(TenantEvent.id)
            )
        )


def written(sim: Any) -> dict[str, tuple[int, int, int, int]]:
    """What every simulated company holds: customers, articles, drafts, invoices."""
    return {
        company: (
            len(state["customers"]),
            len(state["articles"]),
            len(state["drafts"]),
            len(state["invoices"]),
        )
        for company, state in sim.state_dump().items()
    }


def book_one(tenant_id: str, **invoice: Any) -> None:
    job = settle(enqueue(invoice_job(tenant_id, **invoice)))
    assert job.state == "booked", (job.state, job.error_code, job.error_message)


def park(sim: Any, tenant_id: str) -> str:
    """The tenant's consent breaks (password changed): its next job is parked."""
    sim.revoke_refresh_tokens(tenant_id)
    sim.expire_access_tokens(tenant_id)
    job = settle(enqueue(invoice_job(tenant_id)))
    assert job.state == "waiting_for_reauth", (job.state, job.error_message)
    return job.id


def test_reconnect_to_another_company_is_refused_and_a_rebind_is_explicit(
    workers: Fleet, callback: CallbackServer, ea_sim: Any
) -> None:
    tenant_a = connect_ea_tenant("NO")
    tenant_b = connect_ea_tenant("NO")
    book_one(tenant_a)
    book_one(tenant_b)
    assert get_tenant(tenant_a).company_id == tenant_a  # CompanyIdentifier of its company
    assert get_tenant(tenant_b).company_id == tenant_b
    other = unique("company-y")
    ea_sim.add_company(other, "NO")
    parked = park(ea_sim, tenant_a)
    before_credentials = credentials_of(get_tenant(tenant_a))
    before = written(ea_sim)

    page = callback.reconnect_eaccounting(tenant_a, company=other)
    assert page.status_code == 409, page.text
    assert "Not connected: another company" in page.text
    assert f"This link is for {tenant_a}" in page.text
    assert f"id {tenant_a})" in page.text and "You picked" in page.text
    assert f"id {other})" in page.text
    row = get_tenant(tenant_a)
    assert credentials_of(row) == before_credentials  # the tokens were not stored
    assert row.connection_state == "needs_reauth"
    assert (row.connection_reason or "").startswith("company_mismatch:")
    assert row.company_id == tenant_a and (row.company_refused or {})["id"] == other
    wait_for(lambda: workers.receiver.hooks("tenant.company_refused", tenant_a), 20)
    assert stays(lambda: len(workers.receiver.hooks("tenant.company_refused", tenant_a)) == 1, 1.5)
    assert settle(parked).state == "waiting_for_reauth"
    assert written(ea_sim) == before  # nothing written anywhere

    # Picking the company tenant B books into is refused as well.
    page = callback.reconnect_eaccounting(tenant_a, company=tenant_b)
    assert page.status_code == 409 and f"id {tenant_b})" in page.text
    assert credentials_of(get_tenant(tenant_a)) == before_credentials

    # The operator moves the tenant to company Y explicitly (audited), after one more
    # refused attempt with it so that it is the company named.
    assert callback.reconnect_eaccounting(tenant_a, company=other).status_code == 409
    shown = cli("tenants", "show", tenant_a, "--json")
    assert shown.returncode == 0 and f'"id": "{other}"' in shown.stdout, shown.stderr
    moved = cli("tenants", "rebind", tenant_a, "--yes")
    assert moved.returncode == 0, moved.stderr
    assert "moved to" in moved.stdout and other in moved.stdout
    row = get_tenant(tenant_a)
    assert row.company_id == other and row.company_refused is None
    rebound = [e for e in tenant_events(tenant_a) if e.action == "rebound"]
    assert len(rebound) == 1 and rebound[0].actor.startswith("cli:")
    assert f"id {tenant_a})" in (rebound[0].note or "") and f"id {other})" in (
        rebound[0].note or ""
    )

    page = callback.reconnect_eaccounting(tenant_a, company=other)
    assert page.status_code == 200, page.text
    assert "is connected to" in page.text and f"id {other})" in page.text
    assert settle(parked).state == "booked"
    assert len(ea_sim.state_dump()[other]["invoices"]) == 1
    assert written(ea_sim)[tenant_a] == before[tenant_a]


def test_company_of_another_tenant_is_refused_unless_the_operator_allows_it(
    callback: CallbackServer, ea_sim: Any
) -> None:
    holder = connect_ea_tenant("NO")
    assert callback.reconnect_eaccounting(holder).status_code == 200  # bound at connect
    assert get_tenant(holder).company_id == holder
    newcomer = unique("ea-new")
    add_tenant(newcomer, "eaccounting", "NO")

    page = callback.reconnect_eaccounting(newcomer, company=holder)
    assert page.status_code == 409
    assert "already connected to another ledgerpush account" in page.text
    assert holder not in page.text.split("You picked", 1)[0]  # the other tenant is not named
    row = get_tenant(newcomer)
    assert row.credentials is None and row.company_id is None
    assert row.connection_state == "needs_reauth"
    assert (row.connection_reason or "").startswith("company_in_use:")

    allowed = cli("tenants", "allow-shared-company", newcomer, "--yes")
    assert allowed.returncode == 0, allowed.stderr
    assert [e.action for e in tenant_events(newcomer)][-1] == "sharing_allowed"
    page = callback.reconnect_eaccounting(newcomer, company=holder)
    assert page.status_code == 200, page.text
    row = get_tenant(newcomer)
    assert row.connection_state == "connected" and row.company_id == holder


def test_economic_reconnect_to_another_agreement_is_refused(
    callback: CallbackServer, ec_sim: Any
) -> None:
    tenant = unique("ec-bind")
    add_tenant(tenant, "economic", "DK")
    own = ec_sim.add_agreement("DK", grant_token=f"grant-{tenant}")
    other = ec_sim.add_agreement("DK")

    def connect(grant: str) -> httpx.Response:
        return httpx.get(
            f"{connect_url(tenant)}&agreement={grant}", follow_redirects=True, timeout=30
        )

    assert connect(own).status_code == 200
    bound = get_tenant(tenant).company
    assert bound is not None and bound["id"] == str(ec_sim.agreements[own].number)
    page = connect(other)
    assert page.status_code == 409 and "Not connected: another company" in page.text
    assert credentials_of(get_tenant(tenant)) == {"grant_token": own}


def test_identity_change_under_a_live_token_parks_the_tenant_before_any_write(
    workers: Fleet, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    book_one(tenant)
    identity_url = f"{os.environ['LEDGERPUSH_EACCOUNTING_IDENTITY_URL']}/_control/companies"
    changed = httpx.put(
        f"{identity_url}/{tenant}/identity",
        json={"CompanyIdentifier": unique("someone-else"), "Name": "Someone Else AS"},
        timeout=10,
    )
    assert changed.status_code == 200, changed.text
    refcache.invalidate(tenant)  # what "Refresh references" does
    before = written(ea_sim)

    job = settle(enqueue(invoice_job(tenant)))
    assert job.state == "waiting_for_reauth" and job.error_code == "company_changed"
    row = get_tenant(tenant)
    assert row.connection_state == "needs_reauth"
    assert (row.connection_reason or "").startswith("company_changed:")
    assert "Someone Else AS" in (row.connection_reason or "")
    assert written(ea_sim) == before  # parked before any write
    wait_for(lambda: workers.receiver.hooks("tenant.reauth_required", tenant), 20)
    assert stays(lambda: len(workers.receiver.hooks("tenant.reauth_required", tenant)) == 1, 1.0)


def test_tenants_connected_before_bindings_are_bound_on_their_next_call(
    workers: Fleet, ec_sim: Any
) -> None:
    ea_tenant = connect_ea_tenant("SE")
    ec_tenant = connect_ec_tenant("DK")
    assert get_tenant(ea_tenant).company_id is None  # as every tenant after the migration
    book_one(ea_tenant)
    book_one(ec_tenant, currency="DKK", customer=danish_customer())
    ea_row, ec_row = get_tenant(ea_tenant), get_tenant(ec_tenant)
    assert ea_row.company_id == ea_tenant and ea_row.company_bound_at is not None
    assert (ea_row.company or {})["country"] == "SE"
    grant = credentials_of(ec_row)["grant_token"]
    assert ec_row.company_id == str(ec_sim.agreements[grant].number)
    assert [(e.action, e.actor) for e in tenant_events(ea_tenant)] == [("bound", "worker")]


def test_migration_adds_the_binding_columns_to_existing_tenants(tmp_path: Path) -> None:
    from alembic import command

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine), "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tenants (id, provider, country, connection_state, "
                "credentials_version, mapping, capabilities, created_at, updated_at) VALUES "
                "('old', 'eaccounting', 'NO', 'connected', 1, '{}', '{}', "
                "'2026-01-01', '2026-01-01')"
            )
        )
    command.upgrade(alembic_config(engine), "0006_company_binding")
    columns = {c["name"] for c in inspect(engine).get_columns("tenants")}
    assert {"company_id", "company", "company_refused", "company_sharing_allowed"} <= columns
    assert "tenant_events" in inspect(engine).get_table_names()
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT company_id, company_sharing_allowed FROM tenants WHERE id = 'old'")
        ).one()
    assert row == (None, 0)  # unbound: bound on its next successful call
    engine.dispose()


def test_refused_app_secret_holds_jobs_keeps_tenants_connected_and_resumes(
    workers: Fleet, ea_sim: Any
) -> None:
    tenants = [connect_ea_tenant("NO"), connect_ea_tenant("NO")]
    for tenant in tenants:
        book_one(tenant)
        ea_sim.expire_access_tokens(tenant)
    secret = ea_sim.client_secret
    alerted = len(workers.receiver.hooks("system.app_credentials_rejected"))
    ea_sim.set_client_secret("rotated-at-visma")  # our LEDGERPUSH_EACCOUNTING_CLIENT_SECRET is old
    try:
        ids = [enqueue(invoice_job(t)) for t in tenants for _ in range(2)]

        def held() -> bool:
            from worker.ledger.store import find_job

            jobs = [find_job(i) for i in ids]
            return all(
                j is not None
                and j.state == "retry_scheduled"
                and j.error_code == "app_credentials_rejected"
                for j in jobs
            )

        wait_for(held, 30)
        assert all(get_tenant(t).connection_state == "connected" for t in tenants)
        (condition,) = app_credentials.current()
        assert "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET" in condition["setting"]
        assert condition["error"] == "invalid_client"

        def alerts() -> int:
            return len(workers.receiver.hooks("system.app_credentials_rejected"))

        wait_for(lambda: alerts() == alerted + 1, 20)
        assert stays(lambda: alerts() == alerted + 1, 2.0)  # one, however many jobs
        assert not any(workers.receiver.hooks("tenant.reauth_required", t) for t in tenants)
    finally:
        ea_sim.set_client_secret(secret)  # the token endpoint accepts the app again
    jobs = settle_all(ids, 60)
    assert [j.state for j in jobs] == ["booked"] * len(ids)
    assert app_credentials.current() == []
    wait_for(lambda: workers.receiver.hooks("system.app_credentials_accepted"), 20)
    assert all(get_tenant(t).connection_state == "connected" for t in tenants)


def test_dashboard_shows_the_binding_and_rebinds_only_when_confirmed(
    browser_client: tuple[Any, str], operator: str
) -> None:
    from worker.tenancy import binding

    client, csrf = browser_client
    tenant = unique("t-bind")
    add_tenant(tenant, "eaccounting", "NO")
    binding.bind(tenant, binding.Company("old-co", "Old Co AS", "999", "NO"), "test")
    refused = binding.CompanyRefused(
        tenant, binding.MISMATCH, None, binding.Company("new-co", "New Co AS", "888", "NO")
    )
    binding.refuse_connect(get_tenant(tenant), refused, "oauth")

    page = client.get(f"/tenants/{tenant}")
    assert "Old Co AS (NO, 999; id old-co)" in page.text
    assert "New Co AS" in page.text and f"/tenants/{tenant}/rebind" in page.text
    confirm = client.get(f"/tenants/{tenant}/rebind")
    assert confirm.status_code == 200
    assert "Old Co AS (NO, 999; id old-co)" in confirm.text
    assert "New Co AS (NO, 888; id new-co)" in confirm.text
    assert get_tenant(tenant).company_id == "old-co"  # nothing happens before confirming
    done = client.post(f"/tenants/{tenant}/rebind", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert get_tenant(tenant).company_id == "new-co"
    events = tenant_events(tenant)
    assert [(e.action, e.actor) for e in events][-1] == ("rebound", operator)
    assert "Moved to New Co AS" in client.get(f"/tenants/{tenant}").text


def test_overview_shows_refused_app_credentials_at_the_top(
    browser_client: tuple[Any, str],
) -> None:
    client, _ = browser_client
    app_credentials.rejected("eaccounting", "invalid_client")
    try:
        page = client.get("/").text
        assert "refuses ledgerpush&#39;s application credentials" in page or (
            "refuses ledgerpush's application credentials" in page
        )
        assert page.index('id="app-credentials"') < page.index('id="updated"')
        assert "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET" in page
    finally:
        app_credentials.accepted("eaccounting")
    assert 'id="app-credentials"' not in client.get("/").text
