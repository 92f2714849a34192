"""Disabling, enabling and removing a tenant, from the command line and from the tenant
page, are recorded in the tenant's audit trail with who did it; a customer's reconnect
does not undo an operator's disable; rebind and company sharing over the API, as on the
command line. Real database and Redis, the real app and CLI."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner, Result

from tests.conftest import unique
from tests.web_helpers import PASSWORD, SECRETS, make_job, make_tenant, sign_in
from worker.cli import app as cli_app
from worker.ledger import store
from worker.ledger.db import session
from worker.ledger.models import CANCELLED, CONNECTED, DISABLED, WAITING_FOR_REAUTH, Tenant
from worker.tenancy import binding
from worker.tenancy.connections import tenant_reconnected
from worker.tenancy.tenants import credentials_of, find_tenant, get_tenant
from worker.web.access import JOBS_READ
from worker.web.accounts import add_user, create_api_key

pytest_plugins = ["tests.web_fixtures"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli_app, list(args))


def trail(tenant_id: str) -> list[tuple[str, str]]:
    """(action, actor), oldest first."""
    return [(e.action, e.actor) for e in reversed(binding.events(tenant_id))]


def test_cli_disable_enable_remove_are_in_the_tenants_audit_trail() -> None:
    tenant_id = make_tenant()

    assert run("tenants", "disable", tenant_id).exit_code == 0
    assert run("tenants", "disable", tenant_id).exit_code == 0  # already disabled: no new entry
    assert run("tenants", "enable", tenant_id).exit_code == 0
    assert run("tenants", "remove", tenant_id, "--yes").exit_code == 0

    actions = trail(tenant_id)
    assert [action for action, _ in actions] == ["disabled", "enabled", "removed"]
    assert all(actor.startswith("cli") for _, actor in actions)


def _post(client: TestClient, path: str, csrf: str) -> Any:
    return client.post(path, data={"csrf_token": csrf})


def test_tenant_page_buttons_disable_and_enable_with_confirmation(
    browser_client: tuple[TestClient, str], operator: str
) -> None:
    client, csrf = browser_client
    tenant_id = make_tenant()
    parked = make_job(tenant_id, WAITING_FOR_REAUTH)
    page = client.get(f"/tenants/{tenant_id}").text
    assert f'href="/tenants/{tenant_id}/disable"' in page
    assert f'href="/tenants/{tenant_id}/remove"' in page

    confirm = client.get(f"/tenants/{tenant_id}/disable")
    assert confirm.status_code == 200
    assert 'id="confirm"' in confirm.text and "its jobs wait" in confirm.text
    assert get_tenant(tenant_id).connection_state == CONNECTED  # nothing until confirmed

    done = _post(client, f"/tenants/{tenant_id}/disable", csrf)

    assert done.status_code == 303
    assert get_tenant(tenant_id).connection_state == DISABLED
    page = client.get(f"/tenants/{tenant_id}").text
    assert 'id="disabled-box"' in page and 'id="reauth"' not in page
    assert f'href="/tenants/{tenant_id}/enable"' in page
    job_page = client.get(f"/jobs/{parked.id}").text
    assert 'id="tenant-disabled"' in job_page
    assert "The tenant is disabled" in job_page and 'id="connect-link"' not in job_page

    assert _post(client, f"/tenants/{tenant_id}/enable", csrf).status_code == 303
    assert get_tenant(tenant_id).connection_state == CONNECTED
    assert store.get_job(parked.id).state != WAITING_FOR_REAUTH  # resumed
    assert trail(tenant_id) == [("disabled", operator), ("enabled", operator)]
    assert "disabled" in client.get(f"/tenants/{tenant_id}").text  # shown in the trail


def test_remove_button_is_refused_while_jobs_are_unsettled(
    browser_client: tuple[TestClient, str], operator: str
) -> None:
    client, csrf = browser_client
    tenant_id = make_tenant()
    job = make_job(tenant_id)

    refused = _post(client, f"/tenants/{tenant_id}/remove", csrf)

    assert refused.status_code == 409
    assert "1 unsettled job" in refused.text
    assert find_tenant(tenant_id) is not None
    store.transition(job.id, CANCELLED)
    removed = _post(client, f"/tenants/{tenant_id}/remove", csrf)
    assert removed.status_code == 303 and removed.headers["location"] == "/tenants"
    assert find_tenant(tenant_id) is None
    assert trail(tenant_id) == [("removed", operator)]


def test_only_admins_see_the_tenant_buttons(anon: TestClient) -> None:
    tenant_id = make_tenant()
    for role in ("viewer", "operator"):
        name = unique(role)
        add_user(name, PASSWORD, role=role)
        anon.cookies.clear()
        csrf = sign_in(anon, name)
        page = anon.get(f"/tenants/{tenant_id}").text
        assert 'id="tenant-actions"' not in page, role
        assert _post(anon, f"/tenants/{tenant_id}/disable", csrf).status_code == 403, role
    assert get_tenant(tenant_id).connection_state == CONNECTED


def test_a_customers_reconnect_does_not_enable_a_disabled_tenant() -> None:
    tenant_id = make_tenant()
    make_job(tenant_id, WAITING_FOR_REAUTH)
    assert run("tenants", "disable", tenant_id).exit_code == 0
    fresh = {**SECRETS, "access_token": "fresh-access"}

    resumed = tenant_reconnected(tenant_id, fresh, actor="connect")

    assert resumed == 0
    assert get_tenant(tenant_id).connection_state == DISABLED
    assert (credentials_of(get_tenant(tenant_id)) or {}).get("access_token") == "fresh-access"


def _refused(tenant_id: str, company_id: str, name: str) -> None:
    record = {"id": company_id, "name": name, "org_no": "", "country": "NO"}
    with session() as db:
        db.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(company_id="old-1", company={"id": "old-1", "name": "Old AS"})
        )
        db.execute(update(Tenant).where(Tenant.id == tenant_id).values(company_refused=record))


def test_api_rebind_names_the_company_it_moves_to(api: TestClient, api_key: str) -> None:
    tenant_id = make_tenant()
    path = f"/api/tenants/{tenant_id}/rebind"
    nothing = api.post(path, json={"company_id": "new-2"})
    assert nothing.status_code == 409
    assert "no refused company" in nothing.json()["detail"]
    _refused(tenant_id, "new-2", "New AS")

    wrong = api.post(path, json={"company_id": "someone-else"})
    assert wrong.status_code == 409
    assert "New AS" in wrong.json()["detail"]
    assert get_tenant(tenant_id).company_id == "old-1"

    moved = api.post(path, json={"company_id": "new-2"})

    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["company"]["id"] == "new-2"
    assert body["connection_state"] == "needs_reauth"
    assert body["company_refused"] is None
    action, actor = trail(tenant_id)[-1]
    assert action == "rebound" and actor.startswith("apikey:")
    assert (
        api.post("/api/tenants/no-such-tenant/rebind", json={"company_id": "x"}).status_code == 404
    )


def test_api_company_sharing(api: TestClient) -> None:
    tenant_id = make_tenant()
    path = f"/api/tenants/{tenant_id}/company-sharing"

    allowed = api.put(path, json={"allowed": True})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["company_sharing_allowed"] is True
    revoked = api.put(path, json={"allowed": False})
    assert revoked.json()["company_sharing_allowed"] is False
    assert [a for a, _ in trail(tenant_id)] == ["sharing_allowed", "sharing_revoked"]
    assert api.put(path, json={}).status_code == 422


def test_api_tenant_admin_needs_the_scope_and_is_documented(api: TestClient) -> None:
    tenant_id = make_tenant()
    reader = create_api_key(unique("reader"), [JOBS_READ])
    headers = {"Authorization": f"Bearer {reader}"}

    refused = api.put(
        f"/api/tenants/{tenant_id}/company-sharing", json={"allowed": True}, headers=headers
    )

    assert refused.status_code == 403
    assert "tenants:admin" in refused.json()["detail"]
    paths = api.get("/api/openapi.json").json()["paths"]
    assert "post" in paths["/api/tenants/{tenant_id}/rebind"]
    assert "put" in paths["/api/tenants/{tenant_id}/company-sharing"]


def test_tenants_show_lists_the_audit_trail_newest_first() -> None:
    tenant_id = make_tenant()
    assert run("tenants", "disable", tenant_id).exit_code == 0
    assert run("tenants", "enable", tenant_id).exit_code == 0

    shown = run("tenants", "show", tenant_id, "--json")

    assert shown.exit_code == 0, shown.output
    events = json.loads(shown.output)["events"]
    assert [e["action"] for e in events] == ["enabled", "disabled"]
    assert events[0]["actor"].startswith("cli")


def test_jobs_list_refuses_a_limit_below_one() -> None:
    result = run("jobs", "list", "--limit", "0")

    assert result.exit_code == 2
    assert "--limit" in result.output


def test_cli_json_times_carry_the_utc_offset_on_every_database() -> None:
    import datetime as dt

    tenant_id = make_tenant()
    make_job(tenant_id)
    assert run("tenants", "disable", tenant_id).exit_code == 0

    jobs = json.loads(run("jobs", "list", "--tenant", tenant_id, "--json").output)
    shown = json.loads(run("tenants", "show", tenant_id, "--json").output)
    keys = json.loads(run("apikeys", "list", "--json").output)

    stamps = [jobs[0]["created_at"], jobs[0]["updated_at"], shown["events"][0]["at"]]
    stamps += [k["created_at"] for k in keys[:3]]
    for stamp in stamps:
        assert dt.datetime.fromisoformat(stamp).utcoffset() == dt.timedelta(0), stamp


def test_the_rebind_button_moves_only_to_the_company_its_page_named(
    browser_client: tuple[TestClient, str],
) -> None:
    client, csrf = browser_client
    tenant_id = make_tenant()
    _refused(tenant_id, "new-2", "New AS")
    page = client.get(f"/tenants/{tenant_id}/rebind").text
    assert 'name="company_id" value="new-2"' in page
    _refused(tenant_id, "other-3", "Other AS")  # another refused connect meanwhile

    stale = client.post(
        f"/tenants/{tenant_id}/rebind", data={"csrf_token": csrf, "company_id": "new-2"}
    )

    assert stale.status_code == 409
    assert "Other AS" in stale.text
    assert get_tenant(tenant_id).company_id == "old-1"
    moved = client.post(
        f"/tenants/{tenant_id}/rebind", data={"csrf_token": csrf, "company_id": "other-3"}
    )
    assert moved.status_code == 303
    assert get_tenant(tenant_id).company_id == "other-3"
