"""Read models: documents, payments and customers as the API returns them (plain values,
nested `{id, description}` / `{number, name}` objects, camelCase names)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from worker.simulators.vismanet.state import Company, Document, Line, Payment, wire_time


def _line(line: Line) -> dict[str, Any]:
    return {
        "lineNumber": line.line_number,
        "inventoryNumber": line.inventory_number,
        "description": line.description,
        "quantity": line.quantity,
        "unitPriceInCurrency": line.unit_price,
        "unitPrice": line.unit_price,
        "discountPercent": line.discount_percent,
        "amountInCurrency": line.amount,
        "amount": line.amount,
        "account": {"number": line.account},
        "subaccount": {"subaccountNumber": "-".join(s["segmentValue"] for s in line.subaccount)},
        "vatCode": {"id": line.vat_category},
    }


def document(company: Company, doc: Document) -> dict[str, Any]:
    customer = company.customers.get(doc.customer, {})
    f = doc.fields
    currency = f["currencyId"]
    body: dict[str, Any] = {
        "documentType": doc.kind,
        "referenceNumber": doc.number,
        "status": doc.status,
        "hold": doc.hold,
        "customer": {"number": doc.customer, "name": customer.get("name", "")},
        "documentDate": f["documentDate"],
        "documentDueDate": f.get("documentDueDate"),
        "origInvoiceDate": f["documentDate"],
        "financialPeriod": f["financialPeriod"],
        "postPeriod": f["financialPeriod"][4:] + f["financialPeriod"][:4],
        "closedFinancialPeriod": f["financialPeriod"] if doc.released else None,
        "currencyId": currency,
        "exchangeRate": 1,
        "customerVatZone": {"id": f["vatZone"]},
        "creditTerms": {"id": f.get("creditTermsId")},
        "paymentMethod": {"id": f.get("paymentMethodId")},
        "branchNumber": {"number": f.get("branchNumber", "1")},
        "externalReference": f.get("externalReference"),
        "customerRefNumber": f.get("customerRefNumber"),
        "paymentReference": f.get("paymentReference"),
        "invoiceText": f.get("invoiceText"),
        "note": f.get("note"),
        "detailTotal": doc.net_total,
        "detailTotalInCurrency": doc.net_total,
        "vatTaxableTotal": doc.net_total,
        "vatTaxableTotalInCurrency": doc.net_total,
        "vatTotal": doc.vat_total,
        "vatTotalInCurrency": doc.vat_total,
        "amount": doc.amount,
        "amountInCurrency": doc.amount,
        "balance": doc.balance if doc.released else doc.amount,
        "balanceInCurrency": doc.balance if doc.released else doc.amount,
        "roundingDiff": 0,
        "createdDateTime": wire_time(doc.created),
        "lastModifiedDateTime": wire_time(doc.modified),
        "timeStamp": str(doc.version),
        "taxDetails": _tax_details(doc),
        "applications": [
            {"docType": a.document_type, "refNbr": a.ref_nbr, "amountPaid": a.amount}
            for a in doc.applications
        ],
    }
    body["invoiceLines" if doc.kind == "Invoice" else "lines"] = [_line(x) for x in doc.lines]
    return body


def _tax_details(doc: Document) -> list[dict[str, Any]]:
    by_vat: dict[str, dict[str, Any]] = {}
    for line in doc.lines:
        entry = by_vat.setdefault(
            line.vat_id,
            {
                "vatId": {"number": line.vat_id},
                "vatRate": line.vat_rate,
                "taxableAmount": 0,
                "vatAmount": 0,
            },
        )
        entry["taxableAmount"] += line.amount
        entry["vatAmount"] += line.vat_amount
    return list(by_vat.values())


def payment(company: Company, pay: Payment) -> dict[str, Any]:
    customer = company.customers.get(pay.customer, {})
    f = pay.fields
    applied = sum((line.amount for line in pay.lines if pay.status != "Balanced"), 0)
    return {
        "type": pay.type,
        "refNbr": pay.number,
        "status": pay.status,
        "hold": pay.hold,
        "customer": {"number": pay.customer, "name": customer.get("name", "")},
        "applicationDate": f.get("applicationDate"),
        "applicationPeriod": f.get("applicationPeriod"),
        "paymentRef": f.get("paymentRef"),
        "paymentMethod": {"id": f.get("paymentMethod")},
        "cashAccount": f.get("cashAccount"),
        "currency": f.get("currency", "NOK"),
        "branch": {"number": f.get("branch", "1")},
        "invoiceText": f.get("invoiceText"),
        "paymentAmount": pay.amount,
        "paymentAmountInCurrency": pay.amount,
        "availableBalance": pay.amount - applied,
        "availableBalanceInCurrency": pay.amount - applied,
        "lastModifiedDateTime": wire_time(pay.modified),
        "timeStamp": str(pay.version),
        "paymentLines": [
            {
                "documentType": line.document_type,
                "refNbr": line.ref_nbr,
                "amountPaid": line.amount,
                "balance": _balance(company, line.document_type, line.ref_nbr),
                "cashDiscountTaken": 0,
                "balanceWriteOff": 0,
                "currency": f.get("currency", "NOK"),
            }
            for line in pay.lines
        ],
    }


def _balance(company: Company, document_type: str, ref_nbr: str) -> Any:
    doc = company.document(document_type, ref_nbr)
    return None if doc is None else doc.balance


def to_json(payload: Any) -> bytes:
    return json.dumps(payload, default=_plain, ensure_ascii=False, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        whole = isinstance(exponent, int) and exponent >= 0
        return int(value) if whole else float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
