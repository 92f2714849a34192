"""Booked customer invoices: a draft converted or an invoice posted directly, credit
invoices linked to their original, and the invoice as served.

On booked invoices `TotalAmount` is in the company's currency and `TotalAmountInvoiceCurrency`
in the invoice's; booking takes the next invoice and voucher numbers of an open fiscal year.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.simulators.eaccounting.drafts import ZERO, due_date, row_amount_no_vat, terms_of
from worker.simulators.eaccounting.errors import invalid, invalid_field
from worker.simulators.eaccounting.seed import fiscal_year_for
from worker.simulators.eaccounting.state import MODELS, Company, date_text, money, utc_text
from worker.simulators.modelcheck import Violation, parse_datetime

#: What booking copies from a draft: the fields both models have (the rest is computed).
_COPIED_TO_INVOICE = sorted(
    MODELS.fields("CustomerInvoiceDraftApi").keys() & MODELS.fields("CustomerInvoiceApi").keys()
)
_COPIED_TO_INVOICE_ROW = sorted(
    MODELS.fields("CustomerInvoiceDraftRowApi").keys()
    & MODELS.fields("CustomerInvoiceRowApi").keys()
)


def convert_draft(
    company: Company, draft: dict[str, Any], body: Any, options: Mapping[str, bool], now: datetime
) -> dict[str, Any]:
    """Books a draft as a customer invoice; the caller removes the draft."""
    if body:
        _check_expectations(draft, body)
    if not draft["Rows"]:
        raise invalid_field("Rows", "An invoice must have at least one row.")
    draft = dict(draft)
    if not _keeps_draft_date(company, options):
        today = date_text(now)
        draft["InvoiceDate"] = today
        customer = company.find(company.customers.values(), draft["CustomerId"]) or {}
        draft["DueDate"] = date_text(due_date(parse_datetime(today), terms_of(company, customer)))
    return book(company, draft, now, draft_id=draft["Id"])


def _keeps_draft_date(company: Company, options: Mapping[str, bool]) -> bool:
    keep = options.get("keeporiginaldraftdate", False)
    if options.get("overridecompanykeeporiginaldraftdate", False):
        return keep
    return keep or bool(company.settings.get("KeepOriginalDraftDate"))


def _check_expectations(draft: Mapping[str, Any], body: Any) -> None:
    clean, problems = MODELS.check("CustomerInvoiceDraftValidationApi", body)
    if problems:
        raise invalid(problems)
    expected = {
        "TotalAmountInvoiceCurrency": draft["TotalAmount"],
        "TotalVatAmountInvoiceCurrency": draft["TotalVatAmount"],
        "TotalRoundingsInvoiceCurrency": draft["TotalRoundings"],
    }
    mismatches = [
        Violation(name, f"{name}: expected {clean[name]} but the draft has {actual}.")
        for name, actual in expected.items()
        if name in clean and clean[name] != actual
    ]
    mismatches.extend(_row_mismatches(draft, clean.get("Rows") or []))
    if mismatches:
        raise invalid(mismatches)


def _row_mismatches(
    draft: Mapping[str, Any], expected_rows: list[dict[str, Any]]
) -> list[Violation]:
    by_line = {row["LineNumber"]: row for row in draft["Rows"]}
    problems: list[Violation] = []
    for index, expected in enumerate(expected_rows):
        row = by_line.get(expected.get("LineNumber"))
        if row is None:
            name = f"Rows[{index}].LineNumber"
            problems.append(Violation(name, f"{name}: no row with that line number."))
            continue
        actual = _row_validation_amounts(row, bool(draft["IncludesVat"]))
        for key, value in actual.items():
            if key in expected and expected[key] != value:
                name = f"Rows[{index}].{key}"
                problems.append(
                    Violation(name, f"{name}: expected {expected[key]} but got {value}.")
                )
    return problems


def _row_validation_amounts(row: Mapping[str, Any], includes_vat: bool) -> dict[str, Decimal]:
    net = row_amount_no_vat(row, includes_vat)
    gross = row.get("_Line", ZERO) if includes_vat else net + money(net * row.get("_Rate", ZERO))
    return {"TotalAmountNoVatInvoiceCurrency": net, "TotalAmountIncVatInvoiceCurrency": gross}


def book(
    company: Company, draft: Mapping[str, Any], now: datetime, draft_id: str | None
) -> dict[str, Any]:
    invoice_date = parse_datetime(draft["InvoiceDate"])
    fiscal_year = fiscal_year_for(company, invoice_date)
    if fiscal_year is None or fiscal_year["IsLockedForAccounting"]:
        raise invalid_field(
            "InvoiceDate", f"{draft['InvoiceDate'][:10]} is not in an open fiscal year."
        )
    number = company.next_invoice_number
    company.next_invoice_number += 1
    invoice: dict[str, Any] = {key: draft.get(key) for key in _COPIED_TO_INVOICE}
    invoice.update(_booked_fields(company, draft, now, number, draft_id))
    company.invoices[str(invoice["Id"])] = invoice
    company.payments[str(invoice["Id"])] = []
    customer = company.find(company.customers.values(), draft["CustomerId"])
    if customer is not None:
        customer["LastInvoiceDate"] = draft["InvoiceDate"]
    return invoice


def _booked_fields(
    company: Company, draft: Mapping[str, Any], now: datetime, number: int, draft_id: str | None
) -> dict[str, Any]:
    rate: Decimal = draft["_CurrencyRate"]
    total: Decimal = draft["TotalAmount"]
    customer = company.find(company.customers.values(), draft["CustomerId"]) or {}
    voucher = company.next_voucher_number
    company.next_voucher_number += 1
    return {
        "Id": str(uuid.uuid4()),
        "InvoiceNumber": number,
        "CreatedFromDraftId": draft_id,
        "InvoiceDate": draft["InvoiceDate"],
        "DueDate": draft["DueDate"],
        "CurrencyCode": draft["InvoiceCurrencyCode"],
        "CurrencyRate": rate,
        "TotalAmount": draft["TotalAmountBaseCurrency"],
        "TotalVatAmount": draft["TotalVatAmountBaseCurrency"],
        "TotalRoundings": money(draft["TotalRoundings"] * rate),
        "TotalAmountInvoiceCurrency": total,
        "TotalVatAmountInvoiceCurrency": draft["TotalVatAmount"],
        "RemainingAmount": draft["TotalAmountBaseCurrency"],
        "RemainingAmountInvoiceCurrency": total,
        "SetOffAmountInvoiceCurrency": ZERO,
        "PaymentStatus": 1,
        "PaymentDate": None,
        "CreditedBy": [],
        "ReferringInvoiceId": draft.get("_ReferringInvoiceId"),
        "TermsOfPaymentId": draft.get("_TermsOfPaymentId") or terms_of(company, customer)["Id"],
        "CustomerEmail": customer.get("EmailAddress"),
        "VoucherNumber": f"F {voucher}",
        "VoucherId": str(uuid.uuid4()),
        "PaymentReferenceNumber": _payment_reference(company, number),
        "ReversedConstructionVatInvoicing": any(
            r.get("_Situation") == "domestic_reverse" for r in draft["Rows"]
        ),
        "SendType": 0,
        "IsSold": False,
        "IsNotDelivered": False,
        "PaymentReminderIssued": False,
        "HasAutoInvoiceError": False,
        "CreatedUtc": utc_text(now),
        "ModifiedUtc": utc_text(now),
        "Rows": [_invoice_row(row, bool(draft["IncludesVat"])) for row in draft["Rows"]],
        "VatSpecification": [dict(group) for group in draft["_VatSpecification"]],
        "Notes": list(draft.get("Notes") or []),
        "MessageThreads": [],
        "SalesDocumentAttachments": [],
    }


def _payment_reference(company: Company, number: int) -> str | None:
    if not company.settings.get("UsesPaymentReferenceNumber"):
        return None
    digits = str(number)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


def _invoice_row(row: Mapping[str, Any], includes_vat: bool) -> dict[str, Any]:
    invoice_row: dict[str, Any] = {key: row.get(key) for key in _COPIED_TO_INVOICE_ROW}
    invoice_row.update(
        Id=str(uuid.uuid4()),
        AmountNoVat=row_amount_no_vat(row, includes_vat),
        PercentVat=row.get("_Rate", ZERO),
        IsVatFree=row.get("_Rate", ZERO) == 0,
        _SalesAccount=row.get("_SalesAccount"),
        _Situation=row.get("_Situation"),
    )
    return invoice_row


def draft_body_from_invoice(clean: Mapping[str, Any]) -> dict[str, Any]:
    """A `CustomerInvoiceApi` body expressed as a draft, to reuse the draft's rules."""
    body = {k: v for k, v in clean.items() if k not in ("Rows", "CurrencyCode")}
    body["InvoiceCurrencyCode"] = clean.get("CurrencyCode")
    body["Rows"] = [
        {"IsTextRow": False, "ReversedConstructionServicesVatFree": False, **row}
        for row in clean.get("Rows") or []
    ]
    return body


def link_credit(company: Company, credit: dict[str, Any], original_id: str) -> None:
    original = company.find(company.invoices.values(), original_id)
    if original is None or original["IsCreditInvoice"]:
        raise invalid_field(
            "ReferringInvoiceId", f"No invoice '{original_id}' that can be credited."
        )
    if original["CustomerId"] != credit["CustomerId"]:
        raise invalid_field(
            "ReferringInvoiceId", "The credited invoice belongs to another customer."
        )
    credit["_ReferringInvoiceId"] = original["Id"]


def after_credit(company: Company, invoice: Mapping[str, Any]) -> None:
    original = company.find(company.invoices.values(), invoice.get("ReferringInvoiceId"))
    if original is not None:
        original["CreditedBy"].append({"CreditInvoiceId": invoice["Id"]})


def present_invoice(invoice: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The invoice as served: `PaymentStatus` 2 (overdue) once unpaid past its due date."""
    shown = dict(invoice)
    if shown["PaymentStatus"] == 1 and shown["DueDate"] < date_text(now):
        shown["PaymentStatus"] = 2
    return shown


__all__ = [
    "after_credit",
    "book",
    "convert_draft",
    "draft_body_from_invoice",
    "link_credit",
    "present_invoice",
]
