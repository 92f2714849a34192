"""Property rules from the e-conomic docs' tables, the filterable properties of each
collection, and the key orders documents are shown in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.simulators.economic.errors import Doc, ErrorCode, Issues, Path
from worker.simulators.economic.filtering import lookup

S, N, D, B = "string", "number", "date", "bool"


@dataclass(frozen=True)
class Num:
    low: Decimal | None = None
    high: Decimal | None = None
    scale: int | None = None


@dataclass(frozen=True)
class Rules:
    required: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    strings: Mapping[str, int | None] = field(default_factory=dict)  # max length
    min_lengths: Mapping[str, int] = field(default_factory=dict)
    integers: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)
    numbers: Mapping[str, Num] = field(default_factory=dict)
    dates: tuple[str, ...] = ()
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    booleans: tuple[str, ...] = ()


def _split(prefix: Path, dotted: str) -> Path:
    return (*prefix, *dotted.split("."))


def reject_nulls(value: Any, path: Path, issues: Issues) -> None:
    """introduction.md, "Nulling": null is not accepted; omit the property instead."""
    if value is None:
        issues.add(path, ErrorCode.NULL, "Null is not a valid value. Omit the property to null it.")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nulls(item, (*path, key), issues)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nulls(item, (*path, index), issues)


def check(doc: Doc, rules: Rules, issues: Issues, prefix: Path = ()) -> None:
    for dotted in rules.required:
        _check_required(doc, dotted, issues, prefix)
    for dotted in rules.objects:
        _check_type(doc, dotted, dict, "object", issues, prefix)
    for dotted in rules.booleans:
        _check_type(doc, dotted, bool, "boolean", issues, prefix)
    for dotted, limit in rules.strings.items():
        _check_string(doc, dotted, limit, rules.min_lengths.get(dotted), issues, prefix)
    for dotted, (low, high) in rules.integers.items():
        _check_integer(doc, dotted, low, high, issues, prefix)
    for dotted, num in rules.numbers.items():
        _check_number(doc, dotted, num, issues, prefix)
    for dotted in rules.dates:
        _check_date(doc, dotted, issues, prefix)
    for dotted, allowed in rules.enums.items():
        value = lookup(doc, dotted)
        if value is not None and value not in allowed:
            message = f"Property {dotted} must be one of: {', '.join(allowed)}."
            issues.add(_split(prefix, dotted), ErrorCode.BAD_ENUM, message, value)


def _check_required(doc: Doc, dotted: str, issues: Issues, prefix: Path) -> None:
    parent, _, _ = dotted.rpartition(".")
    if parent and not isinstance(lookup(doc, parent), dict):
        return  # "objectA.property" is only required when objectA is set
    if lookup(doc, dotted) is None:
        issues.missing(_split(prefix, dotted))


def _check_type(doc: Doc, dotted: str, kind: type, name: str, issues: Issues, prefix: Path) -> None:
    value = lookup(doc, dotted)
    if value is not None and not isinstance(value, kind):
        issues.add(
            _split(prefix, dotted), ErrorCode.WRONG_TYPE, f"{dotted} must be of type {name}.", value
        )


def _check_string(
    doc: Doc, dotted: str, limit: int | None, minimum: int | None, issues: Issues, prefix: Path
) -> None:
    value = lookup(doc, dotted)
    path = _split(prefix, dotted)
    if value is None:
        return
    if not isinstance(value, str):
        issues.add(path, ErrorCode.WRONG_TYPE, f"{path[-1]} must be of type string.", value)
    elif limit is not None and len(value) > limit:
        message = f"{path[-1]} has a maximum length of {limit} characters."
        issues.add(path, ErrorCode.TOO_LONG, message, value)
    elif minimum is not None and len(value) < minimum:
        message = f"{path[-1]} has a minimum length of {minimum} characters."
        issues.add(path, ErrorCode.TOO_SHORT, message, value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_integer(
    doc: Doc, dotted: str, low: int | None, high: int | None, issues: Issues, prefix: Path
) -> None:
    value = lookup(doc, dotted)
    path = _split(prefix, dotted)
    if value is None:
        return
    if not is_int(value):
        issues.add(path, ErrorCode.WRONG_TYPE, f"{path[-1]} must be of type integer.", value)
    elif (low is not None and value < low) or (high is not None and value > high):
        message = f"{path[-1]} must be between {low} and {high}."
        issues.add(path, ErrorCode.OUT_OF_RANGE, message, value)


def to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _check_number(doc: Doc, dotted: str, num: Num, issues: Issues, prefix: Path) -> None:
    value = lookup(doc, dotted)
    path = _split(prefix, dotted)
    if value is None:
        return
    number = to_decimal(value)
    if number is None or not number.is_finite():
        issues.add(path, ErrorCode.WRONG_TYPE, f"{path[-1]} must be of type number.", value)
    elif num.scale is not None and -int(number.as_tuple().exponent) > num.scale:
        message = f"{path[-1]} scale cannot be greater then two decimal places."
        issues.add(path, ErrorCode.SCALE, message, value, "Please check the format of your data.")
    elif (num.low is not None and number < num.low) or (num.high is not None and number > num.high):
        message = f"{path[-1]} must be between {num.low} and {num.high}."
        issues.add(path, ErrorCode.OUT_OF_RANGE, message, value)


def parse_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _check_date(doc: Doc, dotted: str, issues: Issues, prefix: Path) -> None:
    value = lookup(doc, dotted)
    if value is not None and parse_date(value) is None:
        path = _split(prefix, dotted)
        message = f"{path[-1]} must be a date formatted according to ISO-8601 (YYYY-MM-DD)."
        issues.add(path, ErrorCode.BAD_DATE, message, value)


# fmt: off
# invoices.md, POST /invoices/drafts: required properties and the properties table.
DRAFT_POST_REQUIRED = (
    "currency", "customer", "date", "layout", "paymentTerms", "recipient", "recipient.name",
    "recipient.vatZone",
)
DRAFT_RULES = Rules(
    required=DRAFT_POST_REQUIRED,
    objects=(
        "customer", "delivery", "deliveryLocation", "layout", "notes", "paymentTerms",
        "project", "recipient", "recipient.attention", "recipient.vatZone", "references",
        "references.customerContact", "references.salesPerson", "references.vendorReference",
    ),
    strings={
        "currency": None, "delivery.address": 255, "delivery.city": 50,
        "delivery.country": 50, "delivery.deliveryTerms": 100, "delivery.zip": 30,
        "notes.heading": 250, "notes.textLine1": 1000, "notes.textLine2": 1000,
        "recipient.address": 250, "recipient.city": 250, "recipient.country": 50,
        "recipient.ean": 13, "recipient.mobilePhone": None, "recipient.name": 250,
        "recipient.publicEntryNumber": 40, "recipient.zip": 50, "references.other": 250,
    },
    integers={
        "customer.customerNumber": (1, 999999999), "layout.layoutNumber": (1, None),
        "paymentTerms.paymentTermsNumber": (1, None), "project.projectNumber": (1, None),
        "deliveryLocation.deliveryLocationNumber": (1, None),
    },
    numbers={"exchangeRate": Num(Decimal(0), Decimal(999999999999))},
    dates=("date", "dueDate", "delivery.deliveryDate"),
    enums={"recipient.nemHandelType": ("ean", "corporateIdentificationNumber", "pNumber")},
)


def line_rules(minimum: int) -> Rules:
    """POST lists lineNumber/sortKey/unitNumber with min value 1, PUT with 0."""
    return Rules(
        objects=("accrual", "departmentalDistribution", "product", "unit"),
        strings={"description": 2500, "product.productNumber": 25},
        integers={
            "lineNumber": (minimum, None), "sortKey": (minimum, None),
            "unit.unitNumber": (minimum, None),
            "departmentalDistribution.departmentalDistributionNumber": (1, None),
        },
        numbers={
            # introduction.md's annotated-error example: E04740, "unitNetPrice scale cannot
            # be greater then two decimal places"; quantity and discount held to the same.
            "quantity": Num(scale=2), "unitNetPrice": Num(scale=2),
            "discountPercentage": Num(scale=2),
            "unitCostPrice": Num(),
        },
        dates=("accrual.startDate", "accrual.endDate"),
    )


# customers.md, POST/PUT /customers
CUSTOMER_RULES = Rules(
    required=("currency", "customerGroup", "name", "paymentTerms", "vatZone"),
    objects=(
        "attention", "customerContact", "customerGroup", "defaultDeliveryLocation", "layout",
        "paymentTerms", "salesPerson", "vatZone",
    ),
    strings={
        "address": 510, "city": 50, "corporateIdentificationNumber": 40, "country": 50,
        "currency": 3, "ean": 40, "email": 255, "mobilePhone": 50, "name": 255, "pNumber": 10,
        "publicEntryNumber": 50, "telephoneAndFaxNumber": 255, "vatNumber": 50,
        "website": 255, "zip": 30,
    },
    min_lengths={"currency": 3, "name": 1, "pNumber": 10},
    integers={"customerNumber": (1, 999999999)},
    numbers={"creditLimit": Num()},
    booleans=("barred",),
)

# products.md, POST/PUT /products
PRODUCT_RULES = Rules(
    required=("name", "productGroup", "productNumber"),
    objects=("departmentalDistribution", "inventory", "productGroup", "unit"),
    strings={"barCode": 50, "description": 500, "name": 300, "productNumber": 25},
    min_lengths={"name": 1, "productNumber": 1},
    integers={"productGroup.productGroupNumber": (None, None), "unit.unitNumber": (None, None)},
    numbers={"costPrice": Num(), "recommendedPrice": Num(), "salesPrice": Num()},
    booleans=("barred",),
)

# invoices.md, POST /invoices/booked
BOOK_RULES = Rules(
    required=("draftInvoice",),
    objects=("draftInvoice",),
    integers={
        "draftInvoice.draftInvoiceNumber": (1, 999999999), "bookWithNumber": (1, 999999999),
    },
    enums={"sendBy": ("none", "ean"), "sentBy": ("none", "EAN", "ean")},
)

# journals.md, POST /journals/:journalNumber/vouchers
VOUCHER_RULES = Rules(
    required=("accountingYear", "entries"),
    objects=("accountingYear", "entries", "journal"),
    strings={"accountingYear.year": None},
    integers={"voucherNumber": (1, 999999999), "journal.journalNumber": (1, None)},
)
ENTRY_RULES = Rules(
    required=("amount", "date"),
    objects=(
        "account", "contraAccount", "contraVatAccount", "currency", "customer",
        "departmentalDistribution", "employee", "journal", "project", "vatAccount", "voucher",
    ),
    strings={
        "text": 250, "currency.code": 3, "contraVatAccount.vatCode": 5, "vatAccount.vatCode": 5,
    },
    integers={
        "customer.customerNumber": (1, 999999999), "customerInvoice": (1, None),
        "account.accountNumber": (1, None), "contraAccount.accountNumber": (1, None),
        "voucher.voucherNumber": (1, 999999999), "journal.journalNumber": (1, None),
    },
    numbers={
        "amount": Num(scale=2), "amountBaseCurrency": Num(scale=2), "exchangeRate": Num(),
        "vatAmount": Num(scale=2), "contraVatAmount": Num(scale=2),
    },
    dates=("date", "dueDate"),
)
ENTRY_TYPES = {
    "customerPayments": "customerPayment", "financeVouchers": "financeVoucher",
    "manualCustomerInvoices": "manualCustomerInvoice", "supplierInvoices": "supplierInvoice",
    "supplierPayments": "supplierPayment",
}
SUPPORTED_ENTRY_TYPES = ("customerPayments", "financeVouchers", "manualCustomerInvoices")

# Filterable properties and their kinds, from each endpoint's "Filterable properties".
CUSTOMER_FILTERS = {
    "address": S, "balance": N, "barred": B, "city": S, "corporateIdentificationNumber": S,
    "country": S, "creditLimit": N, "currency": S, "customerNumber": N, "ean": S, "email": S,
    "lastUpdated": S, "name": S, "publicEntryNumber": S, "telephoneAndFaxNumber": S,
    "vatNumber": S, "website": S, "zip": S,
}
_INVOICE_FILTERS = {
    "currency": S, "customer.customerNumber": N, "date": D, "delivery.address": S,
    "delivery.city": S, "delivery.country": S, "delivery.deliveryDate": D,
    "delivery.deliveryTerms": S, "delivery.zip": S,
    "deliveryLocation.deliveryLocationNumber": N, "notes.heading": S, "notes.textLine1": S,
    "notes.textLine2": S, "paymentTerms.paymentTermsNumber": N, "recipient.address": S,
    "recipient.city": S, "recipient.country": S, "recipient.ean": S, "recipient.name": S,
    "recipient.publicEntryNumber": S, "recipient.zip": S, "references.other": S,
    "references.salesPerson.employeeNumber": N, "references.vendorReference.employeeNumber": N,
}
DRAFT_FILTERS = {
    **_INVOICE_FILTERS, "draftInvoiceNumber": N, "exchangeRate": N,
    "references.customerContact.customer.customerNumber": N, "soap.currentInvoiceHandle.id": N,
}
BOOKED_FILTERS = {
    **_INVOICE_FILTERS, "bookedInvoiceNumber": N, "recipient.vatZone.vatZoneNumber": N,
}
PRODUCT_FILTERS = {
    "barCode": S, "barred": B, "costPrice": N,
    "departmentalDistribution.departmentalDistributionNumber": N, "description": S,
    "inventory.grossWeight": N, "inventory.netWeight": N, "inventory.packageVolume": N,
    "inventory.recommendedCostPrice": N, "lastUpdated": S, "name": S,
    "productGroup.productGroupNumber": N, "productNumber": S, "recommendedPrice": N,
    "salesPrice": N, "unit.unitNumber": N,
}
PRODUCT_SORTS = {
    "barCode": S, "barred": B, "costPrice": N, "description": S, "inventory.grossWeight": N,
    "inventory.netWeight": N, "inventory.packageVolume": N, "lastUpdated": S, "name": S,
    "productNumber": S, "recommendedPrice": N, "salesPrice": N,
}
ACCOUNT_FILTERS = {
    "accountNumber": N, "accountType": S, "balance": N, "barred": B, "blockDirectEntries": B,
    "debitCredit": S, "name": S,
}
ENTRY_FILTERS = {
    "amount": N, "amountDefaultCurrency": N, "contraAccount.accountNumber": N,
    "contraVatAccount.vatCode": S, "contraVatAmount": N, "currency.code": S, "date": D,
    "employee.employeeNumber": N, "entryType": S, "exchangeRate": N, "journalEntryNumber": N,
    "text": S, "voucher.voucherNumber": N,
}
CUSTOMER_GROUP_FILTERS = {
    "account.accountNumber": N, "account.accountType": S, "account.balance": N,
    "account.blockDirectEntries": B, "account.debitCredit": S, "account.name": S,
    "customerGroupNumber": N, "name": S,
}
YEAR_FILTERS = {"fromDate": D, "toDate": D, "year": S}
PERIOD_FILTERS = {"fromDate": D, "periodNumber": N, "toDate": D}
JOURNAL_FILTERS = {"journalNumber": N, "name": S}
DISTRIBUTION_FILTERS = {"departmentalDistributionNumber": N, "name": S}
PROJECT_FILTERS = {"projectNumber": N, "name": S}
NO_FILTERS: dict[str, str] = {}

# Self-link encoding of resource ids (introduction.md, "Custom resource self-link encoding").
ID_ENCODING = (
    ("_", "_8_"), ("<", "_0_"), (">", "_1_"), ("*", "_2_"), ("%", "_3_"), (":", "_4_"),
    ("&", "_5_"), ("/", "_6_"), ("\\", "_7_"), (" ", "_9_"), ("?", "_10_"), (".", "_11_"),
    ("#", "_12_"), ("+", "_13_"),
)
LINK_KEYS = (
    ("draftInvoiceNumber", "/invoices/drafts/"), ("bookedInvoiceNumber", "/invoices/booked/"),
    ("customerNumber", "/customers/"), ("productNumber", "/products/"),
    ("customerGroupNumber", "/customer-groups/"), ("productGroupNumber", "/product-groups/"),
    ("paymentTermsNumber", "/payment-terms/"), ("vatZoneNumber", "/vat-zones/"),
    ("vatCode", "/vat-accounts/"), ("vatTypeNumber", "/vat-types/"),
    ("layoutNumber", "/layouts/"), ("unitNumber", "/units/"), ("accountNumber", "/accounts/"),
    ("journalNumber", "/journals/"),
    ("departmentalDistributionNumber", "/departmental-distributions/"),
    ("projectNumber", "/projects/"), ("moduleNumber", "/modules/"),
    ("roleNumber", "/app-roles/"), ("year", "/accounting-years/"),
)
DRAFT_KEYS = (
    "currency", "customer", "date", "delivery", "deliveryLocation", "dueDate", "exchangeRate",
    "layout", "notes", "paymentTerms", "project", "recipient", "references",
)
LINE_KEYS = (
    "accrual", "departmentalDistribution", "description", "discountPercentage", "lineNumber",
    "product", "quantity", "sortKey", "unit", "unitCostPrice", "unitNetPrice",
)
BOOKED_KEYS = (
    "currency", "customer", "date", "delivery", "deliveryLocation", "dueDate", "grossAmount",
    "grossAmountInBaseCurrency", "layout", "lines", "netAmount", "netAmountInBaseCurrency",
    "notes", "paymentTerms", "project", "recipient", "references", "roundingAmount",
    "vatAmount",
)
BOOKED_LINE_KEYS = (
    "departmentalDistribution", "description", "discountPercentage", "lineNumber", "product",
    "quantity", "sortKey", "totalNetAmount", "unit", "unitCostPrice", "unitNetPrice",
    "vatAmount", "vatRate",
)
# Reference kinds: id property, agreement table, collection path, id type, module needed.
REFERENCES: dict[str, tuple[str, str, str, type, str | None]] = {
    "customer": ("customerNumber", "customers", "customers", int, None),
    "layout": ("layoutNumber", "layouts", "layouts", int, None),
    "paymentTerms": ("paymentTermsNumber", "paymentTerms", "payment-terms", int, None),
    "vatZone": ("vatZoneNumber", "vatZones", "vat-zones", int, None),
    "customerGroup": ("customerGroupNumber", "customerGroups", "customer-groups", int, None),
    "productGroup": ("productGroupNumber", "productGroups", "product-groups", int, None),
    "product": ("productNumber", "products", "products", str, None),
    "unit": ("unitNumber", "units", "units", int, None),
    "account": ("accountNumber", "accounts", "accounts", int, None),
    "vatAccount": ("vatCode", "vatAccounts", "vat-accounts", str, None),
    "project": ("projectNumber", "projects", "projects", int, "Projects"),
    "departmentalDistribution": (
        "departmentalDistributionNumber", "departmentalDistributions",
        "departmental-distributions", int, "Departments",
    ),
}
# Booked lines show vatRate/vatAmount (invoices.md); draft lines do not.
DRAFT_LINE_HIDDEN = ("vatAmount", "vatRate", "costInBaseCurrency")
# fmt: on
