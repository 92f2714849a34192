"""Access control: a declared rule on every route, each API key scope and web role against
every route, producer keys confined to their own jobs, sign-in throttling that cannot lock
an operator out (a real server, two client addresses), start-up refusals of unsafe
settings, the scope migration, and an access log without secrets."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.conftest import connect_ea_tenant, invoice_job, unique, wait_for
from tests.web_helpers import PASSWORD, make_tenant, sign_in
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import alembic_config, make_engine
from worker.settings import DEV_SECRET_KEY, Settings, SettingsError, load_settings
from worker.web import throttle
from worker.web.access import (
    JOBS_OPERATE,
    JOBS_READ,
    JOBS_WRITE,
    PUBLIC,
    ROLE_SCOPES,
    ROLES,
    SCOPES,
    TENANTS_ADMIN,
    WEBHOOKS_ADMIN,
    Allow,
    rules_of,
)
from worker.web.accounts import add_user, create_api_key

pytest_plugins = ["tests.web_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
ANY_JOB = "00000000-0000-0000-0000-000000000000"
#: The rules that matter most, spelled out (the rest are read from the routes).
EXPECTED = {
    ("POST", "/api/jobs"): (JOBS_WRITE,),
    ("PUT", "/api/tenants/{tenant_id}/mapping"): (TENANTS_ADMIN,),
    ("POST", "/api/jobs/{job_id}/retry"): (JOBS_OPERATE,),
    ("POST", "/api/jobs/{job_id}/replay"): (JOBS_OPERATE,),
    ("POST", "/api/jobs/{job_id}/cancel"): (JOBS_OPERATE,),
    ("GET", "/connect/{provider}/{tenant_id}"): (TENANTS_ADMIN,),
    ("POST", "/tenants/{tenant_id}/mapping"): (TENANTS_ADMIN,),
    ("POST", "/jobs/{job_id}/{action}"): (JOBS_OPERATE,),
    ("POST", "/bulk/retry"): (JOBS_OPERATE,),
    ("GET", "/jobs/{job_id}"): (JOBS_READ,),
    ("POST", "/api/tenants/{tenant_id}/rebind"): (TENANTS_ADMIN,),
    ("PUT", "/api/tenants/{tenant_id}/company-sharing"): (TENANTS_ADMIN,),
    ("POST", "/tenants/{tenant_id}/disable"): (TENANTS_ADMIN,),
    ("POST", "/tenants/{tenant_id}/enable"): (TENANTS_ADMIN,),
    ("POST", "/tenants/{tenant_id}/remove"): (TENANTS_ADMIN,),
    ("POST", "/api/webhooks/endpoints"): (WEBHOOKS_ADMIN,),
    ("PATCH", "/api/webhooks/endpoints/{endpoint_id}"): (WEBHOOKS_ADMIN,),
    ("DELETE", "/api/webhooks/endpoints/{endpoint_id}"): (WEBHOOKS_ADMIN,),
    ("POST", "/api/webhooks/endpoints/{endpoint_id}/test"): (JOBS_OPERATE, WEBHOOKS_ADMIN),
    ("POST", "/webhooks/endpoints/{endpoint_id}/remove"): (WEBHOOKS_ADMIN,),
}


def routes() -> list[tuple[str, Any]]:
    """(method, route) for every API route, also those of included routers."""
    from worker.web.app import create_app

    found: list[tuple[str, Any]] = []

    def visit(candidates: list[Any]) -> None:
        for route in candidates:
            if hasattr(route, "effective_route_contexts"):
                visit(list(route.effective_route_contexts()))
            elif isinstance(route, APIRoute) or hasattr(route, "dependant"):
                found.extend((m, route) for m in sorted(route.methods or ()) if m != "HEAD")

    visit(list(create_app().routes))
    return found


def concrete(path: str, tenant_id: str) -> str:
    return (
        path.replace("{action}", "retry")
        .replace("{provider}", "eaccounting")
        .replace("{job_id}", ANY_JOB)
        .replace("{tenant_id}", tenant_id)
        .replace("{delivery_id}", "999999")
        .replace("{endpoint_id}", "999999")
    )


def test_every_route_declares_an_authorization_rule() -> None:
    found = routes()
    assert len(found) > 25
    missing = [f"{m} {r.path}" for m, r in found if not rules_of(r)]
    assert not missing, f"routes without an authorization rule (worker/web/access.py): {missing}"
    declared = {(m, r.path): rules_of(r) for m, r in found}
    for route, scopes in EXPECTED.items():
        rules = [rule for rule in declared[route] if isinstance(rule, Allow)]
        assert [rule.scopes for rule in rules] == [scopes], route
    assert declared[("GET", "/health")] == [PUBLIC]
    assert declared[("GET", "/connect/{provider}/callback")] == [PUBLIC]
    assert declared[("POST", "/webhooks/{provider}")] == [PUBLIC]


def _principals(anon: TestClient) -> Iterator[tuple[str, frozenset[str], dict[str, str]]]:
    """(label, scopes, headers): one key per scope, one signed-in user per role."""
    for scope in SCOPES:
        key = create_api_key(unique("key"), [scope])
        yield f"key {scope}", frozenset({scope}), {"Authorization": f"Bearer {key}"}
    for role in ROLES:
        name = unique(role)
        add_user(name, PASSWORD, role=role)
        anon.cookies.clear()
        csrf = sign_in(anon, name)
        cookie = anon.cookies.get("lp_session")
        assert cookie
        headers = {"Cookie": f"lp_session={cookie}", "X-CSRF-Token": csrf}
        yield f"role {role}", ROLE_SCOPES[role], headers


def test_each_scope_and_role_against_every_route(anon: TestClient) -> None:
    tenant_id = make_tenant()
    principals = list(_principals(anon))
    anon.cookies.clear()
    for method, route in routes():
        allows = [rule for rule in rules_of(route) if isinstance(rule, Allow)]
        if not allows:
            continue
        if route.path == "/logout":
            continue  # it would end the session the next routes are tried with
        path = concrete(route.path, tenant_id)
        for label, scopes, headers in principals:
            permitted = all(rule.permits(scopes) or rule.public_if for rule in allows)
            response = anon.request(method, path, headers=headers)
            where = (label, method, route.path, response.status_code)
            if permitted:
                assert response.status_code not in (401, 403), where
                continue
            assert response.status_code == 403, where
            needed = next(rule.scopes for rule in allows if not rule.permits(scopes))
            assert any(scope in response.text for scope in needed), (where, response.text)


def test_buttons_follow_the_role(anon: TestClient) -> None:
    from tests.web_helpers import make_job

    tenant_id = make_tenant()
    job = make_job(tenant_id, "failed")
    for role, sees_actions, sees_save in (
        ("viewer", False, False),
        ("operator", True, False),
        ("admin", True, True),
    ):
        name = unique(role)
        add_user(name, PASSWORD, role=role)
        anon.cookies.clear()
        sign_in(anon, name)
        job_page = anon.get(f"/jobs/{job.id}").text
        assert (f"/jobs/{job.id}/retry" in job_page) is sees_actions, role
        tenant_page = anon.get(f"/tenants/{tenant_id}").text
        assert ('id="save-mapping"' in tenant_page) is sees_save, role
        assert (f'href="/connect/eaccounting/{tenant_id}"' in tenant_page) is sees_save, role


def test_producer_key_reads_only_its_own_jobs(session_worker: Any, ea_sim: Any) -> None:
    from worker.web.app import create_app

    tenant_id = connect_ea_tenant()
    mine = create_api_key(unique("producer-a"))
    other = create_api_key(unique("producer-b"))
    reader = create_api_key(unique("reader"), [JOBS_READ])
    job = invoice_job(tenant_id)
    job_id = job_id_for(tenant_id, job["idempotency_key"])
    with TestClient(create_app()) as client:

        def as_key(key: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"}

        assert client.post("/api/jobs", json=job, headers=as_key(mine)).status_code == 201
        row = wait_for(lambda: store.find_job(job_id), 60)
        assert row.created_by_key is not None
        assert client.get(f"/api/jobs/{job_id}", headers=as_key(mine)).status_code == 200
        listed = client.get("/api/jobs", headers=as_key(mine)).json()
        assert [j["id"] for j in listed["items"]] == [job_id]

        refused = client.get(f"/api/jobs/{job_id}", headers=as_key(other))
        assert refused.status_code == 403 and JOBS_READ in refused.json()["detail"]
        assert client.get("/api/jobs", headers=as_key(other)).json()["items"] == []
        again = client.post("/api/jobs", json=job, headers=as_key(other))
        assert again.status_code == 200 and again.json()["job"] is None

        seen = client.get(f"/api/jobs/{job_id}", headers=as_key(reader))
        assert seen.status_code == 200 and seen.json()["payload"]["tenant_id"] == tenant_id
        mapping = client.put(
            f"/api/tenants/{tenant_id}/mapping", json={"vat.25": "1"}, headers=as_key(mine)
        )
        assert mapping.status_code == 403 and TENANTS_ADMIN in mapping.json()["detail"]
        retry = client.post(f"/api/jobs/{job_id}/retry", headers=as_key(mine))
        assert retry.status_code == 403 and JOBS_OPERATE in retry.json()["detail"]


def test_apikeys_create_and_users_add_take_scopes_and_roles() -> None:
    from worker.cli import app

    runner = CliRunner()
    name = unique("scoped")
    created = runner.invoke(
        app, ["apikeys", "create", name, "--scope", "jobs:read", "--scope", "jobs:operate"]
    )
    assert created.exit_code == 0, created.output
    from worker.web.accounts import identify_api_key

    found = identify_api_key(created.stdout.strip().splitlines()[-1])
    assert found is not None and found.scopes == {JOBS_READ, JOBS_OPERATE}
    bad = runner.invoke(app, ["apikeys", "create", name, "--scope", "jobs:everything"])
    assert bad.exit_code == 1 and "jobs:write" in bad.output
    user = unique("viewer")
    added = runner.invoke(
        app, ["users", "add", user, "--role", "viewer", "--password-stdin"], input="longpassword\n"
    )
    assert added.exit_code == 0, added.output
    assert f"{user}\tviewer" in runner.invoke(app, ["users", "list"]).output
    wrong = runner.invoke(
        app, ["users", "add", unique("u"), "--role", "root", "--password-stdin"], input="x" * 12
    )
    assert wrong.exit_code == 1 and "viewer, operator, admin" in wrong.output


def test_migration_keeps_what_existing_keys_and_users_could_do(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config(engine)
    command.upgrade(config, "0001")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (name, prefix, key_hash, created_at, revoked) "
                "VALUES ('old', 'abc', 'h', CURRENT_TIMESTAMP, 0)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO users (username, password_hash, created_at) "
                "VALUES ('old-op', 'h', CURRENT_TIMESTAMP)"
            )
        )
    command.upgrade(config, "heads")
    with engine.begin() as conn:
        scopes = conn.execute(sa.text("SELECT scopes FROM api_keys")).scalar_one()
        role = conn.execute(sa.text("SELECT role FROM users")).scalar_one()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("jobs")}
    assert set(scopes.split()) == set(SCOPES)
    assert role == "admin"
    assert "created_by_key" in columns
    engine.dispose()


# --- sign-in throttling, on a real server with two client source addresses ---------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def web_url(base_env: dict[str, str], tmp_path_factory: Any) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("web") / "web.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "web", "--port", str(port)],
            cwd=ROOT, env=base_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: _healthy(url) or process.poll() is not None, 60)
            assert process.poll() is None, log_path.read_text()[-3000:]
            yield url
        finally:
            process.terminate()
            process.wait(10)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _sign_in_from(address: str, url: str, username: str, password: str) -> int:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        form = {"username": username, "password": password, "csrf_token": token.group(1)}
        return client.post("/login", data=form).status_code


def test_wrong_passwords_from_one_address_do_not_lock_out_another(web_url: str) -> None:
    operator = unique("op")
    add_user(operator, PASSWORD)
    try:
        answers = [_sign_in_from("127.0.0.3", web_url, operator, "guess") for _ in range(50)]
        assert answers[:5] == [401] * 5
        assert 429 in answers, "the guessing address was never slowed down"
        for _ in range(20):  # a hold long enough that the next request surely meets it
            if throttle.wait_seconds("127.0.0.3", operator) > 5:
                break
            _sign_in_from("127.0.0.3", web_url, operator, "guess")
        assert _sign_in_from("127.0.0.3", web_url, operator, PASSWORD) == 429
        assert _sign_in_from("127.0.0.2", web_url, operator, PASSWORD) == 303
    finally:
        throttle.forget("127.0.0.3", operator)


# --- start-up refusals -------------------------------------------------------------


def _load(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    return str(refused.value)


def test_production_refuses_the_development_key_and_weak_admin_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = _load(monkeypatch, LEDGERPUSH_ENV="production", LEDGERPUSH_SECRET_KEY=DEV_SECRET_KEY)
    assert "LEDGERPUSH_SECRET_KEY" in message and "development key" in message
    monkeypatch.setenv("LEDGERPUSH_SECRET_KEY", "Jm6nQ0-gGmS7c2jm1KlR3jPOjuwJ3h9n6XGbGUVJ6uM=")
    for weak, rule in (("change-me", "default"), ("Admin", "default"), ("short-pw1", "12")):
        message = _load(monkeypatch, LEDGERPUSH_WEB_ADMIN_PASSWORD=weak)
        assert "LEDGERPUSH_WEB_ADMIN_PASSWORD" in message and rule in message, message
        assert weak not in message
    monkeypatch.setenv("LEDGERPUSH_WEB_ADMIN_PASSWORD", "a long and unusual one")
    assert load_settings().env == "production"


def test_web_refuses_a_non_loopback_bind_with_unsafe_settings(base_env: dict[str, str]) -> None:
    env = {**base_env, "LEDGERPUSH_SECRET_KEY": "", "LEDGERPUSH_WEB_ADMIN_PASSWORD": "change-me"}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "web", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "LEDGERPUSH_SECRET_KEY" in result.stderr and "0.0.0.0" in result.stderr
    settings = Settings(secret_key=SecretStr("Jm6nQ0-gGmS7c2jm1KlR3jPOjuwJ3h9n6XGbGUVJ6uM="))
    weak = settings.model_copy(update={"web_admin_password": SecretStr("password")})
    problem = weak.web_bind_problem("0.0.0.0")
    assert problem and "LEDGERPUSH_WEB_ADMIN_PASSWORD" in problem
    assert weak.web_bind_problem("127.0.0.1") is None
    assert weak.web_bind_problem("localhost") is None
    assert Settings().web_bind_problem("::1") is None


def test_connect_links_need_the_provider_app(monkeypatch: pytest.MonkeyPatch, api_key: str) -> None:
    from worker.cli import app
    from worker.providers.eaccounting.settings import provider_settings
    from worker.web.app import create_app

    monkeypatch.setattr(provider_settings(), "client_id", "")
    tenant_id = make_tenant()
    result = CliRunner().invoke(app, ["tenants", "connect-url", tenant_id])
    assert result.exit_code == 1 and "LEDGERPUSH_EACCOUNTING_CLIENT_ID" in result.output
    assert "http" not in result.stdout
    with TestClient(create_app(), follow_redirects=False) as client:
        page = client.get(
            f"/connect/eaccounting/{tenant_id}", headers={"Authorization": f"Bearer {api_key}"}
        )
    assert page.status_code == 503 and "LEDGERPUSH_EACCOUNTING_CLIENT_ID" in page.text


def test_compose_ships_no_usable_admin_password() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    value = compose["services"]["web"]["environment"]["LEDGERPUSH_WEB_ADMIN_PASSWORD"]
    assert value.startswith("${LEDGERPUSH_WEB_ADMIN_PASSWORD:?"), value


# --- the access log ----------------------------------------------------------------


def test_access_log_names_who_did_what_and_keeps_secrets_out(
    anon: TestClient, api_key: str, operator: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ledgerpush.access")
    code, state = "SECRET-CODE-4f1e2a", "SECRET-STATE-9b8c7d"
    anon.get(f"/connect/eaccounting/callback?code={code}&state={state}&x=visible")
    anon.get("/api/jobs?per_page=5", headers={"Authorization": f"Bearer {api_key}"})
    csrf = sign_in(anon, operator)
    anon.get("/jobs")
    records = [r for r in caplog.records if r.name == "ledgerpush.access"]
    lines = [r.getMessage() for r in records]
    key_name = next(r for r in records if "/api/jobs" in r.getMessage()).principal  # type: ignore[attr-defined]
    text = "\n".join(lines)
    for secret in (code, state, api_key, PASSWORD, csrf):
        assert secret not in text
    callback = next(line for line in lines if "/connect/eaccounting/callback" in line)
    assert "code=[redacted]" in callback and "state=[redacted]" in callback
    assert "x=visible" in callback and " 400 " in callback
    assert key_name.startswith("apikey:producer-")
    assert any(line.startswith(f"{key_name} GET /api/jobs?per_page=5 200 ") for line in lines)
    assert any(line.startswith(f"{operator} GET /jobs 200 ") for line in lines)
    assert any(line.startswith("- POST /login 303 ") for line in lines)
    record = next(r for r in records if r.getMessage().startswith(f"{operator} GET /jobs"))
    assert record.method == "GET" and record.status == 200  # type: ignore[attr-defined]
    assert record.duration_ms >= 0  # type: ignore[attr-defined]


def test_an_api_key_records_its_last_use_once_per_resolution() -> None:
    from worker.ledger import accounts as rows
    from worker.web.accounts import LAST_USED_RESOLUTION, identify_api_key

    key = create_api_key(unique("last-used"))
    prefix = key.split("_")[1]

    def last_used() -> Any:
        return next(r.last_used_at for r in rows.api_keys() if r.prefix == prefix)

    assert last_used() is None
    assert identify_api_key(key) is not None
    first = last_used()
    assert first is not None
    assert identify_api_key(key) is not None
    assert last_used() == first  # within the resolution: read only, nothing written
    assert LAST_USED_RESOLUTION.total_seconds() > 0
