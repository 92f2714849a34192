"""Schemathesis against the API's own OpenAPI document, in process (ASGI), with an API
key: whatever it generates, the API answers without a server error and with the
documented response shapes.

Each operation's cases come from Schemathesis's Hypothesis strategy under a plain
`@given`, rather than through `schemathesis.pytest.from_fixture`, whose test wrapper
relies on pytest internals that pytest 9.2 no longer has."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import unique
from worker.web.access import SCOPES
from worker.web.accounts import create_api_key

AUTH: dict[str, str] = {}
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema() -> Any:
    from worker.web.app import create_app

    AUTH["Authorization"] = f"Bearer {create_api_key(unique('schemathesis'), SCOPES)}"
    return schemathesis.openapi.from_asgi("/api/openapi.json", create_app(), headers=AUTH)


def api_operations(api_schema: Any) -> list[Any]:
    operations = []
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


def check_operation(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def answers(case: Any) -> None:
        response = case.call(headers=AUTH)
        case.validate_response(response, checks=CHECKS)

    answers()


def test_api_answers_without_server_errors(api_schema: Any) -> None:
    operations = api_operations(api_schema)
    assert len(operations) > 10, "the API document lists too few operations"
    for operation in operations:
        check_operation(operation)
