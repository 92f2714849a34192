"""Write bodies as Visma.net ERP wants them: every scalar wrapped (`{"value": ...}`),
lines and applications with `"operation": "Insert"`, subaccounts as segment lists, dates
as date-times, and the job's idempotency key as `externalReference` / `paymentRef` so a
lookup can find what a lost answer wrote."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from worker.jobs import Customer, Line, Payment
from worker.providers.documents import Document

INSERT = "Insert"


def wrap(value: Any) -> dict[str, Any]:
    return {"value": value}


def date_time(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00"


def rounded(amount: Decimal, places: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def segments(text: str | None) -> list[dict[str, Any]] | None:
    """The mapping's `subaccount` ("1=0;2=100": segment id = value) as segment list."""
    if not text:
        return None
    found = []
    for part in text.split(";"):
        segment, _, value = part.partition("=")
        found.append({"segmentId": int(segment.strip()), "segmentValue": value.strip()})
    return found


@dataclass(frozen=True)
class LineRefs:
    """What one line refers to in Visma.net: its VAT category and article."""

    category: str
    article: str
    account: str | None


@dataclass(frozen=True)
class DocumentRefs:
    customer: str
    vat_zone: str
    branch: str
    period: str
    terms: str | None
    places: int
    lines: tuple[LineRefs, ...]
    subaccount: str | None = None


def line_body(line: Line, refs: LineRefs, subaccount: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "operation": INSERT,
        "inventoryNumber": wrap(refs.article),
        "description": wrap(line.description),
        "quantity": wrap(line.quantity),
        "unitPriceInCurrency": wrap(line.unit_price),
        "discountPercent": wrap(line.discount_percent),
        "vatCodeId": wrap(refs.category),
    }
    if refs.account is not None:
        body["accountNumber"] = wrap(refs.account)
    listed = segments(subaccount)
    if listed:
        body["subaccount"] = listed
    return body


def _header(document: Document, refs: DocumentRefs, key: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customerNumber": wrap(refs.customer),
        "documentDate": wrap(date_time(document["date"])),
        "currencyId": wrap(document["currency"]),
        "customerVatZoneId": wrap(refs.vat_zone),
        "branchNumber": wrap(refs.branch),
        "financialPeriod": wrap(refs.period),
        "externalReference": wrap(key),
        "hold": wrap(False),
    }
    if document["reference"]:
        body["customerRefNumber"] = wrap(document["reference"])
    if document["notes"]:
        body["note"] = wrap(document["notes"])
    return body


def invoice_body(document: Document, refs: DocumentRefs, key: str) -> dict[str, Any]:
    """CustomerInvoiceUpdateDto for POST /v2/customerinvoice."""
    body = _header(document, refs, key)
    body["documentDueDate"] = wrap(date_time(document["due"]))
    if refs.terms is not None:
        body["creditTermsId"] = wrap(refs.terms)
    body["invoiceLines"] = _lines(document, refs)
    return body


def credit_note_body(
    document: Document, refs: DocumentRefs, key: str, invoice: str | None, applied: Decimal
) -> dict[str, Any]:
    """CustomerCreditNoteUpdateDto for POST /v2/customerCreditNote; `applied` (gross, VAT
    included: the ERP does not derive it from net) goes to the invoice it credits."""
    body = _header(document, refs, key)
    body["lines"] = _lines(document, refs)
    if invoice is not None and applied > 0:
        body["applicationLines"] = [
            {"operation": INSERT, "documentType": wrap("Invoice"), "refNbr": wrap(invoice),
             "amountPaid": wrap(applied)}
        ]  # fmt: skip
    return body


def _lines(document: Document, refs: DocumentRefs) -> list[dict[str, Any]]:
    return [
        line_body(line, line_refs, refs.subaccount)
        for line, line_refs in zip(document["lines"], refs.lines, strict=True)
    ]


def gross_total(lines: list[Line], places: int) -> Decimal:
    """Lines' total with VAT, VAT reckoned per rate on the rounded line amounts."""
    by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        net = rounded(line.quantity * line.unit_price * (1 - line.discount_percent / 100), places)
        rate = line.vat_rate.normalize()
        by_rate[rate] = by_rate.get(rate, Decimal(0)) + net
    return sum(
        (net + rounded(net * rate / 100, places) for rate, net in by_rate.items()), Decimal(0)
    )


def customer_body(customer: Customer, vat_zone: str | None, terms: str | None) -> dict[str, Any]:
    """CustomerUpdateDto: the fields ledgerpush owns (creating sets the number too)."""
    address = customer.address
    given = {
        "addressLine1": address.line1,
        "addressLine2": address.line2,
        "postalCode": address.postal_code,
        "city": address.city,
        "countryId": customer.country,
    }
    main_address = {k: wrap(v) for k, v in given.items() if v is not None}
    body: dict[str, Any] = {
        "name": wrap(customer.name),
        "mainAddress": wrap(main_address),
        "invoiceAddress": wrap(main_address),
    }
    if customer.email:
        body["mainContact"] = wrap({"email": wrap(customer.email)})
    if customer.org_number:
        body["corporateId"] = wrap(customer.org_number)
    if customer.vat_number:
        body["vatRegistrationId"] = wrap(customer.vat_number)
    if vat_zone is not None:
        body["vatZoneId"] = wrap(vat_zone)
    if terms is not None:
        body["creditTermsId"] = wrap(terms)
    return body


def payment_body(
    payment: Payment, key: str, customer: str, invoice: str, method: str, cash_account: str,
    branch: str,
) -> dict[str, Any]:  # fmt: skip
    """PaymentUpdateDto applied to one released invoice; `paymentAmount` is the applied
    sum (the ERP checks the two against each other)."""
    body = {
        "type": wrap("Payment"),
        "customer": wrap(customer),
        "applicationDate": wrap(date_time(payment.payment_date)),
        "paymentMethod": wrap(method),
        "cashAccount": wrap(cash_account),
        "currency": wrap(payment.currency),
        "paymentAmount": wrap(payment.amount),
        "paymentRef": wrap(key),
        "branch": wrap(branch),
        "hold": wrap(False),
        "paymentLines": [
            {"operation": INSERT, "documentType": wrap("Invoice"), "refNbr": wrap(invoice),
             "amountPaid": wrap(payment.amount)}
        ],
    }  # fmt: skip
    if payment.reference:
        body["invoiceText"] = wrap(payment.reference)
    return body


def release_payment_body() -> dict[str, Any]:
    """ReleasePaymentActionDto, as ON-IT's client sends it."""
    return {"type": wrap("Payment")}
