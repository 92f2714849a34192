"""One Visma.net company: reference data, customers, articles, customer documents
(invoices, credit notes), payments, and the status model that moves them:
Hold/Balanced --release--> Open --fully applied--> Closed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.simulators.vismanet import seed
from worker.simulators.vismanet.errors import business_error, cannot_be_found

ZERO = Decimal("0")


def wire_time(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


@dataclass
class Line:
    line_number: int
    inventory_number: str | None
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    vat_category: str
    vat_id: str
    vat_rate: Decimal
    vat_amount: Decimal
    account: str
    subaccount: list[dict[str, Any]]
    discount_percent: Decimal = ZERO


@dataclass
class Application:
    """An amount applied to one customer document (payment or credit-note line)."""

    document_type: str
    ref_nbr: str
    amount: Decimal


@dataclass
class Document:
    """A customer invoice or credit note."""

    kind: str  # "Invoice" or "CreditNote"
    number: str
    customer: str
    fields: dict[str, Any]
    lines: list[Line]
    hold: bool
    status: str
    created: datetime
    modified: datetime
    applications: list[Application] = field(default_factory=list)
    balance: Decimal = ZERO
    version: int = 1
    #: When a release answered "Queued" takes effect (simulator clock seconds).
    release_due: float | None = None

    @property
    def net_total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def vat_total(self) -> Decimal:
        return sum((line.vat_amount for line in self.lines), ZERO)

    @property
    def amount(self) -> Decimal:
        return self.net_total + self.vat_total

    @property
    def released(self) -> bool:
        return self.status in ("Open", "Closed")

    @property
    def etag(self) -> str:
        return f'"{self.kind}-{self.number}-{self.version}"'


@dataclass
class Payment:
    number: str
    type: str
    customer: str
    fields: dict[str, Any]
    lines: list[Application]
    amount: Decimal
    hold: bool
    status: str
    created: datetime
    modified: datetime
    version: int = 1

    @property
    def etag(self) -> str:
        return f'"Payment-{self.number}-{self.version}"'


class Company:
    """All data of one company tenant."""

    def __init__(self, tenant_id: str, name: str, now: datetime) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.licensed = True
        modified = wire_time(now)
        self.ref = seed.reference_data(name, now.year, modified)
        self.articles = seed.articles(modified)
        self.customers: dict[str, dict[str, Any]] = {}
        self.documents: dict[tuple[str, str], Document] = {}
        self.payments: dict[str, Payment] = {}
        self._counters = {
            key: itertools.count(int(start)) for key, (_, start) in seed.NUMBER_SERIES.items()
        }
        self._internal_ids = itertools.count(1)
        for number, name_, corporate_id, zone, terms in seed.CUSTOMERS:
            self.put_customer(number, {"name": name_, "corporateId": corporate_id,
                                       "vatZoneId": zone, "creditTermsId": terms}, now)  # fmt: skip
            next(self._counters["CUSTOMER"])

    # ------------------------------------------------------------ numbering

    def next_number(self, series: str, taken: Any) -> str:
        while True:
            candidate = str(next(self._counters[series]))
            if candidate not in taken:
                return candidate

    # ------------------------------------------------------------ customers

    def put_customer(self, number: str, values: dict[str, Any], now: datetime) -> dict[str, Any]:
        existing = self.customers.get(number)
        record = existing or {
            "internalId": next(self._internal_ids),
            "number": number,
            "status": "Active",
            "createdDateTime": wire_time(now),
            "vatZone": {"id": "01", "description": seed.VAT_ZONES["01"][0]},
            "creditTerms": {"id": "14", "description": "14 dager netto"},
            "currencyId": "NOK",
            "timeStamp": "0",
        }
        for name, value in values.items():
            if name == "vatZoneId":
                record["vatZone"] = {"id": value, "description": seed.VAT_ZONES[value][0]}
            elif name == "creditTermsId":
                record["creditTerms"] = {
                    "id": value,
                    "description": self.ref["creditTerm"][value]["description"],
                }
            else:
                record[name] = value
        record["lastModifiedDateTime"] = wire_time(now)
        record["timeStamp"] = str(int(record["timeStamp"]) + 1)
        self.customers[number] = record
        return record

    def customer(self, number: str, action: str) -> dict[str, Any]:
        record = self.customers.get(number)
        if record is None:
            raise business_error(action, cannot_be_found("Customer", number))
        return record

    # ------------------------------------------------------------ documents

    def document(self, kind: str, number: str) -> Document | None:
        return self.documents.get((kind, number))

    def open_document(self, document_type: str, ref_nbr: str, customer: str) -> Document | None:
        """A released, not yet closed document of this customer that can take an application."""
        found = self.documents.get((document_type, ref_nbr))
        if found is None or found.customer != customer or found.status != "Open":
            return None
        return found

    def release(self, document: Document) -> list[Document]:
        """Post a document: Open, balance = amount; a credit note applies its lines.
        Returns every document whose status changed."""
        document.status = "Open"
        document.balance = document.amount
        document.release_due = None
        changed = [document]
        if document.kind == "CreditNote":
            for application in document.applications:
                target = self.documents[(application.document_type, application.ref_nbr)]
                changed += self.apply(target, application.amount, document)
        return changed

    def apply(self, target: Document, amount: Decimal, source: Document | None) -> list[Document]:
        target.balance -= amount
        if source is not None:
            source.balance -= amount
        changed = []
        for doc in (target, source):
            if doc is not None and doc.balance <= ZERO and doc.status == "Open":
                doc.status = "Closed"
                doc.version += 1
                changed.append(doc)
        target.version += 1
        return changed

    def release_payment(self, payment: Payment, now: datetime) -> list[Document]:
        """Post a payment and apply its lines; the documents it closes are returned."""
        for line in payment.lines:
            target = self.documents.get((line.document_type, line.ref_nbr))
            if target is None or target.status != "Open" or line.amount > target.balance:
                raise business_error(
                    "releasing payment", cannot_be_found("AdjdRefNbr", line.ref_nbr)
                )
        changed: list[Document] = []
        for line in payment.lines:
            target = self.documents[(line.document_type, line.ref_nbr)]
            target.modified = now
            changed += self.apply(target, line.amount, None)
        applied = sum((line.amount for line in payment.lines), ZERO)
        payment.status = "Closed" if applied >= payment.amount else "Open"
        payment.modified = now
        payment.version += 1
        return changed
