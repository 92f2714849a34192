"""The queue contract: every validation rule names the field and the rule."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import invoice_job
from worker.jobs import JobValidationError, job_id_for, job_schema, parse_job


def errors_of(payload: Any) -> dict[str, str]:
    with pytest.raises(JobValidationError) as caught:
        parse_job(payload)
    return {e.field: e.message for e in caught.value.errors}


def with_change(path: list[Any], value: Any, delete: bool = False) -> dict[str, Any]:
    job = copy.deepcopy(invoice_job("acme-no", "inv-1"))
    target = job
    for part in path[:-1]:
        target = target[part]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return job


def test_valid_invoice_parses_with_decimals() -> None:
    job = parse_job(invoice_job("acme-no", "inv-1"))
    assert job.kind == "invoice"
    assert str(job.invoice.lines[0].unit_price) == "1200.00"
    assert job.job_id == job_id_for("acme-no", "inv-1")


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (
            ["invoice", "lines", 0, "unit_price"],
            1200.5,
            "invoice.lines.0.unit_price",
            "decimal string",
        ),
        (["invoice", "lines", 0, "quantity"], "-1", "invoice.lines.0.quantity", "greater than 0"),
        (
            ["invoice", "lines", 0, "quantity"],
            "1.234",
            "invoice.lines.0.quantity",
            "decimal places",
        ),
        (
            ["invoice", "lines", 0, "vat_rate"],
            "125",
            "invoice.lines.0.vat_rate",
            "less than or equal",
        ),
        (["invoice", "lines"], [], "invoice.lines", "at least 1"),
        (["invoice", "currency"], "KRONER", "invoice.currency", "ISO 4217"),
        (["invoice", "currency"], "nok", "invoice.currency", "ISO 4217"),
        (["invoice", "issue_date"], "20.11.2026", "invoice.issue_date", "date"),
        (["invoice", "due_date"], "2026-02-30", "invoice.due_date", "date"),
        (["invoice", "customer", "name"], "x" * 51, "invoice.customer.name", "at most 50"),
        (["invoice", "customer", "country"], "Norway", "invoice.customer.country", "ISO 3166"),
        (["invoice", "lines", 0, "description"], "", "invoice.lines.0.description", "at least 1"),
        (["invoice", "your_reference"], "r" * 51, "invoice.your_reference", "at most 50"),
        (["tenant_id"], "Acme Corp", "tenant_id", "pattern"),
        (["idempotency_key"], "", "idempotency_key", "at least 1"),
    ],
)
def test_rule_is_named_with_field(path: list[Any], value: Any, field: str, words: str) -> None:
    errors = errors_of(with_change(path, value))
    assert field in errors, errors
    assert words in errors[field]


def test_unknown_field_rejected() -> None:
    job = invoice_job("acme-no", "inv-1")
    job["invoice"]["discount"] = "5"
    assert "Extra inputs" in errors_of(job)["invoice.discount"]


def test_missing_field_named() -> None:
    assert "invoice.customer" in errors_of(with_change(["invoice", "customer"], None, delete=True))


def test_due_date_before_issue_date() -> None:
    errors = errors_of(with_change(["invoice", "due_date"], "2026-11-01"))
    assert "due_date must not be before issue_date" in errors["invoice"]


def test_unknown_kind_named() -> None:
    assert "kind" in errors_of({"tenant_id": "a", "idempotency_key": "k", "kind": "refund"})


def test_payment_and_credit_note() -> None:
    pay = parse_job(
        {
            "tenant_id": "a",
            "idempotency_key": "pay-1",
            "kind": "payment",
            "payment": {
                "invoice_idempotency_key": "inv-1",
                "amount": "100.00",
                "currency": "EUR",
                "payment_date": "2026-11-21",
            },
        }
    )
    assert pay.kind == "payment"
    errors = errors_of(
        {
            "tenant_id": "a",
            "idempotency_key": "pay-1",
            "kind": "payment",
            "payment": {
                "invoice_idempotency_key": "inv-1",
                "amount": "0",
                "currency": "EUR",
                "payment_date": "2026-11-21",
            },
        }
    )
    assert "greater than 0" in errors["payment.amount"]
    credit = parse_job(
        {
            "tenant_id": "a",
            "idempotency_key": "cn-1",
            "kind": "credit_note",
            "credit_note": {"original_idempotency_key": "inv-1", "issue_date": "2026-11-22"},
        }
    )
    assert credit.kind == "credit_note"


def test_schema_describes_all_kinds() -> None:
    text = json.dumps(job_schema())
    for kind in ("InvoiceJob", "CreditNoteJob", "PaymentJob"):
        assert kind in text


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=20) | st.integers(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_fuzzed_payloads_never_crash(payload: Any) -> None:
    """Arbitrary JSON either parses or gives field errors; nothing else escapes."""
    try:
        parse_job(payload)
    except JobValidationError as exc:
        assert exc.errors and all(e.field and e.message for e in exc.errors)


@settings(max_examples=100, deadline=None)
@given(
    field=st.sampled_from(
        ["quantity", "unit_price", "vat_rate", "discount_percent", "description"]
    ),
    value=st.one_of(st.text(max_size=30), st.floats(), st.integers(), st.none()),
)
def test_fuzzed_line_values_name_the_line_field(field: str, value: Any) -> None:
    job = with_change(["invoice", "lines", 0, field], value)
    try:
        parse_job(job)
    except JobValidationError as exc:
        assert any(e.field.startswith(f"invoice.lines.0.{field}") for e in exc.errors), exc.errors
