"""Write bodies -> state: checks a body against models.json (every scalar wrapped in
`{"value": ...}`), keeps only lines marked `"operation": "Insert"` (others are dropped, as
the ERP does), applies the ERP's screen rules (mandatory fields, VAT zone x VAT category,
closed periods, payment amounts) and builds documents, payments and customers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from worker.simulators.vismanet import seed
from worker.simulators.vismanet.contract import check_body
from worker.simulators.vismanet.errors import business_error, cannot_be_found
from worker.simulators.vismanet.state import (
    ZERO,
    Application,
    Company,
    Document,
    Line,
    Payment,
)


def unwrap(value: Any) -> Any:
    """`{"value": x}` -> x, recursively; other objects and lists keep their shape."""
    if isinstance(value, dict):
        if set(value) == {"value"}:
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def parse(model: str, body: Any, action: str) -> dict[str, Any]:
    """The body checked against `model`, wrappers removed (canonical field names)."""
    clean, problems = check_body(model, body)
    if problems:
        details = "; ".join(_wording(p.field, p.message) for p in problems)
        raise business_error(action, details)
    values = unwrap(clean)
    assert isinstance(values, dict)
    return values


def _wording(field: str, message: str) -> str:
    if message.endswith(" must be a JSON object."):
        name = field.rstrip(".")
        return f'The field {name} must be an object of the form {{"value": ...}}.'
    return message


def inserted(lines: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [line for line in lines or [] if line.get("operation") == "Insert"]


def merge_lines(
    current: list[dict[str, Any]], changes: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Line operations of an update: Insert appends, Update/Delete address `lineNumber`."""
    merged = list(current)
    for change in changes or []:
        operation = change.get("operation")
        number = change.get("lineNumber")
        index = next((i for i, x in enumerate(merged) if x.get("lineNumber") == number), None)
        if operation == "Insert":
            merged.append(change)
        elif operation == "Update" and index is not None:
            merged[index] = {**merged[index], **change}
        elif operation == "Delete" and index is not None:
            merged.pop(index)
    for position, line in enumerate(merged, start=1):
        line["lineNumber"] = position
    return merged


def rounded(amount: Decimal, places: int) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _day(value: str | None) -> str | None:
    return None if value is None else value[:10] + "T00:00:00"


@dataclass
class DocumentInput:
    """What a customer-document write asked for, unwrapped; lines keep their order."""

    values: dict[str, Any]
    lines: list[dict[str, Any]]
    applications: list[dict[str, Any]]


def document_input(kind: str, body: Any, action: str) -> DocumentInput:
    model = "CustomerInvoiceUpdateDto" if kind == "Invoice" else "CustomerCreditNoteUpdateDto"
    values = parse(model, body, action)
    lines = values.pop("invoiceLines" if kind == "Invoice" else "lines", None)
    applications = values.pop("applicationLines", None)
    return DocumentInput(values, lines or [], applications or [])


