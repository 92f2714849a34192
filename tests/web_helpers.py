"""Helpers for the web tests: sign in through the form, make tenants and ledger rows."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import invoice_job, unique
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.models import BOOKED, Job
from worker.tenancy.tenants import add_tenant

PASSWORD = "correct horse battery"
SECRETS = {
    "access_token": "SECRET-ACCESS-d5c2e1",
    "refresh_token": "SECRET-REFRESH-77a9f0",
    "grant_token": "SECRET-GRANT-0b4c11",
    "expires_at": 4102444800,
}


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]*)"', html)
    assert match, "no CSRF meta tag on the page"
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/").text)


def make_tenant(provider: str = "eaccounting", country: str = "NO", **kwargs: Any) -> str:
    tenant_id = unique("t")
    add_tenant(tenant_id, provider, country, credentials=dict(SECRETS), **kwargs)
    return tenant_id


def make_job(tenant_id: str, state: str = "received", **error: Any) -> Job:
    """A ledger row in the given state, inserted directly (no worker involved)."""
    payload = invoice_job(tenant_id)
    key = payload["idempotency_key"]
    job, _ = store.accept_job(job_id_for(tenant_id, key), tenant_id, key, "invoice", payload)
    if state == "failed":
        return store.fail_job(
            job.id,
            error.get("category", "rejected"),
            error.get("code", "unknown_tenant"),
            error.get("message", "no tenant configured"),
            error.get("fields"),
        )
    if state == BOOKED:
        return store.transition(job.id, BOOKED, remote={"book": {"number": 1001}})
    if state != "received":
        return store.transition(job.id, state)
    return job
