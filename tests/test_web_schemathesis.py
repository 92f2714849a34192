"""Schemathesis against the API's own OpenAPI document, in process (ASGI), with an API
key: whatever it generates, the API answers without a server error and with the
documented response shapes."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.conftest import unique
from worker.web.access import SCOPES
from worker.web.accounts import create_api_key

AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema() -> Any:
    from worker.web.app import create_app

    schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI writes OpenAPI 3.1
    AUTH["Authorization"] = f"Bearer {create_api_key(unique('schemathesis'), SCOPES)}"
    return schemathesis.from_asgi("/api/openapi.json", create_app(), headers=AUTH)


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_without_server_errors(case: Any) -> None:
    response = case.call_asgi(headers=AUTH)
    case.validate_response(response, checks=(not_a_server_error, response_schema_conformance))