class DocumentBuilder:
    """Validates a document's header and lines against the company's data."""

    def __init__(self, company: Company, action: str) -> None:
        self.company = company
        self.action = action

    def fail(self, detail: str) -> Exception:
        return business_error(self.action, detail)

    def header(self, values: dict[str, Any]) -> dict[str, Any]:
        customer_number = values.get("customerNumber")
        if not customer_number:
            raise self.fail("'Customer' cannot be empty.")
        customer = self.company.customer(customer_number, self.action)
        document_date = _day(values.get("documentDate"))
        if not document_date:
            raise self.fail("'Document date' cannot be empty.")
        currency = values.get("currencyId") or customer.get("currencyId", "NOK")
        if currency not in self.company.ref["currency"]:
            raise self.fail(cannot_be_found("CuryID", currency))
        zone = values.get("customerVatZoneId") or customer["vatZone"]["id"]
        if zone not in seed.VAT_ZONES:
            raise self.fail(cannot_be_found("TaxZoneID", zone))
        terms = values.get("creditTermsId") or customer["creditTerms"]["id"]
        if terms not in self.company.ref["creditTerm"]:
            raise self.fail(cannot_be_found("TermsID", terms))
        period = self.period(values, document_date)
        due = _day(values.get("documentDueDate")) or _due(document_date, self.company, terms)
        header = {k: v for k, v in values.items() if isinstance(v, str | bool | int | Decimal)}
        header.update(
            customerNumber=customer_number, documentDate=document_date, currencyId=currency,
            vatZone=zone, creditTermsId=terms, financialPeriod=period, documentDueDate=due,
        )  # fmt: skip
        return header

    def period(self, values: dict[str, Any], document_date: str) -> str:
        period = values.get("financialPeriod")
        post_period = values.get("postPeriod")
        if not period and post_period and len(post_period) == 6:
            period = post_period[2:] + post_period[:2]  # MMYYYY -> YYYYMM
        period = period or document_date[:4] + document_date[5:7]
        found = self.company.ref["financialPeriod"].get(period)
        if found is None:
            raise self.fail(cannot_be_found("FinPeriodID", period))
        if found["closedInCustomerLedger"]:
            raise self.fail(
                f"The financial period {found['description']} is closed in Customer ledger."
            )
        return period

    def lines(self, raw_lines: list[dict[str, Any]], header: dict[str, Any]) -> list[Line]:
        places = self.company.ref["currency"][header["currencyId"]]["decimalPrecision"]
        return [
            self.line(number, raw, header["vatZone"], places)
            for number, raw in enumerate(raw_lines, start=1)
        ]

    def line(self, number: int, raw: dict[str, Any], zone: str, places: int) -> Line:
        item_number = raw.get("inventoryNumber")
        article = self.company.articles.get(item_number) if item_number else None
        if item_number and article is None:
            raise self.fail(cannot_be_found("InventoryID", item_number))
        description = raw.get("description") or (article or {}).get("description")
        if not description:
            raise self.fail(f"Line {number}: an inventory number or a description is required.")
        category = raw.get("vatCodeId") or (article["vatCode"]["id"] if article else None)
        category = category or seed.VAT_ZONES[zone][1]
        vat_id = _vat_in_zone(category, zone)
        if vat_id is None:
            raise self.fail(cannot_be_found("TaxCategoryID", category))
        account = raw.get("accountNumber") or _sales_account(article)
        if account not in self.company.ref["account"]:
            raise self.fail(cannot_be_found("AccountID", account))
        subaccount = raw.get("subaccount") or [
            {"segmentId": s, "segmentValue": v} for s, v in seed.SUBACCOUNT_SEGMENTS
        ]
        segments = {s.get("segmentId") for s in subaccount}
        if segments != {s for s, _ in seed.SUBACCOUNT_SEGMENTS}:
            raise self.fail(f"Line {number}: the subaccount must list every segment.")
        quantity = Decimal(raw.get("quantity", 1))
        price = Decimal(raw.get("unitPriceInCurrency", (article or {}).get("defaultPrice", 0)))
        discount = Decimal(raw.get("discountPercent", 0))
        manual = raw.get("manualAmountInCurrency")
        gross = quantity * price * (1 - discount / 100) - Decimal(
            raw.get("discountAmountInCurrency", 0)
        )
        amount = rounded(Decimal(manual) if manual is not None else gross, places)
        rate = next(r for v, _, r, _ in seed.VAT_CODES if v == vat_id)
        return Line(
            line_number=number, inventory_number=item_number, description=description,
            quantity=quantity, unit_price=price, amount=amount, vat_category=category,
            vat_id=vat_id, vat_rate=rate, vat_amount=rounded(amount * rate / 100, places),
            account=account, subaccount=subaccount, discount_percent=discount,
        )  # fmt: skip

    def applications(
        self, raw: list[dict[str, Any]], customer: str, total: Decimal
    ) -> list[Application]:
        found = []
        for line in raw:
            document_type = line.get("documentType") or "Invoice"
            ref_nbr = str(line.get("refNbr") or "")
            target = self.company.open_document(document_type, ref_nbr, customer)
            amount = Decimal(line.get("amountPaid") or 0)
            if target is None or document_type not in ("Invoice", "DebitNote"):
                raise self.fail(cannot_be_found("AdjdRefNbr", ref_nbr))
            if amount > target.balance:
                raise self.fail(f"The amount paid exceeds the balance of document {ref_nbr}.")
            found.append(Application(document_type, ref_nbr, amount))
        if sum((a.amount for a in found), ZERO) > total:
            raise self.fail("The applied amount exceeds the amount of the credit note.")
        return found


def _vat_in_zone(category: str, zone: str) -> str | None:
    listed = seed.VAT_CATEGORIES.get(category)
    if listed is None:
        return None
    return next((v for v in listed[1] if v in seed.VAT_ZONES[zone][2]), None)


def _sales_account(article: dict[str, Any] | None) -> str:
    if article is None:
        return "3000"
    return str(article["accountInformation"]["salesAccount"]["number"])


