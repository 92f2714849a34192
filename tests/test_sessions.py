"""Dashboard sessions follow the account: removing a user or setting their password ends
every open session of that user at once (not only at the next sign-in), and a role
change applies to sessions already open. Real Redis, the real app, the real CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from tests.conftest import unique
from tests.web_helpers import PASSWORD, make_job, make_tenant, sign_in
from worker.cli import app as cli_app
from worker.transport.redis_client import get_redis
from worker.web.accounts import add_user
from worker.web.auth import SESSION_COOKIE

pytest_plugins = ["tests.web_fixtures"]


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli_app, list(args), input=stdin)


@pytest.fixture
def clients() -> Iterator[tuple[TestClient, TestClient]]:
    """Two browsers (two separate cookie jars) on the same app."""
    from worker.web.app import create_app

    web = create_app()
    with (
        TestClient(web, follow_redirects=False) as first,
        TestClient(web, follow_redirects=False) as second,
    ):
        yield first, second


def signed_in(client: TestClient) -> bool:
    response = client.get("/jobs")
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login")
        return False
    assert response.status_code == 200, response.status_code
    return True


def session_keys(username: str) -> set[bytes]:
    return get_redis().smembers(f"lp:web:user-sessions:{username}")  # type: ignore[return-value]


def test_removing_a_user_ends_their_open_sessions(
    clients: tuple[TestClient, TestClient],
) -> None:
    name = unique("op")
    add_user(name, PASSWORD)
    first, second = clients
    sign_in(first, name)
    sign_in(second, name)
    keys = session_keys(name)
    assert len(keys) == 2

    result = run("users", "remove", name)

    assert result.exit_code == 0, result.output
    assert "2 open sessions ended" in result.output
    assert not signed_in(first) and not signed_in(second)
    assert not any(get_redis().exists(key) for key in keys)
    # An account of the same name made later does not revive the old sessions.
    add_user(name, PASSWORD)
    assert not signed_in(first)


def test_a_new_password_ends_the_users_sessions_but_no_one_elses(
    clients: tuple[TestClient, TestClient],
) -> None:
    name, other = unique("op"), unique("op")
    add_user(name, PASSWORD)
    add_user(other, PASSWORD)
    first, second = clients
    sign_in(first, name)
    sign_in(second, other)

    result = run("users", "set-password", name, "--password-stdin", stdin="a-new-password\n")

    assert result.exit_code == 0, result.output
    assert "1 open session ended" in result.output
    assert not signed_in(first)
    assert signed_in(second)
    sign_in(first, name, "a-new-password")
    assert signed_in(first)


def test_signing_out_drops_the_session_from_the_users_list(anon: TestClient) -> None:
    name = unique("op")
    add_user(name, PASSWORD)
    csrf = sign_in(anon, name)
    assert len(session_keys(name)) == 1

    anon.post("/logout", data={"csrf_token": csrf})

    assert session_keys(name) == set()
    assert anon.cookies.get(SESSION_COOKIE) is None or not signed_in(anon)


def test_a_role_change_applies_to_open_sessions(anon: TestClient) -> None:
    job = make_job(make_tenant(), "failed")
    name = unique("viewer")
    add_user(name, PASSWORD, role="viewer")
    csrf = sign_in(anon, name)
    retry = f"/jobs/{job.id}/retry"
    assert anon.post(retry, data={"csrf_token": csrf}).status_code == 403

    assert run("users", "set-role", name, "operator").exit_code == 0

    assert anon.post(retry, data={"csrf_token": csrf}).status_code != 403
    assert run("users", "set-role", name, "viewer").exit_code == 0
    assert anon.post(retry, data={"csrf_token": csrf}).status_code == 403


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example"])
def test_sign_in_does_not_redirect_to_another_site_through_control_characters(
    anon: TestClient, target: str
) -> None:
    name = unique("op")
    add_user(name, PASSWORD)
    page = anon.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token

    response = anon.post(
        "/login",
        data={"username": name, "password": PASSWORD, "csrf_token": token.group(1), "next": target},
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_a_session_started_before_the_per_user_list_is_ended_too(anon: TestClient) -> None:
    name = unique("op")
    add_user(name, PASSWORD)
    sign_in(anon, name)
    get_redis().delete(f"lp:web:user-sessions:{name}")  # as before an upgrade
    assert signed_in(anon)  # a request lists it again

    assert (
        run("users", "set-password", name, "--password-stdin", stdin="x-new-password\n").exit_code
        == 0
    )

    assert not signed_in(anon)
