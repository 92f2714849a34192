"""Fixtures for the web tests (a pytest plugin: `pytest_plugins = ["tests.web_fixtures"]`):
an operator, an API key, anonymous, signed-in and API-key clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import unique
from tests.web_helpers import PASSWORD, sign_in
from worker.web.access import ADMIN, SCOPES
from worker.web.accounts import add_user, create_api_key


@pytest.fixture
def operator() -> str:
    """A dashboard user who may do everything (roles: tests/test_access.py)."""
    name = unique("op")
    add_user(name, PASSWORD, role=ADMIN)
    return name


@pytest.fixture
def anon() -> Iterator[TestClient]:
    from worker.web.app import create_app

    with TestClient(create_app(), follow_redirects=False) as client:
        yield client


@pytest.fixture
def browser_client(anon: TestClient, operator: str) -> tuple[TestClient, str]:
    """A client with a signed-in session, and its CSRF token."""
    return anon, sign_in(anon, operator)


@pytest.fixture
def api_key() -> str:
    """A key with every scope (scopes: tests/test_access.py)."""
    return create_api_key(unique("producer"), SCOPES)


@pytest.fixture
def api(api_key: str) -> Iterator[TestClient]:
    from worker.web.app import create_app

    headers = {"Authorization": f"Bearer {api_key}"}
    with TestClient(create_app(), headers=headers, follow_redirects=False) as client:
        yield client
