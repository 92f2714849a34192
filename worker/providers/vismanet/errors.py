"""Visma.net ERP's error answers, turned into the error taxonomy.

The reference knows two JSON bodies: business and validation errors in the `message`
form (`"VismaId: <uuid>. Error creating document. Error: TaxCategoryID '0' cannot be
found in the system."`), and IPP exceptions (`ExceptionType`, `ExceptionMessage`,
`ExceptionFaultCode`, e.g. 12027 "No license for this company."). Categories come from
the status and the fault code; the text is read only for the form the reference quotes,
`<ERP field> '<value>' cannot be found in the system`, to point at our payload's field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from worker.providers.base import (
    NeedsReauth,
    ProviderError,
    ReferenceStale,
    Rejected,
    Transient,
)
from worker.providers.http import retry_after_seconds

#: docs fix401error: with the customer's tenant id the token is issued, every call is 401.
WRONG_TENANT = (
    "the tenant id is probably the customer (contract) tenant id, not the company tenant "
    "id: Visma Admin → Company → Configuration → Tenant id"
)
NO_LICENSE = "12027"
NO_COMPANY_CONTEXT = "12002"
_NOT_FOUND = re.compile(r"\b([A-Za-z]+) '([^']*)' cannot be found in the system")
#: ERP field ids (as the ERP's messages name them) -> our field below the document.
ERP_FIELDS = {
    "TaxCategoryID": "lines.vat_rate",
    "TaxZoneID": "customer.country",
    "InventoryID": "lines.article_number",
    "AccountID": "lines.account",
    "CuryID": "currency",
    "TermsID": "due_date",
    "FinPeriodID": "issue_date",
    "CustomerID": "customer.external_id",
    "BAccountID": "customer.external_id",
}
PAYMENT_FIELDS = {
    "AdjdRefNbr": "invoice_idempotency_key",
    "CuryID": "currency",
    "FinPeriodID": "payment_date",
    "CustomerID": "invoice_idempotency_key",
}


@dataclass(frozen=True)
class ErrorBody:
    text: str
    fault_code: str
    original: str


def error_body(response: httpx.Response) -> ErrorBody:
    """Either body form (or whatever came), with the text and the IPP fault code."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text[:300] or f"HTTP {status}"
        return ErrorBody(text, "", f"HTTP {status}: {text}")
    if not isinstance(body, dict):
        text = str(body)[:300]
        return ErrorBody(text, "", f"HTTP {status}: {text}")
    if "ExceptionMessage" in body or "ExceptionFaultCode" in body:
        text = str(body.get("ExceptionMessage") or "")
        code = str(body.get("ExceptionFaultCode") or "")
        kind = body.get("ExceptionType") or "exception"
        return ErrorBody(text, code, f"HTTP {status} {kind} {code}: {text}")
    text = str(body.get("message") or body.get("Message") or body)[:1000]
    return ErrorBody(text, "", f"HTTP {status}: {text}")


def fields_of(text: str, prefix: str) -> list[dict[str, str]]:
    """The fields a "<ERP field> '<value>' cannot be found in the system" names."""
    table = PAYMENT_FIELDS if prefix == "payment" else ERP_FIELDS
    found = []
    for match in _NOT_FOUND.finditer(text):
        ours = table.get(match.group(1))
        if ours is not None:
            found.append({"field": f"{prefix}.{ours}", "message": match.group(0)})
    return found


def map_error(response: httpx.Response, prefix: str = "invoice") -> ProviderError:
    status = response.status_code
    body = error_body(response)
    if status == 401:
        # The auth flow already asked for a new token once: a fresh token refused.
        return NeedsReauth(WRONG_TENANT, "wrong_tenant_id", body.original)
    if body.fault_code in (NO_LICENSE, NO_COMPANY_CONTEXT):
        return NeedsReauth(
            f"Visma.net refused the company (IPP {body.fault_code}: {body.text}); the API "
            "user lacks the API role, the licence expired, or " + WRONG_TENANT,
            "no_license",
            body.original,
        )
    if status == 403:
        return NeedsReauth(
            f"Visma.net refused the request (403): {body.text}; the app's approval for this "
            "company must grant the vismanet_erp_service_api scopes",
            "forbidden",
            body.original,
        )
    if status == 429:
        return Transient(
            "Visma.net rate limit hit", "rate_limited", body.original, retry_after=_wait(response)
        )
    if status >= 500 or status in (408, 412):
        # 412: the document changed since it was read; reading it again decides.
        return Transient(f"Visma.net answered {status}", "provider_unavailable", body.original)
    if status == 404:
        return ReferenceStale(
            f"a Visma.net reference no longer exists: {body.text}", "reference_stale", body.original
        )
    return Rejected(
        f"Visma.net rejected the request: {body.text}", "rejected", body.original,
        fields_of(body.text, prefix),
    )  # fmt: skip


def _wait(response: httpx.Response) -> float:
    if response.headers.get("Retry-After"):
        return retry_after_seconds(response, 60)
    reset = response.headers.get("X-RateLimit-Reset")
    try:
        return float(reset) if reset else 60.0
    except ValueError:
        return 60.0
