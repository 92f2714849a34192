"""Each error class from an answer in the shape the reference documents, with neutral
wording: the classifiers read status codes, ErrorCode / errorCode and annotated fields,
and the scopes endpoints.json lists, never the words of a message.

eAccounting (reference README): errors carry `ErrorCode`, `Error`/`DeveloperErrorMessage`,
`ErrorId`; 429 carries ErrorCode 4010. e-conomic (introduction.md, "Annotated errors"):
`message`, `developerHint`, `logId`, `httpStatusCode`, `errors` with per-property
`{"errors": [{"errorCode", "message", "value", "developerHint"}]}` and `arrayIndex`.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from worker.providers.base import (
    NeedsReauth,
    ReferenceStale,
    Rejected,
    Transient,
    Unsupported,
)
from worker.providers.eaccounting import client as eaccounting
from worker.providers.economic import errors as economic_errors

EA_API = "https://eaccountingapi.vismaonline.com/v2"
EC_API = "https://restapi.e-conomic.com"
NEUTRAL = "Lorem ipsum dolor sit amet"
SALES = frozenset({"ea:api", "offline_access", "ea:sales", "ea:accounting_readonly"})


def ea_answer(
    status: int, method: str, path: str, code: int = 4000, text: str = NEUTRAL, **headers: str
) -> httpx.Response:
    body = {"ErrorCode": code, "Error": "Xyz", "DeveloperErrorMessage": text,
            "ErrorId": str(uuid.uuid4())}  # fmt: skip
    request = httpx.Request(method, f"{EA_API}{path}")
    return httpx.Response(status, json=body, request=request, headers=headers)


def ec_answer(
    status: int, method: str, path: str, errors: dict[str, Any] | None = None, code: str = ""
) -> httpx.Response:
    body: dict[str, Any] = {"message": NEUTRAL, "developerHint": "Qwerty.",
                            "logId": str(uuid.uuid4()), "httpStatusCode": status,
                            "logTime": "2026-11-20T10:00:00"}  # fmt: skip
    if errors is not None:
        body["errors"] = errors
    if code:
        body["errorCode"] = code
    return httpx.Response(status, json=body, request=httpx.Request(method, f"{EC_API}{path}"))


def problem(code: str, value: Any = None) -> dict[str, Any]:
    item = {"errorCode": code, "message": NEUTRAL, "developerHint": "Qwerty."}
    return {"errors": [item if value is None else {**item, "value": value}]}


# ---------------------------------------------------------------- eAccounting


def test_ea_403_on_an_endpoint_the_consent_has_no_scope_for_is_a_missing_scope() -> None:
    answer = ea_answer(403, "GET", "/bankaccounts", code=4003)
    error = eaccounting.map_error(answer, granted=SALES)
    assert isinstance(error, NeedsReauth) and error.code == "missing_scope"
    # The scopes come from endpoints.json, not from the answer's text.
    assert "ea:purchase or ea:purchase_readonly" in error.message
    assert "GET /v2/bankaccounts" in error.message


def test_ea_403_not_provably_a_scope_problem_is_rejected_with_what_eaccounting_said() -> None:
    covered = ea_answer(403, "POST", "/customerinvoicedrafts", code=4003, text="ea:sales missing")
    for granted in (SALES, None):  # a scope the consent has; a consent whose scopes we lack
        error = eaccounting.map_error(covered, granted=granted)
        assert isinstance(error, Rejected) and error.code == "forbidden"
        assert "ea:sales missing" in error.message and "4003" in error.message


def test_ea_404_is_a_stale_reference_and_words_alone_make_nothing_stale() -> None:
    gone = eaccounting.map_error(ea_answer(404, "GET", "/articles/a-1", code=4004))
    assert isinstance(gone, ReferenceStale)
    worded = ea_answer(400, "POST", "/customerinvoicedrafts", text="CustomerId does not exist")
    assert isinstance(eaccounting.map_error(worded), Rejected)


def test_ea_401_429_and_5xx() -> None:
    assert isinstance(eaccounting.map_error(ea_answer(401, "GET", "/customers")), NeedsReauth)
    throttled = eaccounting.map_error(
        ea_answer(429, "GET", "/customers", code=4010, **{"Retry-After": "17"})
    )
    assert isinstance(throttled, Transient) and throttled.retry_after == 17
    assert isinstance(eaccounting.map_error(ea_answer(503, "GET", "/customers")), Transient)


def test_ea_400_is_rejected_with_the_text_kept() -> None:
    error = eaccounting.map_error(ea_answer(400, "POST", "/customerinvoicedrafts"))
    assert isinstance(error, Rejected) and NEUTRAL in error.message


# ---------------------------------------------------------------- e-conomic


def test_ec_reference_that_does_not_exist_is_stale_by_its_error_code() -> None:
    answer = ec_answer(400, "POST", "/invoices/drafts", {"customer": problem("E06000", 987)})
    error = economic_errors.map_error(answer)
    assert isinstance(error, ReferenceStale) and "customer 987" in error.message


def test_ec_scale_error_is_rejected_on_the_annotated_line_field() -> None:
    lines = [{"arrayIndex": 2, "unitNetPrice": problem("E04740", 10.12345)}]
    error = economic_errors.map_error(ec_answer(400, "POST", "/invoices/drafts", {"lines": lines}))
    assert isinstance(error, Rejected) and error.code == "400"
    assert [f["field"] for f in error.fields] == ["lines.2.unitNetPrice"]
    assert "E04740" in error.fields[0]["message"]


@pytest.mark.parametrize(
    ("status", "code", "kind", "ours"),
    [
        (401, "", NeedsReauth, "grant_revoked"),
        (403, "E01100", Unsupported, "module_missing"),
        # README: "a 401/403 on a grant token that used to work means the customer revoked it".
        (403, "", NeedsReauth, "grant_refused"),
        (429, "", Transient, "rate_limited"),
        (500, "", Transient, "provider_unavailable"),
        (404, "", ReferenceStale, "reference_stale"),
    ],
)
def test_ec_status_and_error_code(status: int, code: str, kind: type, ours: str) -> None:
    error = economic_errors.map_error(ec_answer(status, "GET", "/projects/1", code=code))
    assert isinstance(error, kind) and error.code == ours
