"""Draft invoices built and checked from request bodies, and booking a draft."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.simulators.economic.errors import Doc, ErrorCode, Issues, Path, bad_request
from worker.simulators.economic.filtering import lookup
from worker.simulators.economic.rules import (
    BOOKED_KEYS,
    BOOKED_LINE_KEYS,
    DRAFT_KEYS,
    DRAFT_RULES,
    LINE_KEYS,
    check,
    line_rules,
    parse_date,
    reject_nulls,
    to_decimal,
)
from worker.simulators.economic.state import Agreement, Resolver, money, strip_links


@dataclass
class DraftContext:
    agreement: Agreement
    resolver: Resolver
    issues: Issues
    zone: int | None
    rate: Decimal


def require_object(payload: Any) -> Doc:
    if not isinstance(payload, dict):
        raise bad_request("The request body must be a JSON object.")
    return payload


def build_draft(agreement: Agreement, payload: Any, issues: Issues, put: bool) -> Doc:
    """Validate a draft invoice (POST, or the full document on PUT) and compute its totals."""
    doc = require_object(payload)
    reject_nulls(doc, (), issues)
    check(doc, DRAFT_RULES, issues)
    resolver = Resolver(agreement, issues)
    refs = _draft_refs(resolver, doc)
    currency = resolver.currency(doc.get("currency"), ("currency",))
    rate = _exchange_rate(agreement, doc, currency)
    ctx = DraftContext(agreement, resolver, issues, refs["zone"], rate)
    raw_lines = doc.get("lines", [])
    if not isinstance(raw_lines, list):
        issues.add(("lines",), ErrorCode.WRONG_TYPE, "lines must be of type array.", raw_lines)
        raw_lines = []
    lines = [_draft_line(ctx, line, i, put) for i, line in enumerate(raw_lines)]
    terms = _payment_terms(agreement, refs["paymentTerms"])
    due = _due_date(doc, terms, issues)
    issues.raise_if_any()
    draft = {k: strip_links(doc[k]) for k in DRAFT_KEYS if k in doc}
    draft.update(currency=currency, exchangeRate=rate, paymentTerms=terms, dueDate=due)
    draft.update(customer={"customerNumber": refs["customer"]})
    draft.update(layout={"layoutNumber": refs["layout"]})
    draft["recipient"]["vatZone"] = {"vatZoneNumber": refs["zone"]}
    if refs["project"] is not None:
        draft["project"] = {"projectNumber": refs["project"]}
    draft["lines"] = [line for line in lines if line is not None]
    draft.update(_totals(draft["lines"], rate))
    return draft


def _draft_refs(resolver: Resolver, doc: Doc) -> dict[str, Any]:
    refs = {key: resolver.ref(doc, key, (key,)) for key in ("customer", "layout", "paymentTerms")}
    refs["project"] = resolver.ref(doc, "project", ("project",))
    zone = resolver.ref(doc.get("recipient"), "vatZone", ("recipient", "vatZone"))
    zones = resolver.agreement.table("vatZones")
    if zone is not None and not zones[zone].get("enabledForCustomer"):
        resolver.issues.rule(("recipient", "vatZone"), "The VAT zone is not for customers.", zone)
    refs["zone"] = zone
    location = doc.get("deliveryLocation")
    if isinstance(location, dict):  # no customer has delivery locations here
        value = location.get("deliveryLocationNumber", location.get("self"))
        resolver.issues.not_exist(("deliveryLocation",), value, "customers")
    return refs


def _exchange_rate(agreement: Agreement, doc: Doc, currency: str | None) -> Decimal:
    given = to_decimal(doc.get("exchangeRate"))
    if given is not None and given > 0:
        return given
    return agreement.rate(currency or agreement.base_currency)


def _payment_terms(agreement: Agreement, number: int | None) -> Doc:
    if number is None:
        return {}
    terms = agreement.table("paymentTerms")[number]
    return {k: terms[k] for k in ("paymentTermsNumber", "daysOfCredit", "name", "paymentTermsType")}


def _due_date(doc: Doc, terms: Doc, issues: Issues) -> str | None:
    """dueDate is given for terms of type dueDate (and then mandatory), computed otherwise."""
    kind = terms.get("paymentTermsType")
    if kind == "dueDate":
        if doc.get("dueDate") is None:
            issues.missing(("dueDate",), " when the payment terms are of type dueDate")
        given = doc.get("dueDate")
        return given if isinstance(given, str) else None
    issued = parse_date(doc.get("date"))
    if issued is None or not terms:
        return None
    credit = dt.timedelta(days=int(terms["daysOfCredit"]))
    if kind == "invoiceMonth":
        return (month_end(issued) + credit).isoformat()
    if kind in ("paidInCash", "prepaid"):
        return issued.isoformat()
    return (issued + credit).isoformat()


def month_end(day: dt.date) -> dt.date:
    next_month = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return next_month - dt.timedelta(days=1)


def _draft_line(ctx: DraftContext, raw: Any, index: int, put: bool) -> Doc | None:
    path: Path = ("lines", index)
    if not isinstance(raw, dict):
        ctx.issues.add(path, ErrorCode.WRONG_TYPE, "A line must be of type object.", raw)
        return None
    check(raw, line_rules(0 if put else 1), ctx.issues, path)
    product = ctx.resolver.ref(raw, "product", (*path, "product"))
    unit = ctx.resolver.ref(raw, "unit", (*path, "unit"))
    distribution = ctx.resolver.ref(
        raw, "departmentalDistribution", (*path, "departmentalDistribution")
    )
    _line_product_rules(ctx.issues, raw, path)
    if ctx.issues.items:
        return None
    line = {k: strip_links(raw[k]) for k in LINE_KEYS if k in raw}
    line.setdefault("lineNumber", index + 1)
    line.setdefault("sortKey", index + 1)
    if distribution is not None:
        line["departmentalDistribution"] = {"departmentalDistributionNumber": distribution}
    return _priced_line(ctx, line, product, unit)


def _line_product_rules(issues: Issues, raw: Doc, path: Path) -> None:
    if "product" in raw:
        if raw.get("quantity") is None:
            message = "Property quantity must have a value when product is set."
            issues.add((*path, "quantity"), ErrorCode.QUANTITY_REQUIRED, message)
        if raw.get("description") is None:  # invoices.md, lines.description
            issues.missing((*path, "description"), " when product is set")
    elif raw.get("quantity") is not None or raw.get("unitNetPrice") is not None:
        issues.missing((*path, "product"), " on a line with a quantity or price")


def _priced_line(ctx: DraftContext, line: Doc, product_no: str | None, unit: int | None) -> Doc:
    product = ctx.agreement.table("products").get(product_no) if product_no else None
    quantity = first_decimal(line.get("quantity"))
    price = first_decimal(line.get("unitNetPrice"), product and product.get("salesPrice"))
    cost = first_decimal(line.get("unitCostPrice"), product and product.get("costPrice"))
    discount = first_decimal(line.get("discountPercentage"))
    total = money(quantity * price * (100 - discount) / 100)
    vat_rate = _vat_rate(ctx.agreement, product, ctx.zone)
    net_base = money(total * ctx.rate / 100)
    cost_base = money(quantity * cost * ctx.rate / 100)
    line.update(quantity=quantity, unitNetPrice=price, unitCostPrice=cost)
    line.update(discountPercentage=discount, totalNetAmount=total)
    line.update(vatRate=vat_rate, vatAmount=money(total * vat_rate / 100))
    line.update(costInBaseCurrency=cost_base, marginInBaseCurrency=net_base - cost_base)
    line["marginPercentage"] = _percentage(net_base - cost_base, net_base)
    if product is not None:
        line["product"] = {"productNumber": product_no}
    unit_doc = _line_unit(ctx.agreement, unit, product)
    if unit_doc:
        line["unit"] = unit_doc
    return line


def first_decimal(*values: Any) -> Decimal:
    for value in values:
        number = value if isinstance(value, Decimal) else to_decimal(value)
        if number is not None:
            return number
    return Decimal(0)


def _percentage(part: Decimal, whole: Decimal) -> Decimal:
    return money(part / whole * 100) if whole else Decimal("0.00")


def _line_unit(agreement: Agreement, unit: int | None, product: Doc | None) -> Doc | None:
    if unit is None and product and product.get("unit"):
        unit = product["unit"]["unitNumber"]
    if unit is None:
        return None
    return {"unitNumber": unit, "name": agreement.table("units")[unit]["name"]}


def _vat_rate(agreement: Agreement, product: Doc | None, zone: int | None) -> Decimal:
    """Product -> product group -> its sales account for the recipient's VAT zone -> that
    account's VAT code -> rate. Zones without VAT use sales accounts without a VAT code."""
    if product is None or zone is None:
        return Decimal(0)
    group = agreement.table("productGroups")[product["productGroup"]["productGroupNumber"]]
    account = agreement.table("accounts").get(group["salesAccounts"].get(zone)) or {}
    vat_account = agreement.table("vatAccounts").get(lookup(account, "vatAccount.vatCode"))
    return Decimal(vat_account["ratePercentage"]) if vat_account else Decimal(0)


