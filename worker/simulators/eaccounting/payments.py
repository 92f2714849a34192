"""Payments registered against booked customer invoices (`InvoicePaymentApi`): checked
against the company's bank accounts and fiscal years, settling the remaining amount."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.simulators.eaccounting.drafts import ZERO
from worker.simulators.eaccounting.errors import ApiError, gone_message, invalid, invalid_field
from worker.simulators.eaccounting.seed import fiscal_year_for
from worker.simulators.eaccounting.state import MODELS, Company, money, utc_text
from worker.simulators.modelcheck import parse_datetime


def register_payment(
    company: Company, invoice: dict[str, Any], body: Any, now: datetime
) -> dict[str, Any]:
    clean, problems = MODELS.check("InvoicePaymentApi", body)
    if problems:
        raise invalid(problems)
    _check_payment_references(company, invoice, clean, now)
    settled = _settled_amount(invoice, clean)
    remaining: Decimal = invoice["RemainingAmountInvoiceCurrency"] - settled
    invoice["RemainingAmountInvoiceCurrency"] = remaining
    invoice["RemainingAmount"] = money(remaining * invoice["CurrencyRate"])
    invoice["PaymentDate"] = clean["PaymentDate"]
    invoice["PaymentStatus"] = 0 if remaining == 0 else 1
    invoice["ModifiedUtc"] = utc_text(now)
    record = dict(clean, Id=str(uuid.uuid4()), _SettledAmount=settled, _RegisteredUtc=utc_text(now))
    company.payments.setdefault(invoice["Id"], []).append(record)
    return clean


def _check_payment_references(
    company: Company, invoice: Mapping[str, Any], clean: Mapping[str, Any], now: datetime
) -> None:
    bank = company.find(company.bank_accounts, clean["CompanyBankAccountId"])
    if bank is None or not bank.get("IsActive"):
        problem = gone_message("BankAccount", str(clean["CompanyBankAccountId"]))
        raise invalid_field("CompanyBankAccountId", problem if bank is None else "is inactive.")
    if clean["PaymentCurrency"] != invoice["CurrencyCode"]:
        raise invalid_field(
            "PaymentCurrency", f"Must be the invoice currency {invoice['CurrencyCode']}."
        )
    payment_date = parse_datetime(clean["PaymentDate"])
    if payment_date.date() > now.date():
        raise invalid_field("PaymentDate", "Future dates cannot be set.")
    if fiscal_year_for(company, payment_date) is None:
        raise invalid_field("PaymentDate", "The date is not in a fiscal year.")


def _settled_amount(invoice: Mapping[str, Any], clean: Mapping[str, Any]) -> Decimal:
    remaining: Decimal = invoice["RemainingAmountInvoiceCurrency"]
    amount: Decimal = clean["PaymentAmount"]
    kind = clean["PaymentType"]
    if remaining == 0:
        raise ApiError(400, 4000, "The invoice is already fully paid.", error="ValidationError")
    if amount == 0 or (amount > 0) != (remaining > 0):
        sign = "positive" if remaining > 0 else "negative (a refund of a credit invoice)"
        raise invalid_field("PaymentAmount", f"Must be {sign}.")
    if kind == 3:
        if abs(remaining - amount) > 1:
            raise invalid_field("PaymentAmount", "A rounding payment may differ by at most 1.")
        return remaining
    settled = amount + (clean.get("BankFeeAmount", ZERO) if kind == 4 else ZERO) * (
        1 if remaining > 0 else -1
    )
    if kind == 2 and settled != remaining:
        raise invalid_field(
            "PaymentAmount", f"A complete payment must equal the remaining amount {remaining}."
        )
    if abs(settled) > abs(remaining):
        raise invalid_field("PaymentAmount", f"Exceeds the remaining amount {remaining}.")
    return settled


__all__ = ["register_payment"]
