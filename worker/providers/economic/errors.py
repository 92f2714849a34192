"""e-conomic's error answers, turned into the error taxonomy.

A 400 carries "annotated errors": a copy of the request's shape where each failing
property holds `{"errors": [{"errorCode", "message", ...}]}` and array items carry their
`arrayIndex` (introduction.md, "Annotated errors"). `map_error` flattens that into
dotted API paths (`lines.0.unitNetPrice`); `translate` points those paths at our
payload's fields (`invoice.lines.0.unit_price`) with a table per kind of request.

Status alone does not tell the categories apart: a revoked grant is a 401, a module the
agreement lacks is a 403 with errorCode E01100, any other 403 is missing rights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from worker.providers.base import (
    NeedsReauth,
    ProviderError,
    ReferenceStale,
    Rejected,
    Transient,
    Unsupported,
)
from worker.providers.http import retry_after_seconds

NOT_EXIST = "E06000"
ALREADY_EXISTS = "E06010"
MODULE = "E01100"
MODULE_PROPERTY = "E06100"
_MODULE_NAMED = re.compile(r"\b(Projects|Inventory|Departments|Subscriptions|Scanning)\b")
_MODULE_OF_PATH = {
    "/projects": "Projects",
    "/departmental-distributions": "Departments",
    "/subscriptions": "Subscriptions",
}
_INDEX = re.compile(r"\.(\d+)(?=\.|$)")

# API path (array indexes as {i}) -> our path below the document ("invoice" / "credit_note").
DRAFT_FIELDS = {
    "date": "issue_date",
    "dueDate": "due_date",
    "currency": "currency",
    "exchangeRate": "currency",
    "customer": "customer.external_id",
    "recipient.name": "customer.name",
    "recipient.address": "customer.address.line1",
    "recipient.zip": "customer.address.postal_code",
    "recipient.city": "customer.address.city",
    "recipient.country": "customer.country",
    "recipient.vatZone": "customer.country",
    "paymentTerms": "due_date",
    "notes.heading": "your_reference",
    "notes.textLine1": "notes",
    "lines": "lines",
    "lines.{i}": "lines.{i}",
    "lines.{i}.description": "lines.{i}.description",
    "lines.{i}.quantity": "lines.{i}.quantity",
    "lines.{i}.unitNetPrice": "lines.{i}.unit_price",
    "lines.{i}.discountPercentage": "lines.{i}.discount_percent",
    "lines.{i}.product": "lines.{i}.vat_rate",
    "lines.{i}.unit": "lines.{i}.vat_rate",
    "references.other": "/idempotency_key",
}
CUSTOMER_FIELDS = {
    "customerNumber": "customer.external_id",
    "name": "customer.name",
    "address": "customer.address.line1",
    "zip": "customer.address.postal_code",
    "city": "customer.address.city",
    "country": "customer.country",
    "email": "customer.email",
    "corporateIdentificationNumber": "customer.org_number",
    "vatNumber": "customer.vat_number",
    "currency": "currency",
    "vatZone": "customer.country",
    "paymentTerms": "due_date",
}
_ENTRY = "entries.customerPayments.{i}"
VOUCHER_FIELDS = {
    "accountingYear": "payment_date",
    f"{_ENTRY}.amount": "amount",
    f"{_ENTRY}.date": "payment_date",
    f"{_ENTRY}.currency": "currency",
    f"{_ENTRY}.customer": "invoice_idempotency_key",
    f"{_ENTRY}.customerInvoice": "invoice_idempotency_key",
    f"{_ENTRY}.text": "/idempotency_key",
}
# Booking refuses a draft with rule errors on `draftInvoice`; the message says why.
BOOKING_REASONS = (
    ("accounting year", "issue_date"),
    ("customer", "customer.external_id"),
    ("product", "lines"),
)


@dataclass(frozen=True)
class Issue:
    path: str
    code: str
    message: str
    value: Any = None


def issues_of(errors: Any, path: tuple[str, ...] = ()) -> list[Issue]:
    """Flatten an annotated `errors` document into (dotted path, code, message)."""
    found: list[Issue] = []
    if isinstance(errors, list):
        for position, item in enumerate(errors):
            if isinstance(item, dict):
                index = str(item.get("arrayIndex", position))
                rest = {k: v for k, v in item.items() if k != "arrayIndex"}
                found.extend(issues_of(rest, (*path, index)))
        return found
    if not isinstance(errors, dict):
        return found
    for key, value in errors.items():
        if key == "errors" and isinstance(value, list):
            for error in value:
                if isinstance(error, dict):
                    found.append(
                        Issue(
                            ".".join(path) or "(document)",
                            str(error.get("errorCode", "")),
                            str(error.get("message", "")),
                            error.get("value"),
                        )
                    )
        else:
            found.extend(issues_of(value, (*path, key)))
    return found


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"message": response.text[:300]}
    return body if isinstance(body, dict) else {"message": str(body)[:300]}


def _module(message: str, path: str) -> str:
    named = _MODULE_NAMED.search(message)
    if named:
        return named.group(1)
    for prefix, module in _MODULE_OF_PATH.items():
        if path.startswith(prefix):
            return module
    return "unknown"


def map_error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    body = _body(response)
    code = str(body.get("errorCode") or status)
    message = str(body.get("message") or f"HTTP {status}")
    issues = issues_of(body.get("errors"))
    details = "; ".join(f"{i.path}: {i.code} {i.message}" for i in issues)
    original = f"HTTP {status} {code}: {message}" + (f" [{details}]" if details else "")
    module_issue = next((i for i in issues if i.code == MODULE_PROPERTY), None)
    if status == 401:
        return NeedsReauth(
            "grant revoked: e-conomic no longer accepts the agreement grant token; "
            "the customer must install the app again",
            "grant_revoked",
            original,
        )
    if (status == 403 and code == MODULE) or module_issue:
        text = module_issue.message if module_issue else message
        module = _module(text, response.request.url.path)
        return Unsupported(
            f"module_missing: {module} (the e-conomic agreement lacks the {module} module; "
            "the customer must add it to the subscription)",
            "module_missing",
            original,
        )
    if status == 403:
        return NeedsReauth(
            "e-conomic refused the grant (403): it lacks the rights this needs; "
            "the customer must install the app again",
            "grant_refused",
            original,
        )
    if status == 429:
        return Transient(
            "e-conomic fair-use limit reached",
            "rate_limited",
            original,
            retry_after=retry_after_seconds(response, 60),
        )
    if status >= 500:
        return Transient(f"e-conomic answered {status}", "provider_unavailable", original)
    missing = [i for i in issues if i.code == NOT_EXIST]
    if status == 404 or missing:
        what = ", ".join(f"{i.path} {i.value}" for i in missing) or message
        return ReferenceStale(
            f"a cached e-conomic reference no longer exists: {what}", "reference_stale", original
        )
    if status == 405:
        return Rejected(
            f"e-conomic refused the change: {message} (booked invoices cannot be changed)",
            "immutable",
            original,
        )
    return Rejected(
        f"e-conomic rejected the request: {details or message}",
        code,
        original,
        [{"field": i.path, "message": f"{i.message} ({i.code})"} for i in issues],
    )


def translate(
    fields: list[dict[str, str]], table: Mapping[str, str], prefix: str
) -> list[dict[str, str]]:
    """API paths -> our payload's paths; `/x` in the table is a top-level field, and a
    path the table does not know is reported on the document as a whole."""
    mapped: list[dict[str, str]] = []
    for item in fields:
        api_path = item["field"]
        index = _INDEX.search(api_path)
        pattern = _INDEX.sub(".{i}", api_path)
        ours = table.get(pattern) or table.get(pattern.rsplit(".", 1)[0])
        if ours is None and api_path == "draftInvoice":
            text = item["message"].lower()
            ours = next((f for word, f in BOOKING_REASONS if word in text), None)
        if ours is None:
            mapped.append({"field": prefix, "message": f"{api_path}: {item['message']}"})
            continue
        if index:
            ours = ours.replace("{i}", index.group(1))
        field = ours[1:] if ours.startswith("/") else f"{prefix}.{ours}"
        mapped.append({"field": field, "message": item["message"]})
    return mapped