def _due(document_date: str, company: Company, terms: str) -> str:
    days = company.ref["creditTerm"][terms]["delayDays"]
    return (datetime.fromisoformat(document_date) + timedelta(days=days)).isoformat()


def build_document(
    company: Company, kind: str, given: DocumentInput, action: str, now: datetime,
    number: str | None = None,
) -> Document:  # fmt: skip
    """A new (or rebuilt) unreleased document; `number` None assigns one."""
    builder = DocumentBuilder(company, action)
    header = builder.header(given.values)
    raw_lines = inserted(given.lines) if number is None else given.lines
    lines = builder.lines(raw_lines, header)
    document = Document(
        kind=kind, number=number or "", customer=header["customerNumber"], fields=header,
        lines=lines, hold=bool(header.get("hold", False)),
        status="Hold" if header.get("hold") else "Balanced", created=now, modified=now,
    )  # fmt: skip
    if kind == "CreditNote":
        raw_apps = inserted(given.applications) if number is None else given.applications
        document.applications = builder.applications(raw_apps, document.customer, document.amount)
    document.fields["_lines"] = raw_lines
    document.fields["_applications"] = (
        given.applications if number else inserted(given.applications)
    )
    if number is None:
        document.number = _new_number(company, kind, header, builder)
    return document


def _new_number(
    company: Company, kind: str, header: dict[str, Any], builder: DocumentBuilder
) -> str:
    wanted = header.get("referenceNumber")
    taken = {n for (k, n) in company.documents if k == kind}
    if header.get("overrideNumberSeries") and wanted:
        if wanted in taken:
            raise builder.fail(f"Reference number '{wanted}' already exists.")
        return str(wanted)
    return company.next_number("ARINVOICE" if kind == "Invoice" else "ARCREDITMEMO", taken)


def rebuild_document(company: Company, document: Document, body: Any, now: datetime) -> Document:
    """An update (PUT) of an unreleased document: changed fields over the current ones."""
    action = "updating document"
    change = document_input(document.kind, body, action)
    values = {k: v for k, v in document.fields.items() if not k.startswith("_")}
    values["customerVatZoneId"] = values.pop("vatZone")
    values.update(change.values)
    lines = merge_lines(document.fields["_lines"], change.lines)
    apps = document.fields["_applications"] + inserted(change.applications)
    rebuilt = build_document(
        company, document.kind, DocumentInput(values, lines, apps), action, now, document.number
    )
    rebuilt.created, rebuilt.version = document.created, document.version + 1
    return rebuilt


def build_payment(company: Company, body: Any, now: datetime) -> Payment:
    action = "creating payment"
    values = parse("PaymentUpdateDto", body, action)
    fail = DocumentBuilder(company, action).fail
    customer = values.get("customer")
    if not customer:
        raise fail("'Customer' cannot be empty.")
    company.customer(customer, action)
    amount = values.get("paymentAmount")
    if amount is None:
        raise fail("'Payment amount' cannot be empty.")
    lines = []
    for raw in inserted(values.get("paymentLines")):
        document_type = raw.get("documentType") or "Invoice"
        ref_nbr = str(raw.get("refNbr") or "")
        target = company.open_document(document_type, ref_nbr, customer)
        paid = Decimal(raw.get("amountPaid") or 0)
        if target is None:
            raise fail(cannot_be_found("AdjdRefNbr", ref_nbr))
        if paid > target.balance:
            raise fail(f"The amount paid exceeds the balance of document {ref_nbr}.")
        lines.append(Application(document_type, ref_nbr, paid))
    applied = sum((line.amount for line in lines), ZERO)
    if lines and applied != Decimal(amount):
        raise fail(
            f"The payment amount {Decimal(amount)} does not match the applied amount {applied}."
        )
    date = _day(values.get("applicationDate")) or now.date().isoformat() + "T00:00:00"
    DocumentBuilder(company, action).period({}, date)
    kind = values.get("type") or "Payment"
    taken = set(company.payments)
    number = company.next_number("ARPAYMENT", taken)
    fields = {k: v for k, v in values.items() if isinstance(v, str | bool | int | Decimal)}
    fields["applicationDate"] = date
    return Payment(
        number=number, type=kind, customer=customer, fields=fields, lines=lines,
        amount=Decimal(amount), hold=bool(values.get("hold")),
        status="Hold" if values.get("hold") else "Balanced", created=now, modified=now,
    )  # fmt: skip