def _totals(lines: list[Doc], rate: Decimal) -> Doc:
    net = sum((line["totalNetAmount"] for line in lines), Decimal("0.00"))
    vat = sum((line["vatAmount"] for line in lines), Decimal("0.00"))
    cost_base = sum((line["costInBaseCurrency"] for line in lines), Decimal("0.00"))
    net_base = money(net * rate / 100)
    return {
        "netAmount": net,
        "vatAmount": vat,
        "grossAmount": net + vat,
        "netAmountInBaseCurrency": net_base,
        "grossAmountInBaseCurrency": money((net + vat) * rate / 100),
        "costPriceInBaseCurrency": cost_base,
        "marginInBaseCurrency": net_base - cost_base,
        "marginPercentage": _percentage(net_base - cost_base, net_base),
        "roundingAmount": Decimal("0.00"),
    }


def booked_from_draft(draft: Doc, number: int) -> Doc:
    booked: Doc = {"bookedInvoiceNumber": number}
    booked.update({k: copy.deepcopy(draft[k]) for k in BOOKED_KEYS if k in draft})
    booked["lines"] = [
        {k: line[k] for k in BOOKED_LINE_KEYS if k in line} for line in draft["lines"]
    ]
    booked["remainder"] = draft["grossAmount"]
    booked["remainderInBaseCurrency"] = draft["grossAmountInBaseCurrency"]
    return booked


def check_bookable(agreement: Agreement, draft: Doc, issues: Issues) -> None:
    path: Path = ("draftInvoice",)
    if not any("product" in line for line in draft["lines"]):
        issues.rule(path, "The draft invoice has no lines with a product and cannot be booked.")
    if open_year_of(agreement, draft["date"]) is None:
        message = "The invoice date is not within an open accounting year."
        issues.rule(path, message, draft["date"])
    number = draft["customer"]["customerNumber"]
    if agreement.table("customers").get(number, {}).get("barred"):
        issues.rule(path, "The customer is barred from invoicing.", number)
    products = agreement.table("products")
    for line in draft["lines"]:
        product = lookup(line, "product.productNumber")
        if product is not None and products.get(product, {}).get("barred"):
            issues.rule(path, "A product on the invoice is barred and cannot be sold.", product)


def open_year_of(agreement: Agreement, day: Any) -> str | None:
    date = parse_date(day)
    for year, doc in agreement.table("accountingYears").items():
        if date and doc["fromDate"] <= date.isoformat() <= doc["toDate"] and not doc.get("closed"):
            return str(year)
    return None
