"""eAccounting's answers mapped to the error taxonomy (by status code and the scopes each
endpoint accepts), its field names mapped to our payload's, and the rate-limit key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from worker.ledger.models import Tenant
from worker.providers.base import NeedsReauth, ProviderError, ReferenceStale, Rejected, Transient
from worker.providers.eaccounting.settings import provider_settings
from worker.providers.http import retry_after_seconds
from worker.tenancy import tenants

#: A copy of the reference's endpoints.json (a test checks they are the same file).
ENDPOINTS_FILE = Path(__file__).parents[2] / "simulators" / "data" / "eaccounting_endpoints.json"
_ROW_FIELD = re.compile(r"Rows\[(\d+)\]\.(\w+)")
ROW_FIELDS = {
    "UnitPrice": "unit_price",
    "Quantity": "quantity",
    "Text": "description",
    "DiscountPercentage": "discount_percent",
    "ArticleId": "vat_rate",
}
DOCUMENT_FIELDS = {
    "InvoiceDate": "issue_date",
    "DueDate": "due_date",
    "YourReference": "your_reference",
    "InvoiceCurrencyCode": "currency",
    "CustomerId": "customer",
}
CUSTOMER_FIELDS = {
    "Name": "name",
    "InvoiceAddress1": "address.line1",
    "InvoiceAddress2": "address.line2",
    "InvoiceCity": "address.city",
    "InvoicePostalCode": "address.postal_code",
    "InvoiceCountryCode": "country",
    "EmailAddress": "email",
    "CorporateIdentityNumber": "org_number",
    "VatNumber": "vat_number",
    "CustomerNumber": "external_id",
}
PAYMENT_FIELDS = {
    "PaymentAmount": "amount",
    "PaymentDate": "payment_date",
    "PaymentCurrency": "currency",
    "Reference": "reference",
}


def rate_limit_key(client_id: str, tenant_id: str) -> str:
    """Visma counts 600 requests a minute "per client and endpoint"; the endpoint is added
    by ProviderHttp. LEDGERPUSH_EACCOUNTING_RATE_SCOPE=client shares one budget between
    all companies of the application."""
    if provider_settings().rate_scope == "client":
        return f"ea:{client_id}"
    return f"ea:{client_id}:{tenant_id}"


def _message(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300], str(response.status_code)
    if not isinstance(body, dict):
        return str(body)[:300], str(response.status_code)
    text = str(
        body.get("DeveloperErrorMessage") or body.get("Error") or body.get("Message") or body
    )
    return text, str(body.get("ErrorCode", response.status_code))


def map_error(
    response: httpx.Response, prefix: str = "invoice", granted: frozenset[str] | None = None
) -> ProviderError:
    """By status code and the scopes endpoints.json lists, never by the message's words
    (the reference fixes only the keys ErrorCode, Error/DeveloperErrorMessage and ErrorId,
    and one ErrorCode: 4010, throttled). `granted`: the scopes of the tenant's consent."""
    text, code = _message(response)
    original = f"HTTP {response.status_code} ErrorCode {code}: {text}"
    status = response.status_code
    if status == 401:
        return NeedsReauth(
            "eAccounting refused the access token even after a refresh", "token_refused", original
        )
    if status == 403:
        return _forbidden(response, granted, text, code, original)
    if status == 429:
        return Transient(
            "eAccounting rate limit hit",
            "rate_limited",
            original,
            retry_after=_retry_after(response, text),
        )
    if status >= 500:
        return Transient(f"eAccounting answered {status}", "provider_unavailable", original)
    if status == 404:
        # A path with an id we took from the cache (or a draft we wrote) that is not there.
        return ReferenceStale(
            "a cached eAccounting reference no longer exists", "reference_stale", original
        )
    return Rejected(
        f"eAccounting rejected the document: {text}", "rejected", original, fields_of(text, prefix)
    )


def _forbidden(
    response: httpx.Response, granted: frozenset[str] | None, text: str, code: str, original: str
) -> ProviderError:
    """Reference README: "A scope missing from the authorization request gives an
    authorization error for that area"; endpoints.json lists the scopes each endpoint
    accepts. It documents no ErrorCode or field that marks a 403 as a scope problem, so
    only a consent that provably lacks every scope the endpoint accepts is one (the
    customer must authorize again); any other 403 is reported as eAccounting said it,
    since re-authorizing would not change it."""
    request = response.request
    accepted = endpoint_scopes(request.method, request.url.path)
    if granted is not None and accepted and not granted & set(accepted):
        return NeedsReauth(
            f"missing scope {' or '.join(accepted)} ({request.method} "
            f"{_template(request.method, request.url.path)} needs it): the consent must be "
            "given again",
            "missing_scope",
            original,
        )
    return Rejected(f"eAccounting refused the request (403, ErrorCode {code}): {text}",
                    "forbidden", original)  # fmt: skip


def _endpoint_patterns() -> list[tuple[str, str, re.Pattern[str], tuple[str, ...]]]:
    """(method, template, pattern, accepted scopes) from the packaged endpoints.json, the
    most literal templates first so /customers/{id} does not shadow a fixed path."""
    raw = json.loads(ENDPOINTS_FILE.read_text(encoding="utf-8"))["endpoints"]
    found = []
    for item in raw:
        template = str(item["path"])
        parts = re.split(r"\{[^}]+\}", template)
        regex = "[^/]+".join(re.escape(part) for part in parts)
        found.append((str(item["method"]), template, re.compile(f"{regex}/?$", re.I),
                      tuple(item["scopes"])))  # fmt: skip
    found.sort(key=lambda e: e[1].count("{"))
    return found


_ENDPOINTS = _endpoint_patterns()


def _match(method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
    for known, template, pattern, scopes in _ENDPOINTS:
        if known == method and pattern.search(path):
            return template, scopes
    return None


def endpoint_scopes(method: str, path: str) -> tuple[str, ...]:
    """The scopes endpoints.json says the endpoint accepts (empty if it is not listed)."""
    found = _match(method, path)
    return found[1] if found else ()


def _template(method: str, path: str) -> str:
    found = _match(method, path)
    return found[0] if found else path


def _retry_after(response: httpx.Response, text: str) -> float:
    match = re.search(r"Try again in (\d+) seconds", text)
    return float(match.group(1)) if match else retry_after_seconds(response, 60)


def fields_of(text: str, prefix: str) -> list[dict[str, str]]:
    """Point eAccounting's field names at our payload's paths."""
    found: list[dict[str, str]] = []
    for match in _ROW_FIELD.finditer(text):
        index, name = match.groups()
        ours = ROW_FIELDS.get(name, name)
        found.append({"field": f"{prefix}.lines.{index}.{ours}", "message": text})
    for name, ours in {**DOCUMENT_FIELDS, **PAYMENT_FIELDS}.items():
        if re.search(rf"(?<![\w.\]]){name}\b", text):
            found.append({"field": f"{prefix}.{ours}", "message": text})
    for name, ours in CUSTOMER_FIELDS.items():
        if re.search(rf"(?<![\w.\]]){name}\b", text) and not any(
            f["field"].endswith(ours) for f in found
        ):
            found.append({"field": f"{prefix}.customer.{ours}", "message": text})
    return found


def granted_scopes(tenant: Tenant) -> frozenset[str] | None:
    """The scopes the tenant's consent gave (the token answer's `scope`); None if unknown."""
    scope = str(tenants.credentials_of(tenant).get("scope") or "")
    return frozenset(scope.split()) or None
