"""Customer and inventory writes (`CustomerUpdateDto`, `InventoryUpdateDto`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.simulators.vismanet import seed
from worker.simulators.vismanet.documents import parse
from worker.simulators.vismanet.errors import business_error, cannot_be_found
from worker.simulators.vismanet.state import Company, wire_time

#: CustomerUpdateDto fields whose read-model counterpart is a `{id, ...}` object.
_CUSTOMER_REFERENCES = {"customerClassId": "customerClass", "priceClassId": "priceClass"}
_ADDRESSES = ("mainAddress", "invoiceAddress", "deliveryAddress")
#: Write-only fields the read model does not show.
_NOT_READ = frozenset({"note", "attributeLines", "defaultPaymentMethod", "overrideWithClassValues",
                       "overrideNumberSeries", "number", "directDebitLines"})  # fmt: skip


def _read_shape(values: dict[str, Any]) -> dict[str, Any]:
    """CustomerUpdateDto names and shapes -> CustomerDto's (vatZoneId and creditTermsId
    are resolved by `Company.put_customer`)."""
    shaped: dict[str, Any] = {}
    for name, value in values.items():
        if name in _NOT_READ:
            continue
        if name in _CUSTOMER_REFERENCES:
            shaped[_CUSTOMER_REFERENCES[name]] = {"id": value}
        elif name == "parentRecordNumber":
            shaped["parentRecord"] = {"number": value}
        elif name in _ADDRESSES and isinstance(value, dict):
            address = {k: v for k, v in value.items() if k not in ("countryId", "county")}
            if value.get("countryId"):
                address["country"] = {"id": value["countryId"]}
            if value.get("county"):
                address["county"] = {"id": value["county"]}
            shaped[name] = address
        else:
            shaped[name] = value
    return shaped


def _customer_values(company: Company, values: dict[str, Any], action: str) -> dict[str, Any]:
    zone = values.get("vatZoneId")
    if zone is not None and zone not in seed.VAT_ZONES:
        raise business_error(action, cannot_be_found("TaxZoneID", zone))
    terms = values.get("creditTermsId")
    if terms is not None and terms not in company.ref["creditTerm"]:
        raise business_error(action, cannot_be_found("TermsID", terms))
    currency = values.get("currencyId")
    if currency is not None and currency not in company.ref["currency"]:
        raise business_error(action, cannot_be_found("CuryID", currency))
    return _read_shape(values)


def create_customer(company: Company, body: Any, now: datetime) -> dict[str, Any]:
    action = "creating customer"
    values = parse("CustomerUpdateDto", body, action)
    if not values.get("name"):
        raise business_error(action, "'Customer name' cannot be empty.")
    number = values.get("number") or company.next_number("CUSTOMER", company.customers)
    if number in company.customers:
        raise business_error(action, f"Another customer with the number '{number}' already exists.")
    return company.put_customer(str(number), _customer_values(company, values, action), now)


def update_customer(company: Company, number: str, body: Any, now: datetime) -> dict[str, Any]:
    action = "updating customer"
    values = parse("CustomerUpdateDto", body, action)
    if "name" in values and not values["name"]:
        raise business_error(action, "'Customer name' cannot be empty.")
    return company.put_customer(number, _customer_values(company, values, action), now)


def create_article(company: Company, body: Any, now: datetime) -> dict[str, Any]:
    action = "creating inventory item"
    values = parse("InventoryUpdateDto", body, action)
    number = values.get("inventoryNumber") or company.next_number("INVENTORY", company.articles)
    if number in company.articles:
        raise business_error(action, f"Inventory item '{number}' already exists.")
    if not values.get("description"):
        raise business_error(action, "'Description' cannot be empty.")
    category = values.get("vatCode") or "1"
    if category not in seed.VAT_CATEGORIES:
        raise business_error(action, cannot_be_found("TaxCategoryID", category))
    account = values.get("salesAccount") or "3000"
    if account not in company.ref["account"]:
        raise business_error(action, cannot_be_found("AccountID", account))
    record = seed.article(
        str(number), values["description"], Decimal(values.get("defaultPrice") or 0),
        category, account, len(company.articles) + 1, wire_time(now),
    )  # fmt: skip
    record["type"] = values.get("type", "NonStockItem")
    company.articles[str(number)] = record
    return record
