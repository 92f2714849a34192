"""The dashboard's Visma.net onboarding over the in-process web client, against the
Visma.net simulator: adding a tenant with its company tenant id, and fixing that id on a
tenant parked for re-authorization (CSRF and tenants:admin like every admin form)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import invoice_job, point_vismanet_at, unique
from tests.web_helpers import PASSWORD, sign_in
from worker import pipeline
from worker.jobs import job_id_for
from worker.ledger import store
from worker.tenancy.tenants import add_tenant, credentials_of, get_tenant
from worker.web.access import VIEWER
from worker.web.accounts import add_user

pytest_plugins = ["tests.web_fixtures"]
CONTRACT_TENANT = "nordlys-customer-tenant"  # the customer tenant id: the documented mistake
Signed = tuple[TestClient, str]


@pytest.fixture
def sim(vn_sim: Any, vn_server: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    _, url = vn_server
    point_vismanet_at(monkeypatch, url)
    return vn_sim


def test_an_admin_adds_a_visma_net_tenant(browser_client: Signed) -> None:
    client, csrf = browser_client
    assert 'href="/tenants/add/vismanet"' in client.get("/tenants").text
    page = client.get("/tenants/add/vismanet")
    assert page.status_code == 200 and 'name="company_tenant_id"' in page.text
    assert client.get("/tenants/add/eaccounting").status_code == 404  # it has a consent page
    tenant_id = unique("vn-web")
    form = {"tenant_id": tenant_id, "country": "SE", "company_tenant_id": "company-42",
            "display_name": "Nordlys AB"}  # fmt: skip
    assert client.post("/tenants/add/vismanet", data=form).status_code == 403  # no CSRF token
    added = client.post("/tenants/add/vismanet", data={**form, "csrf_token": csrf})
    assert added.status_code == 303 and added.headers["location"] == f"/tenants/{tenant_id}"
    tenant = get_tenant(tenant_id)
    assert (tenant.provider, tenant.country, tenant.display_name) == (
        "vismanet",
        "SE",
        "Nordlys AB",
    )
    assert credentials_of(tenant) == {"tenant_id": "company-42"}
    again = client.post("/tenants/add/vismanet", data={**form, "csrf_token": csrf})
    assert again.status_code == 409 and "already exists" in again.text
    wrong = {**form, "tenant_id": unique("vn-web"), "country": "DE", "csrf_token": csrf}
    assert client.post("/tenants/add/vismanet", data=wrong).status_code == 409


def test_a_viewer_may_not_add_or_connect(anon: TestClient) -> None:
    viewer = unique("viewer")
    add_user(viewer, PASSWORD, role=VIEWER)
    csrf = sign_in(anon, viewer)
    form = {"tenant_id": unique("vn-web"), "country": "NO", "company_tenant_id": "c",
            "csrf_token": csrf}  # fmt: skip
    assert anon.post("/tenants/add/vismanet", data=form).status_code == 403
    tenant_id = unique("vn-web")
    add_tenant(tenant_id, "vismanet", "NO", {"tenant_id": CONTRACT_TENANT})
    fix = {"company_tenant_id": "x", "csrf_token": csrf}
    assert anon.post(f"/tenants/{tenant_id}/vismanet/company", data=fix).status_code == 403


def test_a_parked_tenant_is_fixed_with_its_company_tenant_id(
    sim: Any, browser_client: Signed
) -> None:
    client, csrf = browser_client
    tenant_id = unique("vn-web")
    add_tenant(tenant_id, "vismanet", "NO", {"tenant_id": CONTRACT_TENANT})
    payload = invoice_job(tenant_id)
    pipeline.process(payload)
    job_id = job_id_for(tenant_id, payload["idempotency_key"])
    assert store.get_job(job_id).state == "waiting_for_reauth"
    page = client.get(f"/tenants/{tenant_id}").text
    assert 'action="/tenants/' + tenant_id + '/vismanet/company"' in page

    url = f"/tenants/{tenant_id}/vismanet/company"
    still_wrong = client.post(url, data={"company_tenant_id": CONTRACT_TENANT, "csrf_token": csrf})
    assert still_wrong.status_code == 303
    assert "Not connected" in client.get(f"/tenants/{tenant_id}").text
    assert get_tenant(tenant_id).connection_state == "needs_reauth"

    company = f"{tenant_id}-company"
    sim.add_company(company, "Fixed AS")
    assert client.post(url, data={"company_tenant_id": company}).status_code == 403  # no CSRF
    fixed = client.post(url, data={"company_tenant_id": company, "csrf_token": csrf})
    assert fixed.status_code == 303
    assert "1 parked jobs resumed" in client.get(f"/tenants/{tenant_id}").text
    tenant = get_tenant(tenant_id)
    assert tenant.connection_state == "connected"
    assert credentials_of(tenant)["tenant_id"] == company
    assert store.get_job(job_id).state != "waiting_for_reauth"
