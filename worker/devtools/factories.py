"""Job payloads for tests, benchmarks and the demo: one factory per kind of job.

Each builds the dict a producer sends (worker/jobs.py is the contract it meets): amounts
and quantities as decimal strings, dates as ISO 8601 strings. Whatever a caller leaves
out is a plausible Norwegian job: an invoice issued two days ago, due in two weeks, to
Nordic Tools AS for ten hours of consulting at 1200.00 with 25% VAT (12000.00 net,
15000.00 gross); credit notes and payments dated yesterday.

Production code never imports this module (`.importlinter`, the devtools contract).
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

Day = dt.date | str
Amount = Decimal | str

CURRENCY = {"NO": "NOK", "SE": "SEK", "DK": "DKK", "NL": "EUR", "FI": "EUR"}
#: The VAT rates of each country, standard first.
VAT_RATES = {
    "NO": ("25", "15", "12"),
    "SE": ("25", "12", "6"),
    "DK": ("25",),
    "NL": ("21", "9"),
    "FI": ("25.5", "14", "10"),
}
#: (postal code, city) of the numbered customers' addresses.
POSTAL_ADDRESS = {
    "NO": ("0155", "Oslo"),
    "SE": ("111 22", "Stockholm"),
    "DK": ("8000", "Aarhus"),
    "NL": ("3511 AB", "Utrecht"),
    "FI": ("00100", "Helsinki"),
}
#: The customer an invoice of the country goes to unless the caller names one.
DEFAULT_CUSTOMERS: dict[str, dict[str, Any]] = {
    "NO": {
        "external_id": "c-42",
        "name": "Nordic Tools AS",
        "country": "NO",
        "email": "ap@nordictools.no",
        "org_number": "912345678",
        "is_private_person": False,
        "address": {"line1": "Storgata 1", "postal_code": "0155", "city": "Oslo"},
    },
    "DK": {
        "external_id": "c-42",
        "name": "Havbryggen ApS",
        "country": "DK",
        "email": "faktura@havbryggen.dk",
        "org_number": "31415927",
        "is_private_person": False,
        "address": {"line1": "Havnegade 4", "postal_code": "8000", "city": "Aarhus C"},
    },
}


def days_from_today(days: int) -> dt.date:
    return dt.date.today() + dt.timedelta(days=days)


def line(
    description: str, quantity: str, unit_price: Amount, vat_rate: str, **fields: Any
) -> dict[str, Any]:
    """An invoice or credit-note line; `fields` adds the optional ones (discount_percent,
    article_number, account)."""
    return {
        "description": description,
        "quantity": quantity,
        "unit_price": str(unit_price),
        "vat_rate": vat_rate,
        **fields,
    }


def consulting_line() -> dict[str, Any]:
    """Ten hours at 1200.00 with 25% VAT: 12000.00 net, 15000.00 gross."""
    return line("Consulting, November", "10", "1200.00", "25", discount_percent="0")


def customer(
    external_id: str, name: str, country: str, address: tuple[str, str, str], **fields: Any
) -> dict[str, Any]:
    """A customer at `address` (line 1, postal code, city); `fields` adds the optional
    ones (email, org_number, vat_number, is_private_person)."""
    line1, postal_code, city = address
    return {
        "external_id": external_id,
        "name": name,
        "country": country,
        **fields,
        "address": {"line1": line1, "postal_code": postal_code, "city": city},
    }


def numbered_customer(country: str, number: int) -> dict[str, Any]:
    """Customer `number` of many in `country`, each its own external id (1000 + number)."""
    postal_code, city = POSTAL_ADDRESS[country]
    return customer(
        f"{1000 + number}",
        f"Customer {number} {country}",
        country,
        (f"Main street {number}", postal_code, city),
        email=f"ap{number}@example.com",
        is_private_person=False,
    )


def default_customer(country: str) -> dict[str, Any]:
    if country in DEFAULT_CUSTOMERS:
        return copy.deepcopy(DEFAULT_CUSTOMERS[country])
    return numbered_customer(country, 0)


def invoice_job(
    tenant_id: str,
    key: str,
    *,
    country: str = "NO",
    currency: str | None = None,
    customer: dict[str, Any] | None = None,
    lines: list[dict[str, Any]] | None = None,
    issue_date: Day | None = None,
    due_date: Day | None = None,
    your_reference: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An invoice to `customer` (the country's default customer unless given) in the
    country's currency; `fields` sets any other invoice field (notes, or a broken one)."""
    invoice: dict[str, Any] = {
        "issue_date": _iso(issue_date if issue_date is not None else days_from_today(-2)),
        "due_date": _iso(due_date if due_date is not None else days_from_today(14)),
        "currency": currency or CURRENCY[country],
        "customer": customer if customer is not None else default_customer(country),
        "lines": lines if lines is not None else [consulting_line()],
    }
    if your_reference is not None:
        invoice["your_reference"] = your_reference
    invoice.update(fields)
    return {"tenant_id": tenant_id, "idempotency_key": key, "kind": "invoice", "invoice": invoice}


def credit_note_job(
    tenant_id: str,
    key: str,
    original_key: str,
    *,
    issue_date: Day | None = None,
    reason: str | None = None,
    lines: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A credit note of the invoice sent as `original_key`: of `lines`, or of the whole
    invoice when there are none."""
    credit_note: dict[str, Any] = {
        "original_idempotency_key": original_key,
        "issue_date": _iso(issue_date if issue_date is not None else days_from_today(-1)),
    }
    if reason is not None:
        credit_note["reason"] = reason
    if lines is not None:
        credit_note["lines"] = lines
    return {
        "tenant_id": tenant_id,
        "idempotency_key": key,
        "kind": "credit_note",
        "credit_note": credit_note,
    }


def payment_job(
    tenant_id: str,
    key: str,
    invoice_key: str,
    amount: Amount,
    *,
    currency: str = "NOK",
    payment_date: Day | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    """A payment of `amount` against the invoice sent as `invoice_key`."""
    payment: dict[str, Any] = {
        "invoice_idempotency_key": invoice_key,
        "amount": str(amount),
        "currency": currency,
        "payment_date": _iso(payment_date if payment_date is not None else days_from_today(-1)),
    }
    if reference is not None:
        payment["reference"] = reference
    return {"tenant_id": tenant_id, "idempotency_key": key, "kind": "payment", "payment": payment}


def _iso(day: Day) -> str:
    return day if isinstance(day, str) else day.isoformat()
