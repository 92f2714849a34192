"""Visma e-conomic REST API simulator (https://restapi.e-conomic.com), built from e-conomic's
own documentation in shared/reference/economic/*.md.

Auth by `X-AppSecretToken` + `X-AgreementGrantToken` (401 when missing, wrong or revoked);
writes must be `Content-Type: application/json` (415 otherwise); no PATCH (405); PUT takes
the whole document; 400 answers in the annotated error format; collections paginate with
`skippages`/`pagesize` (20 by default, at most 1000) and take `filter=`/`sort=`; booked
invoices are immutable; endpoints of a module the agreement lacks answer 403; every
agreement has a fair-use budget of calls per day (429 beyond it).

Error codes E04500, E04730, E04740 and E06000 are the ones the docs show; the others are
this simulator's own (the docs do not list them) and are named in `ErrorCode`.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlparse

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from worker.simulators import economic_seed as seed
from worker.simulators.common import (
    CONTROL_PREFIX,
    FaultInjector,
    Faults,
    RequestLog,
    SimulatorServer,
)
from worker.simulators.economic_filter import (
    QueryError,
    lookup,
    matches,
    sort_documents,
    validate_filter,
)

Doc = dict[str, Any]
Path = tuple[str | int, ...]
Handler = Callable[["Call"], "Reply"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000
DEFAULT_AGREEMENTS = (("DK", "demo-dk"), ("NO", "demo-no"), ("SE", "demo-se"))
CENT = Decimal("0.01")
S, N, D, B = "string", "number", "date", "bool"


# Agreement numbers are unique across e-conomic, so across every simulator in a process
# too: a ledger that saw one simulator's agreement never meets it again in another's.
_AGREEMENT_NUMBERS = itertools.count(700001)


class ErrorCode:
    # Shown in introduction.md:
    NOT_EXIST = "E06000"
    NO_IDENTIFIER = "E04500"
    QUANTITY_REQUIRED = "E04730"
    SCALE = "E04740"
    # The simulator's own:
    VALIDATION = "E04300"
    WRONG_TYPE = "E00100"
    BAD_DATE = "E00110"
    BAD_ENUM = "E00120"
    REQUIRED = "E00200"
    NULL = "E00210"
    TOO_LONG = "E00300"
    TOO_SHORT = "E00310"
    OUT_OF_RANGE = "E00320"
    ALREADY_EXISTS = "E06010"
    MODULE_PROPERTY = "E06100"
    RULE = "E07000"
    BAD_REQUEST = "E04000"
    UNAUTHORIZED = "E00500"
    MODULE = "E01100"
    NOT_FOUND = "E04040"
    METHOD = "E04050"
    MEDIA_TYPE = "E04150"
    FAIR_USE = "E04290"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str = "",
        errors: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint
        self.errors = errors
        self.headers = dict(headers or {})


def error_body(err: ApiError) -> Doc:
    body: Doc = {
        "message": err.message,
        "errorCode": err.code,
        "developerHint": err.hint,
        "logId": str(uuid.uuid4()),
        "httpStatusCode": err.status,
    }
    if err.errors is not None:
        body["errors"] = err.errors
    body["logTime"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return body


def not_found(what: str) -> ApiError:
    return ApiError(404, ErrorCode.NOT_FOUND, f"{what} not found.", "Use the links the API gives.")


def bad_request(message: str, hint: str = "Please check your request.") -> ApiError:
    return ApiError(400, ErrorCode.BAD_REQUEST, message, hint)


# --- annotated errors -----------------------------------------------------------------------

_MISSING = object()


class Issues:
    """Collects validation errors by payload path and renders them the way e-conomic does:
    a copy of the payload's shape with failing properties replaced by `{"errors": [...]}`,
    array items as `{"arrayIndex": i, ...}`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.items: list[tuple[Path, Doc]] = []

    def add(
        self,
        path: Path,
        code: str,
        message: str,
        value: Any = _MISSING,
        hint: str = "Please check your request data.",
    ) -> None:
        error: Doc = {"errorCode": code, "message": message}
        if value is not _MISSING:
            error["value"] = value
        error["developerHint"] = hint
        self.items.append((path, error))

    def missing(self, path: Path, why: str = "") -> None:
        self.add(path, ErrorCode.REQUIRED, f"Property {path[-1]} is required{why}.")

    def not_exist(self, path: Path, value: Any, collection: str) -> None:
        hint = f"Find a list of resources at {self.base}/{collection}."
        self.add(path, ErrorCode.NOT_EXIST, f"{path[-1]} does not exist.", value, hint)

    def rule(self, path: Path, message: str, value: Any = _MISSING) -> None:
        self.add(path, ErrorCode.RULE, message, value)

    def raise_if_any(self) -> None:
        if self.items:
            raise ApiError(
                400,
                ErrorCode.VALIDATION,
                "Validation error.",
                "Inspect validation errors and correct your request.",
                errors=annotate(self.items),
            )


def annotate(items: Iterable[tuple[Path, Doc]]) -> Any:
    root: Doc = {}
    for path, error in items:
        node = root
        segments: Path = ("_", *path)
        i = 0
        while i < len(segments):
            key, nxt = segments[i], segments[i + 1] if i + 1 < len(segments) else None
            if isinstance(nxt, int):
                node, i = _array_item(node.setdefault(str(key), []), nxt), i + 2
            else:
                node, i = node.setdefault(str(key), {}), i + 1
        node.setdefault("errors", []).append(error)
    return root["_"]


def _array_item(items: list[Doc], index: int) -> Doc:
    for item in items:
        if item["arrayIndex"] == index:
            return item
    item = {"arrayIndex": index}
    items.append(item)
    items.sort(key=lambda x: int(x["arrayIndex"]))
    return item


# --- property rules from the docs' tables ---------------------------------------------------


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_integer(
    doc: Doc, dotted: str, low: int | None, high: int | None, issues: Issues, prefix: Path
) -> None:
    value = lookup(doc, dotted)
    path = _split(prefix, dotted)
    if value is None:
        return
    if not _is_int(value):
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
_ID_ENCODING = (
    ("_", "_8_"), ("<", "_0_"), (">", "_1_"), ("*", "_2_"), ("%", "_3_"), (":", "_4_"),
    ("&", "_5_"), ("/", "_6_"), ("\\", "_7_"), (" ", "_9_"), ("?", "_10_"), (".", "_11_"),
    ("#", "_12_"), ("+", "_13_"),
)
_LINK_KEYS = (
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
_DRAFT_KEYS = (
    "currency", "customer", "date", "delivery", "deliveryLocation", "dueDate", "exchangeRate",
    "layout", "notes", "paymentTerms", "project", "recipient", "references",
)
_LINE_KEYS = (
    "accrual", "departmentalDistribution", "description", "discountPercentage", "lineNumber",
    "product", "quantity", "sortKey", "unit", "unitCostPrice", "unitNetPrice",
)
_BOOKED_KEYS = (
    "currency", "customer", "date", "delivery", "deliveryLocation", "dueDate", "grossAmount",
    "grossAmountInBaseCurrency", "layout", "lines", "netAmount", "netAmountInBaseCurrency",
    "notes", "paymentTerms", "project", "recipient", "references", "roundingAmount",
    "vatAmount",
)
_BOOKED_LINE_KEYS = (
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
_DRAFT_LINE_HIDDEN = ("vatAmount", "vatRate", "costInBaseCurrency")
# fmt: on


# --- rendering ------------------------------------------------------------------------------


def encode_id(value: Any) -> str:
    text = str(value)
    for char, code in _ID_ENCODING:
        text = text.replace(char, code)
    return quote(text, safe="_-~")


_ID_DECODING = {code.strip("_"): char for char, code in _ID_ENCODING}


def decode_id(text: str) -> str:
    return re.sub(r"_(\d{1,2})_", lambda m: _ID_DECODING.get(m[1], m[0]), unquote(text))


def _link_for(doc: Doc, parent: str) -> str | None:
    for key, prefix in _LINK_KEYS:
        if key in doc:
            return prefix + encode_id(doc[key])
    if "code" in doc and (parent == "currency" or "isoNumber" in doc):
        return "/currencies/" + encode_id(doc["code"])
    return None


def linked(value: Any, base: str, parent: str = "") -> Any:
    """A copy with `self` links on every referenced entity; false booleans are omitted
    (introduction.md, "Booleans")."""
    if isinstance(value, list):
        return [linked(item, base, parent) for item in value]
    if not isinstance(value, dict):
        return value
    out = {k: linked(v, base, k) for k, v in value.items() if v is not False}
    if "self" not in out:
        link = _link_for(value, parent)
        if link:
            out["self"] = base + link
    return out


def linked_doc(doc: Doc, base: str) -> Doc:
    result: Doc = linked(doc, base)
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, ensure_ascii=False).encode()


def plain(value: Any) -> Any:
    """A JSON-compatible copy (Decimals become numbers)."""
    return json.loads(to_json(value))


def strip_links(value: Any) -> Any:
    if isinstance(value, list):
        return [strip_links(v) for v in value]
    if isinstance(value, dict):
        return {k: strip_links(v) for k, v in value.items() if k != "self"}
    return value


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- agreements -----------------------------------------------------------------------------


@dataclass
class Agreement:
    grant_token: str
    number: int
    country: str
    modules: list[str]
    ref: Doc
    pristine: Doc
    revoked: bool = False
    drafts: dict[int, Doc] = field(default_factory=dict)
    booked: dict[int, Doc] = field(default_factory=dict)
    vouchers: dict[tuple[int, str, int], Doc] = field(default_factory=dict)
    next_draft: int = 1
    next_entry: int = 1
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def base_currency(self) -> str:
        return seed.COUNTRIES[self.country].currency

    def table(self, name: str) -> dict[Any, Doc]:
        result: dict[Any, Doc] = self.ref[name]
        return result

    def rate(self, currency: str) -> Decimal:
        rates: dict[str, Decimal] = self.ref["exchangeRates"]
        return rates.get(currency, Decimal(100))

    def reset_documents(self) -> None:
        self.ref = copy.deepcopy(self.pristine)
        self.drafts.clear()
        self.booked.clear()
        self.vouchers.clear()
        self.next_draft = self.next_entry = 1
        self.calls.clear()

    def dump(self) -> Doc:
        state = {
            "agreementNumber": self.number,
            "country": self.country,
            "modules": list(self.modules),
            "revoked": self.revoked,
            "customers": list(self.table("customers").values()),
            "products": list(self.table("products").values()),
            "drafts": [self.drafts[n] for n in sorted(self.drafts)],
            "booked": [self.booked[n] for n in sorted(self.booked)],
            "vouchers": [self.vouchers[key] for key in sorted(self.vouchers)],
            "calls": dict(self.calls),
        }
        result: Doc = plain(state)
        return result


@dataclass
class Call:
    agreement: Agreement
    base: str
    url: str
    path: str
    query: Mapping[str, str]
    params: Mapping[str, Any]
    body: Any


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def created(body: Doc) -> Reply:
    location = body.get("self")
    return Reply(201, body, {"Location": location} if isinstance(location, str) else {})


def sorted_values(table: Mapping[Any, Doc]) -> list[Doc]:
    return [table[key] for key in sorted(table)]


# --- references -----------------------------------------------------------------------------


class Resolver:
    """Resolves `{"xNumber": n}` or `{"self": url}` references (introduction.md: "you are
    free to reference the entity via either id or self-link") against an agreement."""

    def __init__(self, agreement: Agreement, issues: Issues) -> None:
        self.agreement = agreement
        self.issues = issues

    def ref(self, doc: Any, key: str, path: Path, kind: str | None = None) -> Any:
        obj = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(obj, dict):
            return None
        id_key, table, collection, id_type, module = REFERENCES[kind or key]
        if module and module not in self.agreement.modules:
            message = f"{key} requires the {module} module, which the agreement does not have."
            self.issues.add(path, ErrorCode.MODULE_PROPERTY, message)
            return None
        ident = self._identifier(obj, key, id_key, collection, id_type, path)
        if ident is not None and ident not in self.agreement.table(table):
            self.issues.not_exist(path, ident, collection)
            return None
        return ident

    def _identifier(
        self, obj: Doc, key: str, id_key: str, collection: str, id_type: type, path: Path
    ) -> Any:
        ident = obj.get(id_key)
        if ident is None and isinstance(obj.get("self"), str):
            ident = id_from_link(obj["self"], collection, id_type)
            if ident is None:
                self.issues.not_exist(path, obj["self"], collection)
            return ident
        if ident is None:
            message = (
                f"No identifiers present on {key}. Please include either a self link or a {id_key}."
            )
            hint = f"Find a list of resources at {self.issues.base}/{collection}."
            self.issues.add(path, ErrorCode.NO_IDENTIFIER, message, hint=hint)
            return None
        if not isinstance(ident, id_type) or isinstance(ident, bool):
            return None  # the property rules report the wrong type
        return ident

    def currency(self, code: Any, path: Path) -> str | None:
        if not isinstance(code, str):
            return None
        if code.upper() not in self.agreement.table("currencies"):
            self.issues.not_exist(path, code, "currencies")
            return None
        return code.upper()


def id_from_link(link: str, collection: str, id_type: type) -> Any:
    path = urlparse(link).path
    prefix = f"/{collection}/"
    rest = path[len(prefix) :]
    if not path.startswith(prefix) or not rest or "/" in rest:
        return None
    raw = decode_id(rest)
    if id_type is int:
        return int(raw) if raw.lstrip("-").isdigit() else None
    return raw


# --- invoices -------------------------------------------------------------------------------


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
    draft = {k: strip_links(doc[k]) for k in _DRAFT_KEYS if k in doc}
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
        return (_month_end(issued) + credit).isoformat()
    if kind in ("paidInCash", "prepaid"):
        return issued.isoformat()
    return (issued + credit).isoformat()


def _month_end(day: dt.date) -> dt.date:
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
    line = {k: strip_links(raw[k]) for k in _LINE_KEYS if k in raw}
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
    quantity = _first_decimal(line.get("quantity"))
    price = _first_decimal(line.get("unitNetPrice"), product and product.get("salesPrice"))
    cost = _first_decimal(line.get("unitCostPrice"), product and product.get("costPrice"))
    discount = _first_decimal(line.get("discountPercentage"))
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


def _first_decimal(*values: Any) -> Decimal:
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
    booked.update({k: copy.deepcopy(draft[k]) for k in _BOOKED_KEYS if k in draft})
    booked["lines"] = [
        {k: line[k] for k in _BOOKED_LINE_KEYS if k in line} for line in draft["lines"]
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


# --- journals -------------------------------------------------------------------------------


@dataclass
class PreparedVoucher:
    journal: int
    year: str
    number: int | None
    entries: list[tuple[str, Doc]]


def prepare_voucher(
    agreement: Agreement, journal: Doc, raw: Any, prefix: Path, issues: Issues
) -> PreparedVoucher | None:
    if not isinstance(raw, dict):
        issues.add(prefix, ErrorCode.WRONG_TYPE, "A voucher must be of type object.", raw)
        return None
    reject_nulls(raw, prefix, issues)
    check(raw, VOUCHER_RULES, issues, prefix)
    year = _voucher_year(agreement, raw, prefix, issues)
    journal_no = lookup(raw, "journal.journalNumber")
    if journal_no is not None and journal_no != journal["journalNumber"]:
        issues.rule((*prefix, "journal"), "journal must be the journal posted to.", journal_no)
    entries = _voucher_entries(agreement, journal, raw, year, prefix, issues)
    number = _voucher_number(journal, raw, entries, prefix, issues)
    if year is None:
        return None
    return PreparedVoucher(journal["journalNumber"], year, number, entries)


def _voucher_year(agreement: Agreement, raw: Doc, prefix: Path, issues: Issues) -> str | None:
    obj = raw.get("accountingYear")
    if not isinstance(obj, dict):
        return None
    year = obj.get("year")
    if year is None and isinstance(obj.get("self"), str):
        year = id_from_link(obj["self"], "accounting-years", str)
    path = (*prefix, "accountingYear")
    years = agreement.table("accountingYears")
    if not isinstance(year, str) or year not in years:
        issues.not_exist(path, year, "accounting-years")
        return None
    if years[year].get("closed"):
        issues.rule(path, f"Accounting year {year} is closed.", year)
        return None
    return year


def _voucher_entries(
    agreement: Agreement, journal: Doc, raw: Doc, year: str | None, prefix: Path, issues: Issues
) -> list[tuple[str, Doc]]:
    entries = raw.get("entries")
    if not isinstance(entries, dict):
        return []
    restricted = journal["settings"].get("entryTypeRestrictedTo")
    prepared: list[tuple[str, Doc]] = []
    for key, items in entries.items():
        path = (*prefix, "entries", key)
        if not _entry_type_allowed(key, items, restricted, path, issues):
            continue
        for index, item in enumerate(items):
            entry = _prepare_entry(agreement, journal, key, item, year, (*path, index), issues)
            if entry is not None:
                prepared.append((key, entry))
    if not any(isinstance(v, list) and v for v in entries.values()):
        issues.rule((*prefix, "entries"), "A voucher must contain at least one entry.")
    return prepared


def _entry_type_allowed(
    key: str, items: Any, restricted: str | None, path: Path, issues: Issues
) -> bool:
    if key not in ENTRY_TYPES:
        issues.rule(path, f"Unknown entry type {key}; use one of {', '.join(ENTRY_TYPES)}.")
    elif not isinstance(items, list):
        issues.add(path, ErrorCode.WRONG_TYPE, f"{key} must be of type array.", items)
    elif key not in SUPPORTED_ENTRY_TYPES:
        issues.rule(path, f"{key} entries need suppliers, which this simulator does not have.")
    elif restricted and ENTRY_TYPES[key] != restricted:
        issues.rule(path, f"This journal only accepts entries of type {restricted}.")
    else:
        return True
    return False


def _prepare_entry(
    agreement: Agreement,
    journal: Doc,
    key: str,
    raw: Any,
    year: str | None,
    path: Path,
    issues: Issues,
) -> Doc | None:
    if not isinstance(raw, dict):
        issues.add(path, ErrorCode.WRONG_TYPE, "An entry must be of type object.", raw)
        return None
    check(raw, ENTRY_RULES, issues, path)
    resolver = Resolver(agreement, issues)
    refs = _entry_refs(resolver, key, raw, path)
    _entry_account_rules(agreement, key, raw, refs, path, issues)
    date = parse_date(raw.get("date"))
    if year and date and not _within_year(agreement, year, date):
        message = f"date must be within accounting year {year}."
        issues.rule((*path, "date"), message, raw.get("date"))
    currency = resolver.currency(lookup(raw, "currency.code"), (*path, "currency"))
    if issues.items:
        return None
    return _entry_document(agreement, journal, key, raw, refs, currency or agreement.base_currency)


_ENTRY_REFS = {  # property -> reference kind, per entry type
    "customerPayments": {"customer": "customer", "contraAccount": "account"},
    "manualCustomerInvoices": {"customer": "customer", "contraAccount": "account"},
    "financeVouchers": {
        "account": "account",
        "contraAccount": "account",
        "vatAccount": "vatAccount",
    },
}
_COMMON_ENTRY_REFS = {
    "contraVatAccount": "vatAccount",
    "departmentalDistribution": "departmentalDistribution",
    "project": "project",
}


def _entry_refs(resolver: Resolver, key: str, raw: Doc, path: Path) -> dict[str, Any]:
    kinds = {**_ENTRY_REFS[key], **_COMMON_ENTRY_REFS}
    return {name: resolver.ref(raw, name, (*path, name), kind) for name, kind in kinds.items()}


def _entry_account_rules(
    agreement: Agreement, key: str, raw: Doc, refs: Doc, path: Path, issues: Issues
) -> None:
    if key == "financeVouchers":
        if "account" not in raw and "contraAccount" not in raw:
            issues.missing((*path, "account"), ": either account or contraAccount is required")
    elif "customer" not in raw and "contraAccount" not in raw:
        issues.missing((*path, "customer"), ": either customer or contraAccount is required")
    if "employee" in raw:  # no employees on simulated agreements
        issues.not_exist((*path, "employee"), lookup(raw, "employee.employeeNumber"), "employees")
    for name in ("account", "contraAccount"):
        account = agreement.table("accounts").get(refs.get(name))
        if account and (account.get("blockDirectEntries") or account.get("barred")):
            message = f"Account {account['accountNumber']} does not accept entries."
            issues.rule((*path, name), message)


def _within_year(agreement: Agreement, year: str, date: dt.date) -> bool:
    doc = agreement.table("accountingYears")[year]
    return bool(doc["fromDate"] <= date.isoformat() <= doc["toDate"])


def _entry_document(
    agreement: Agreement, journal: Doc, key: str, raw: Doc, refs: Doc, currency: str
) -> Doc:
    amount = _first_decimal(raw["amount"])
    rate = to_decimal(raw.get("exchangeRate")) or agreement.rate(currency)
    entry: Doc = {"entryType": ENTRY_TYPES[key], "date": raw["date"], "amount": amount}
    entry.update(currency={"code": currency}, exchangeRate=rate)
    entry["amountBaseCurrency"] = money(amount * rate / 100)
    for name, ident in refs.items():
        if ident is not None:
            kind = {**_ENTRY_REFS[key], **_COMMON_ENTRY_REFS}[name]
            entry[name] = {REFERENCES[kind][0]: ident}
    if key != "financeVouchers" and "contraAccount" not in entry:
        entry["contraAccount"] = dict(journal["settings"]["contraAccounts"]["customerPayments"])
    for name in ("text", "customerInvoice", "dueDate"):
        if name in raw:
            entry[name] = raw[name]
    for name in ("vatAmount", "contraVatAmount"):
        if name in raw:
            entry[name] = _first_decimal(raw[name])
    if lookup(raw, "voucher.voucherNumber") is not None:
        entry["voucher"] = {"voucherNumber": raw["voucher"]["voucherNumber"]}
    return entry


def _voucher_number(
    journal: Doc, raw: Doc, entries: list[tuple[str, Doc]], prefix: Path, issues: Issues
) -> int | None:
    """The voucher's number: its voucherNumber, else the one its entries carry, else None
    (assigned when stored)."""
    given = raw.get("voucherNumber")
    numbers = {lookup(e, "voucher.voucherNumber") for _, e in entries} - {None}
    if given is None and len(numbers) == 1:
        given = numbers.pop()
    elif numbers - {given}:
        issues.rule((*prefix, "entries"), "All entries of a voucher must carry its number.")
    if given is None or not _is_int(given):
        return None
    limits = journal["settings"]["voucherNumbers"]
    if not limits["minimumVoucherNumber"] <= given <= limits["maximumVoucherNumber"]:
        issues.rule((*prefix, "voucherNumber"), "voucherNumber is outside the journal's range.")
    return int(given)


# --- the simulator --------------------------------------------------------------------------


class EconomicSimulator:
    """In-memory e-conomic: agreements with seeded reference data, draft and booked invoices,
    journal vouchers; served as an ASGI app (`app`) wrapped in fault injection."""

    def __init__(
        self,
        app_secret_token: str = "sim-app-secret",
        app_public_token: str = "sim-app-public",
        rate_limit_per_day: int = 50000,
        faults: Faults | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.app_secret_token = app_secret_token
        self.app_public_token = app_public_token
        self.rate_limit_per_day = rate_limit_per_day
        self.faults = faults or Faults()
        self.log = RequestLog()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.lock = threading.RLock()
        self.agreements: dict[str, Agreement] = {}
        inner = Starlette(
            routes=[*ApiRoutes(self).routes(), *ControlRoutes(self).routes()],
            exception_handlers={HTTPException: self._http_exception},
        )
        throttle = to_json(error_body(self._fair_use_error()))
        self.app = FaultInjector(inner, self.faults, self.log, throttle)

    # -- public interface -------------------------------------------------------------------

    def add_agreement(
        self, country: str, modules: list[str] | None = None, grant_token: str | None = None
    ) -> str:
        """A new agreement with realistic reference data; returns its grant token."""
        country = country.upper()
        if country not in seed.COUNTRIES:
            raise ValueError(f"unknown country {country!r}; known: {sorted(seed.COUNTRIES)}")
        names = seed.normalise_modules(modules)
        with self.lock:
            number = next(_AGREEMENT_NUMBERS)
            token = grant_token or self._grant_token(number, country)
            if token in self.agreements:
                raise ValueError(f"grant token {token!r} is already in use")
            # Seeded by its place in this simulator: the same set-up gives the same data.
            ref = seed.build_reference(country, 700001 + len(self.agreements))
            agreement = Agreement(token, number, country, names, ref, copy.deepcopy(ref))
            self.agreements[token] = agreement
        return token

    def revoke_grant(self, grant_token: str) -> None:
        with self.lock:
            self._agreement(grant_token).revoked = True

    def set_modules(self, grant_token: str, modules: list[str]) -> None:
        names = seed.normalise_modules(modules)
        with self.lock:
            self._agreement(grant_token).modules = names

    def installation_url(self, redirect_url: str, base_url: str = "") -> str:
        """The simulator's stand-in for requestaccess.aspx; prefix it with the server URL."""
        query = urlencode({"appPublicToken": self.app_public_token, "redirectUrl": redirect_url})
        return f"{base_url.rstrip('/')}/_control/install?{query}"

    def state_dump(self) -> dict[str, Any]:
        with self.lock:
            return {token: a.dump() for token, a in self.agreements.items()}

    def reset(self) -> None:
        """Forget documents written through the API; agreements and reference data stay."""
        with self.lock:
            for agreement in self.agreements.values():
                agreement.reset_documents()

    # -- request plumbing -------------------------------------------------------------------

    def _grant_token(self, number: int, country: str) -> str:
        digest = hashlib.sha256(f"{self.app_secret_token}:{country}:{number}".encode())
        return f"{country.lower()}{number}-{digest.hexdigest()[:32]}"

    def _agreement(self, grant_token: str) -> Agreement:
        agreement = self.agreements.get(grant_token)
        if agreement is None:
            raise KeyError(f"unknown agreement grant token {grant_token!r}")
        return agreement

    def _fair_use_error(self) -> ApiError:
        message = (
            f"Too many requests. The fair use limit of {self.rate_limit_per_day} API calls "
            "per 24 hours for this agreement has been exceeded."
        )
        hint = "Spread the calls over time and cache reference data."
        return ApiError(429, ErrorCode.FAIR_USE, message, hint)

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code != 405:
            return error_response(not_found(f"The resource {request.url.path}"))
        message = f"The HTTP method {request.method} is not allowed on {request.url.path}."
        hint = "There is no PATCH: PUT the whole document. Booked invoices cannot be changed."
        return error_response(ApiError(405, ErrorCode.METHOD, message, hint, None, exc.headers))

    async def authorize(self, request: Request, module: str | None) -> Call:
        secret = request.headers.get("x-appsecrettoken")
        grant = request.headers.get("x-agreementgranttoken")
        with self.lock:
            agreement = self._check_tokens(secret, grant)
            self._count_call(agreement)
            if module and module not in agreement.modules:
                raise module_error(module)
        return Call(
            agreement=agreement,
            base=str(request.base_url).rstrip("/"),
            url=str(request.url),
            path=request.url.path,
            query=request.query_params,
            params=request.path_params,
            body=await read_body(request),
        )

    def _check_tokens(self, secret: str | None, grant: str | None) -> Agreement:
        hint = "Send the X-AppSecretToken and X-AgreementGrantToken headers."
        if not secret or not grant:
            missing = "X-AppSecretToken" if not secret else "X-AgreementGrantToken"
            raise ApiError(401, ErrorCode.UNAUTHORIZED, f"The {missing} header is missing.", hint)
        if secret != self.app_secret_token:
            raise ApiError(401, ErrorCode.UNAUTHORIZED, "The X-AppSecretToken is not valid.", hint)
        agreement = self.agreements.get(grant)
        if agreement is None or agreement.revoked:
            message = "The X-AgreementGrantToken is not valid; the grant may have been revoked."
            hint = "The customer must install the app again to issue a new grant token."
            raise ApiError(401, ErrorCode.UNAUTHORIZED, message, hint)
        return agreement

    def _count_call(self, agreement: Agreement) -> None:
        now = self.clock()
        day = now.date().isoformat()
        agreement.calls[day] = agreement.calls.get(day, 0) + 1
        if agreement.calls[day] > self.rate_limit_per_day:
            midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), now.tzinfo)
            err = self._fair_use_error()
            err.headers["Retry-After"] = str(max(1, int((midnight - now).total_seconds())))
            raise err

    def run(self, handler: Handler, call: Call) -> Reply:
        with self.lock:
            return handler(call)


def module_error(module: str) -> ApiError:
    message = f"The agreement does not have the {module} module, which this endpoint requires."
    hint = "The customer must add the module to the e-conomic subscription; see /self modules."
    return ApiError(403, ErrorCode.MODULE, message, hint)


async def read_body(request: Request) -> Any:
    if request.method not in ("POST", "PUT"):
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        message = f"Unsupported media type {media or '(none)'}: this is a JSON API."
        raise ApiError(415, ErrorCode.MEDIA_TYPE, message, "Send Content-Type: application/json.")
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.") from exc


def error_response(err: ApiError) -> Response:
    return Response(to_json(error_body(err)), err.status, err.headers, "application/json")


def reply_response(reply: Reply) -> Response:
    if reply.status == 204:
        return Response(status_code=204, headers=reply.headers)
    return Response(to_json(reply.body), reply.status, reply.headers, "application/json")


# --- collections ----------------------------------------------------------------------------


def _query_int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be an integer.") from exc


def collection(
    call: Call,
    docs: Iterable[Doc],
    filters: Mapping[str, str],
    sorts: Mapping[str, str] | None = None,
    render: Callable[[Doc], Doc] | None = None,
) -> Reply:
    """One page of a collection (introduction.md: "Pagination", "Filtering", "Sorting")."""
    skip = _query_int(call.query, "skippages", 0)
    size = _query_int(call.query, "pagesize", DEFAULT_PAGE_SIZE)
    if not 1 <= size <= MAX_PAGE_SIZE or skip < 0:
        message = f"pagesize must be between 1 and {MAX_PAGE_SIZE}, skippages at least 0."
        raise bad_request(message, "Follow pagination.nextPage through larger collections.")
    everything = list(docs)
    selected = filtered(call, everything, filters)
    if call.query.get("sort"):
        selected = _sorted(selected, call.query["sort"], filters if sorts is None else sorts)
    page = selected[skip * size : (skip + 1) * size]
    draw = render or (lambda d: linked_doc(d, call.base))
    body = {
        "collection": [draw(d) for d in page],
        "pagination": _pagination(call, skip, size, len(selected), len(everything)),
        "self": call.url,
    }
    return Reply(200, body)


def filtered(call: Call, docs: list[Doc], filters: Mapping[str, str]) -> list[Doc]:
    text = call.query.get("filter")
    if not text:
        return docs
    try:
        node = validate_filter(text, filters)
        return [d for d in docs if matches(d, node, filters)]
    except QueryError as exc:
        raise bad_request(str(exc), "See the collection's filterable properties.") from exc


def _sorted(docs: list[Doc], sort: str, sorts: Mapping[str, str]) -> list[Doc]:
    try:
        return sort_documents(docs, sort, sorts)
    except QueryError as exc:
        raise bad_request(str(exc), "See the collection's sortable properties.") from exc


def _pagination(call: Call, skip: int, size: int, results: int, unfiltered: int) -> Doc:
    last = max(0, (results - 1) // size)
    extra = {k: call.query[k] for k in ("filter", "sort") if call.query.get(k)}

    def page(number: int) -> str:
        query = urlencode({"skippages": number, "pagesize": size, **extra}, quote_via=quote)
        return f"{call.base}{call.path}?{query}"

    info: Doc = {
        "maxPageSizeAllowed": MAX_PAGE_SIZE,
        "skipPages": skip,
        "pageSize": size,
        "results": results,
        "resultsWithoutFilter": unfiltered,
        "firstPage": page(0),
    }
    if skip > 0:
        info["previousPage"] = page(min(skip - 1, last))
    if skip < last:
        info["nextPage"] = page(skip + 1)
    info["lastPage"] = page(last)
    return info


# --- API routes -----------------------------------------------------------------------------


class ApiRoutes:
    """The e-conomic REST endpoints. Handlers run under the simulator's lock."""

    def __init__(self, sim: EconomicSimulator) -> None:
        self.sim = sim

    def route(self, path: str, module: str | None = None, **handlers: Handler) -> Route:
        sim = self.sim

        async def endpoint(request: Request) -> Response:
            handler = handlers.get(request.method) or handlers["GET"]  # HEAD
            try:
                call = await sim.authorize(request, module)
                reply = sim.run(handler, call)
            except ApiError as err:
                return error_response(err)
            return reply_response(reply)

        return Route(path, endpoint, methods=list(handlers))

    def routes(self) -> list[Route]:
        return [
            self.route("/", GET=self.root),
            self.route("/self", GET=self.get_self),
            *self.customer_routes(),
            *self.reference_routes(),
            *self.product_routes(),
            *self.invoice_routes(),
            *self.journal_routes(),
            *self.module_routes(),
        ]

    # -- root, /self and reference data -----------------------------------------------------

    def root(self, call: Call) -> Reply:
        names = (
            "accounting-years", "accounts", "currencies", "customer-groups", "customers",
            "invoices", "journals", "layouts", "payment-terms", "product-groups", "products",
            "self", "units", "vat-accounts", "vat-zones",
        )  # fmt: skip
        links = {name: f"{call.base}/{name}" for name in names}
        return Reply(200, {**links, "self": f"{call.base}/"})

    def get_self(self, call: Call) -> Reply:
        ag = call.agreement
        country = seed.COUNTRIES[ag.country]
        type_number, type_name = country.agreement_type
        language_number, language_name, culture = country.language
        company = ag.ref["company"]
        language = {"languageNumber": language_number, "name": language_name, "culture": culture}
        body: Doc = {
            "agreementNumber": ag.number,
            "agreementType": {"agreementTypeNumber": type_number, "name": type_name},
            "application": {
                "appNumber": 1,
                "appPublicToken": self.sim.app_public_token,
                "name": "ledgerpush",
                "created": "2025-01-01",
                "requiredRoles": [{"roleNumber": 1, "name": "SuperUser"}],
            },
            "bankInformation": {"bankAccountNumber": "1234567890", "bankName": "Simulated Bank"},
            "canSendElectronicInvoice": ag.country == "DK",
            "company": company,
            "companyAffiliation": "E-conomic",
            "modules": seed.modules_doc(ag.modules),
            "settings": {"baseCurrency": ag.base_currency, "internationalLedger": "true"},
            "signupDate": "2025-01-01",
            "user": {
                "agreementNumber": ag.number,
                "email": company["email"],
                "language": language,
                "loginId": "ADMIN",
                "name": company["attention"],
            },
            "userName": company["attention"],
            "self": f"{call.base}/self",
        }
        return Reply(200, linked_doc(body, call.base))

    def table_routes(
        self, path: str, table: str, filters: Mapping[str, str], id_spec: str = "{id:int}"
    ) -> list[Route]:
        def listing(call: Call) -> Reply:
            return collection(call, sorted_values(call.agreement.table(table)), filters)

        def single(call: Call) -> Reply:
            doc = call.agreement.table(table).get(call.params["id"])
            if doc is None:
                raise not_found(f"{path[1:]} {call.params['id']}")
            return Reply(200, linked_doc(doc, call.base))

        return [self.route(path, GET=listing), self.route(f"{path}/{id_spec}", GET=single)]

    def reference_routes(self) -> list[Route]:
        years = "/accounting-years/{year}/periods"
        groups = "/product-groups"
        return [
            *self.table_routes("/layouts", "layouts", NO_FILTERS),
            *self.table_routes("/payment-terms", "paymentTerms", NO_FILTERS),
            *self.table_routes("/vat-zones", "vatZones", NO_FILTERS),
            *self.table_routes("/vat-accounts", "vatAccounts", NO_FILTERS, "{id}"),
            *self.table_routes("/vat-types", "vatTypes", NO_FILTERS),
            *self.table_routes("/accounts", "accounts", ACCOUNT_FILTERS),
            *self.table_routes("/units", "units", NO_FILTERS),
            *self.table_routes("/currencies", "currencies", NO_FILTERS, "{id}"),
            *self.table_routes("/customer-groups", "customerGroups", CUSTOMER_GROUP_FILTERS),
            *self.table_routes("/accounting-years", "accountingYears", YEAR_FILTERS, "{id}"),
            self.route(years, GET=self.periods),
            self.route(years + "/{period:int}", GET=self.period),
            self.route(groups, GET=self.product_groups),
            self.route(groups + "/{id:int}", GET=self.product_group),
            self.route(groups + "/{id:int}/sales-accounts", GET=self.sales_accounts),
        ]

    def _periods(self, call: Call) -> list[Doc]:
        year = call.agreement.table("accountingYears").get(call.params["year"])
        if year is None:
            raise not_found(f"Accounting year {call.params['year']}")
        first = dt.date.fromisoformat(year["fromDate"])
        periods = []
        for number in range(1, 13):
            last = _month_end(first)
            link = f"{call.base}/accounting-years/{year['year']}/periods/{number}"
            periods.append(
                {
                    "periodNumber": number,
                    "fromDate": first.isoformat(),
                    "toDate": last.isoformat(),
                    "accountingYear": {"year": year["year"]},
                    "self": link,
                }
            )
            first = last + dt.timedelta(days=1)
        return periods

    def periods(self, call: Call) -> Reply:
        return collection(call, self._periods(call), PERIOD_FILTERS)

    def period(self, call: Call) -> Reply:
        for period in self._periods(call):
            if period["periodNumber"] == call.params["period"]:
                return Reply(200, linked_doc(period, call.base))
        raise not_found(f"Period {call.params['period']}")

    def _group(self, call: Call) -> Doc:
        group = call.agreement.table("productGroups").get(call.params["id"])
        if group is None:
            raise not_found(f"Product group {call.params['id']}")
        return group

    def _render_group(self, call: Call, group: Doc) -> Doc:
        doc = {k: v for k, v in group.items() if k != "salesAccounts"}
        link = f"{call.base}/product-groups/{group['productGroupNumber']}"
        doc.update(salesAccounts=f"{link}/sales-accounts", products=f"{link}/products")
        return linked_doc(doc, call.base)

    def product_groups(self, call: Call) -> Reply:
        groups = sorted_values(call.agreement.table("productGroups"))
        return collection(call, groups, NO_FILTERS, render=lambda g: self._render_group(call, g))

    def product_group(self, call: Call) -> Reply:
        return Reply(200, self._render_group(call, self._group(call)))

    def sales_accounts(self, call: Call) -> Reply:
        ag = call.agreement
        rows = [
            {"salesAccount": ag.table("accounts")[account], "vatZone": ag.table("vatZones")[zone]}
            for zone, account in sorted(self._group(call)["salesAccounts"].items())
        ]
        filters = {f"salesAccount.{k}": v for k, v in ACCOUNT_FILTERS.items()}
        return collection(call, rows, filters)

    # -- customers --------------------------------------------------------------------------

    def customer_routes(self) -> list[Route]:
        one = "/customers/{customerNumber:int}"
        return [
            self.route("/customers", GET=self.list_customers, POST=self.create_customer),
            self.route(
                one, GET=self.get_customer, PUT=self.put_customer, DELETE=self.delete_customer
            ),
        ]

    def list_customers(self, call: Call) -> Reply:
        sorts = {k: v for k, v in CUSTOMER_FILTERS.items() if k != "barred"}
        customers = sorted_values(call.agreement.table("customers"))
        return collection(call, customers, CUSTOMER_FILTERS, sorts)

    def _customer(self, call: Call) -> Doc:
        customer = call.agreement.table("customers").get(call.params["customerNumber"])
        if customer is None:
            raise not_found(f"Customer {call.params['customerNumber']}")
        return customer

    def get_customer(self, call: Call) -> Reply:
        return Reply(200, linked_doc(self._customer(call), call.base))

    def _valid_customer(self, call: Call, number: int | None) -> Doc:
        ag = call.agreement
        doc = require_object(call.body)
        issues = Issues(call.base)
        reject_nulls(doc, (), issues)
        check(doc, CUSTOMER_RULES, issues)
        resolver = Resolver(ag, issues)
        resolver.currency(doc.get("currency"), ("currency",))
        for key in ("customerGroup", "paymentTerms", "vatZone", "layout"):
            resolver.ref(doc, key, (key,))
        given = doc.get("customerNumber")
        if number is None and _is_int(given) and given in ag.table("customers"):
            message = f"Customer number {given} is already in use."
            issues.add(("customerNumber",), ErrorCode.ALREADY_EXISTS, message, given)
        if number is not None and given is not None and given != number:
            issues.rule(("customerNumber",), "customerNumber must match the URL.", given)
        issues.raise_if_any()
        customer: Doc = strip_links({k: v for k, v in doc.items() if k not in ("balance", "self")})
        customer["currency"] = doc["currency"].upper()
        customer["balance"] = Decimal("0.00")
        customer["lastUpdated"] = timestamp(self.sim.clock())
        return customer

    def create_customer(self, call: Call) -> Reply:
        customers = call.agreement.table("customers")
        customer = self._valid_customer(call, None)
        number = customer.get("customerNumber") or max(customers, default=0) + 1
        customer["customerNumber"] = number
        customers[number] = customer
        return created(linked_doc(customer, call.base))

    def put_customer(self, call: Call) -> Reply:
        old = self._customer(call)
        customer = self._valid_customer(call, old["customerNumber"])
        customer.update(customerNumber=old["customerNumber"], balance=old["balance"])
        call.agreement.table("customers")[old["customerNumber"]] = customer
        return Reply(200, linked_doc(customer, call.base))

    def delete_customer(self, call: Call) -> Reply:
        ag = call.agreement
        number = self._customer(call)["customerNumber"]
        documents = [*ag.drafts.values(), *ag.booked.values()]
        if any(d["customer"]["customerNumber"] == number for d in documents):
            raise bad_request(f"Customer {number} has invoices and cannot be deleted.")
        del ag.table("customers")[number]
        return Reply(204, None)

    # -- products ---------------------------------------------------------------------------

    def product_routes(self) -> list[Route]:
        one = "/products/{productNumber}"
        return [
            self.route("/products", GET=self.list_products, POST=self.create_product),
            self.route(one, GET=self.get_product, PUT=self.put_product, DELETE=self.delete_product),
        ]

    def list_products(self, call: Call) -> Reply:
        products = sorted_values(call.agreement.table("products"))
        return collection(call, products, PRODUCT_FILTERS, PRODUCT_SORTS)

    def _product(self, call: Call) -> Doc:
        number = decode_id(call.params["productNumber"])
        product = call.agreement.table("products").get(number)
        if product is None:
            raise not_found(f"Product {number}")
        return product

    def get_product(self, call: Call) -> Reply:
        return Reply(200, linked_doc(self._product(call), call.base))

    def _valid_product(self, call: Call, number: str | None) -> Doc:
        ag = call.agreement
        doc = require_object(call.body)
        issues = Issues(call.base)
        reject_nulls(doc, (), issues)
        check(doc, PRODUCT_RULES, issues)
        resolver = Resolver(ag, issues)
        refs = {k: resolver.ref(doc, k, (k,)) for k in ("productGroup", "unit")}
        resolver.ref(doc, "departmentalDistribution", ("departmentalDistribution",))
        given = doc.get("productNumber")
        if number is None and isinstance(given, str) and given in ag.table("products"):
            message = f"Product number {given} is already in use."
            issues.add(("productNumber",), ErrorCode.ALREADY_EXISTS, message, given)
        if number is not None and given is not None and given != number:
            issues.rule(("productNumber",), "productNumber must match the URL.", given)
        issues.raise_if_any()
        product: Doc = strip_links({k: v for k, v in doc.items() if k not in ("invoices", "self")})
        for name in ("costPrice", "salesPrice", "recommendedPrice"):
            if name in product:
                product[name] = _first_decimal(product[name])
        if refs["unit"] is not None:
            unit = ag.table("units")[refs["unit"]]
            product["unit"] = {"unitNumber": unit["unitNumber"], "name": unit["name"]}
        product["lastUpdated"] = timestamp(self.sim.clock())
        return product

    def create_product(self, call: Call) -> Reply:
        product = self._valid_product(call, None)
        call.agreement.table("products")[product["productNumber"]] = product
        return created(linked_doc(product, call.base))

    def put_product(self, call: Call) -> Reply:
        number = self._product(call)["productNumber"]
        product = self._valid_product(call, number)
        call.agreement.table("products")[number] = product
        return Reply(200, linked_doc(product, call.base))

    def delete_product(self, call: Call) -> Reply:
        ag = call.agreement
        number = self._product(call)["productNumber"]
        lines = [line for d in [*ag.drafts.values(), *ag.booked.values()] for line in d["lines"]]
        if any(lookup(line, "product.productNumber") == number for line in lines):
            raise bad_request(f"Product {number} is used on invoices and cannot be deleted.")
        del ag.table("products")[number]
        return Reply(204, None)

    # -- invoices ---------------------------------------------------------------------------

    def invoice_routes(self) -> list[Route]:
        drafts, booked = "/invoices/drafts", "/invoices/booked"
        one = drafts + "/{number:int}"
        return [
            self.route("/invoices", GET=self.invoices_root),
            self.route(
                drafts, GET=self.list_drafts, POST=self.create_draft, DELETE=self.delete_drafts
            ),
            self.route(one, GET=self.get_draft, PUT=self.put_draft, DELETE=self.delete_draft),
            self.route(one + "/templates", GET=self.draft_templates),
            self.route(one + "/templates/booking-instructions", GET=self.booking_instructions),
            self.route(booked, GET=self.list_booked, POST=self.book),
            self.route(booked + "/{number:int}", GET=self.get_booked, PUT=self.book),
        ]

    def invoices_root(self, call: Call) -> Reply:
        base = f"{call.base}/invoices"
        return Reply(200, {"booked": f"{base}/booked", "drafts": f"{base}/drafts", "self": base})

    def render_draft(self, call: Call, draft: Doc, with_lines: bool = True) -> Doc:
        doc = {k: v for k, v in draft.items() if k != "lines"}
        if with_lines:  # the collection's items carry no lines (invoices.md)
            doc["lines"] = [
                {k: v for k, v in line.items() if k not in _DRAFT_LINE_HIDDEN}
                for line in draft["lines"]
            ]
        link = f"{call.base}/invoices/drafts/{draft['draftInvoiceNumber']}"
        doc["pdf"] = {"self": f"{link}/pdf"}
        doc["templates"] = {
            "bookingInstructions": f"{link}/templates/booking-instructions",
            "self": f"{link}/templates",
        }
        return linked_doc(doc, call.base)

    def render_booked(self, call: Call, booked: Doc, with_lines: bool = True) -> Doc:
        doc = {k: v for k, v in booked.items() if with_lines or k != "lines"}
        link = f"{call.base}/invoices/booked/{booked['bookedInvoiceNumber']}"
        doc.update(pdf={"self": f"{link}/pdf"}, sent=f"{link}/sent")
        return linked_doc(doc, call.base)

    def list_drafts(self, call: Call) -> Reply:
        def render(draft: Doc) -> Doc:
            return self.render_draft(call, draft, with_lines=False)

        return collection(call, sorted_values(call.agreement.drafts), DRAFT_FILTERS, render=render)

    def _draft(self, call: Call) -> Doc:
        draft = call.agreement.drafts.get(call.params["number"])
        if draft is None:
            raise not_found(f"Draft invoice {call.params['number']}")
        return draft

    def get_draft(self, call: Call) -> Reply:
        return Reply(200, self.render_draft(call, self._draft(call)))

    def create_draft(self, call: Call) -> Reply:
        ag = call.agreement
        draft = build_draft(ag, call.body, Issues(call.base), put=False)
        number = ag.next_draft
        ag.next_draft += 1
        ag.drafts[number] = {"draftInvoiceNumber": number, **draft}
        return created(self.render_draft(call, ag.drafts[number]))

    def put_draft(self, call: Call) -> Reply:
        number = self._draft(call)["draftInvoiceNumber"]
        draft = build_draft(call.agreement, call.body, Issues(call.base), put=True)
        call.agreement.drafts[number] = {"draftInvoiceNumber": number, **draft}
        return Reply(200, self.render_draft(call, call.agreement.drafts[number]))

    def _deleted(self, call: Call, numbers: list[int], message: str) -> Reply:
        for number in numbers:
            del call.agreement.drafts[number]
        items = [
            {"draftInvoiceNumber": n, "self": f"{call.base}/invoices/drafts/{n}"} for n in numbers
        ]
        return Reply(200, {"message": message, "deletedCount": len(numbers), "deletedItems": items})

    def delete_draft(self, call: Call) -> Reply:
        return self._deleted(call, [self._draft(call)["draftInvoiceNumber"]], "Deleted invoice.")

    def delete_drafts(self, call: Call) -> Reply:
        drafts = filtered(call, sorted_values(call.agreement.drafts), DRAFT_FILTERS)
        numbers = [d["draftInvoiceNumber"] for d in drafts]
        return self._deleted(call, numbers, f"Deleted {len(numbers)} invoices.")

    def draft_templates(self, call: Call) -> Reply:
        link = f"{call.base}/invoices/drafts/{self._draft(call)['draftInvoiceNumber']}/templates"
        return Reply(200, {"bookingInstructions": f"{link}/booking-instructions", "self": link})

    def booking_instructions(self, call: Call) -> Reply:
        number = self._draft(call)["draftInvoiceNumber"]
        link = f"{call.base}/invoices/drafts/{number}"
        body = {
            "draftInvoice": {"draftInvoiceNumber": number, "self": link},
            "self": f"{link}/templates/booking-instructions",
        }
        return Reply(200, body)

    def book(self, call: Call) -> Reply:
        """POST /invoices/booked, or PUT /invoices/booked/:bookWithNumber (invoices.md)."""
        ag = call.agreement
        payload = require_object(call.body)
        issues = Issues(call.base)
        reject_nulls(payload, (), issues)
        check(payload, BOOK_RULES, issues)
        draft_number = self._draft_to_book(call, payload, issues)
        number = self._booking_number(call, payload, issues)
        draft = ag.drafts.get(draft_number) if draft_number is not None else None
        if draft is not None:
            check_bookable(ag, draft, issues)
        issues.raise_if_any()
        assert draft is not None and number is not None
        ag.booked[number] = booked_from_draft(draft, number)
        del ag.drafts[draft["draftInvoiceNumber"]]
        return created(self.render_booked(call, ag.booked[number]))

    def _draft_to_book(self, call: Call, payload: Doc, issues: Issues) -> int | None:
        obj = payload.get("draftInvoice")
        if not isinstance(obj, dict):
            return None
        number = obj.get("draftInvoiceNumber")
        if number is None and isinstance(obj.get("self"), str):
            number = id_from_link(obj["self"], "invoices/drafts", int)
        elif number is None:
            message = (
                "No identifiers present on draftInvoice. "
                "Please include either a self link or a draftInvoiceNumber."
            )
            issues.add(("draftInvoice",), ErrorCode.NO_IDENTIFIER, message)
            return None
        if not _is_int(number) or number not in call.agreement.drafts:
            issues.not_exist(("draftInvoice",), number, "invoices/drafts")
            return None
        return int(number)

    def _booking_number(self, call: Call, payload: Doc, issues: Issues) -> int | None:
        ag = call.agreement
        given = payload.get("bookWithNumber")
        number = call.params.get("number", given)
        if given is not None and number != given:
            issues.rule(("bookWithNumber",), "bookWithNumber must match the URL.", given)
        if number is None:
            return max(ag.booked, default=0) + 1
        if not _is_int(number) or number < 1:
            return None
        if number in ag.booked:
            message = (
                f"Invoice {number} is already booked. Booked invoices cannot be changed; "
                "correct them with a credit note."
            )
            issues.add(("bookWithNumber",), ErrorCode.ALREADY_EXISTS, message, number)
            return None
        return int(number)

    def list_booked(self, call: Call) -> Reply:
        def render(booked: Doc) -> Doc:
            return self.render_booked(call, booked, with_lines=False)

        booked = sorted_values(call.agreement.booked)
        return collection(call, booked, BOOKED_FILTERS, render=render)

    def get_booked(self, call: Call) -> Reply:
        booked = call.agreement.booked.get(call.params["number"])
        if booked is None:
            raise not_found(f"Booked invoice {call.params['number']}")
        return Reply(200, self.render_booked(call, booked))

    # -- journals ---------------------------------------------------------------------------

    def journal_routes(self) -> list[Route]:
        one = "/journals/{journalNumber:int}"
        return [
            self.route("/journals", GET=self.list_journals),
            self.route(one, GET=self.get_journal),
            self.route(one + "/vouchers", GET=self.list_vouchers, POST=self.post_vouchers),
            self.route(one + "/vouchers/{voucher}", GET=self.get_voucher),
            self.route(one + "/entries", GET=self.list_entries),
            self.route(one + "/entries/{entry:int}", DELETE=self.delete_entry),
            self.route(one + "/templates", GET=self.journal_templates),
        ]

    def _journal(self, call: Call) -> Doc:
        journal = call.agreement.table("journals").get(call.params["journalNumber"])
        if journal is None:
            raise not_found(f"Journal {call.params['journalNumber']}")
        return journal

    def render_journal(self, call: Call, journal: Doc) -> Doc:
        link = f"{call.base}/journals/{journal['journalNumber']}"
        doc = dict(journal)
        doc.update(entries=f"{link}/entries", vouchers=f"{link}/vouchers")
        doc["templates"] = {"self": f"{link}/templates"}
        return linked_doc(doc, call.base)

    def list_journals(self, call: Call) -> Reply:
        journals = sorted_values(call.agreement.table("journals"))
        return collection(
            call, journals, JOURNAL_FILTERS, render=lambda j: self.render_journal(call, j)
        )

    def get_journal(self, call: Call) -> Reply:
        return Reply(200, self.render_journal(call, self._journal(call)))

    def journal_templates(self, call: Call) -> Reply:
        link = f"{call.base}/journals/{self._journal(call)['journalNumber']}/templates"
        return Reply(200, {"self": link})

    def render_voucher(self, call: Call, voucher: Doc) -> Doc:
        journal = voucher["journal"]["journalNumber"]
        year, number = voucher["accountingYear"]["year"], voucher["voucherNumber"]
        link = f"{call.base}/journals/{journal}/vouchers/{year}-{number}"
        doc = linked_doc(voucher, call.base)
        doc["self"] = link
        for entries in doc["entries"].values():
            for entry in entries:
                entry_no = entry["journalEntryNumber"]
                entry["self"] = f"{call.base}/journals/{journal}/entries/{entry_no}"
                entry["voucher"]["self"] = link
        return doc

    def _journal_vouchers(self, call: Call) -> list[Doc]:
        journal = self._journal(call)["journalNumber"]
        vouchers = call.agreement.vouchers
        return [vouchers[key] for key in sorted(vouchers) if key[0] == journal]

    def list_vouchers(self, call: Call) -> Reply:
        vouchers = self._journal_vouchers(call)
        return collection(call, vouchers, NO_FILTERS, render=lambda v: self.render_voucher(call, v))

    def get_voucher(self, call: Call) -> Reply:
        journal = self._journal(call)["journalNumber"]
        year, _, number = str(call.params["voucher"]).rpartition("-")
        key = (journal, year, int(number) if number.isdigit() else -1)
        voucher = call.agreement.vouchers.get(key)
        if voucher is None:
            raise not_found(f"Voucher {call.params['voucher']}")
        return Reply(200, self.render_voucher(call, voucher))

    def post_vouchers(self, call: Call) -> Reply:
        """One voucher object in, one out; an array (bulk) in, an array out."""
        ag = call.agreement
        journal = self._journal(call)
        many = isinstance(call.body, list)
        raws = call.body if many else [call.body]
        issues = Issues(call.base)
        prepared = [
            prepare_voucher(ag, journal, raw, (i,) if many else (), issues)
            for i, raw in enumerate(raws)
        ]
        if not raws:
            raise bad_request("Post at least one voucher.")
        issues.raise_if_any()
        stored = [self._store_voucher(ag, p) for p in prepared if p is not None]
        rendered = [self.render_voucher(call, voucher) for voucher in stored]
        return Reply(201, rendered) if many else created(rendered[0])

    def _store_voucher(self, ag: Agreement, prepared: PreparedVoucher) -> Doc:
        number = prepared.number or self._next_voucher_number(ag, prepared)
        empty = {
            "accountingYear": {"year": prepared.year},
            "journal": {"journalNumber": prepared.journal},
            "voucherNumber": number,
            "entries": {},
        }
        # Entries posted with an existing voucher number join that voucher, like lines with
        # the same voucher number in a daybook.
        voucher = ag.vouchers.setdefault((prepared.journal, prepared.year, number), empty)
        for type_key, entry in prepared.entries:
            stored = {**entry, "journalEntryNumber": ag.next_entry}
            ag.next_entry += 1
            stored["journal"] = {"journalNumber": prepared.journal}
            stored["voucher"] = {"voucherNumber": number, "accountingYear": {"year": prepared.year}}
            voucher["entries"].setdefault(type_key, []).append(stored)
        return voucher

    def _next_voucher_number(self, ag: Agreement, prepared: PreparedVoucher) -> int:
        journal = ag.table("journals")[prepared.journal]
        used = [k[2] for k in ag.vouchers if k[:2] == (prepared.journal, prepared.year)]
        minimum = int(journal["settings"]["voucherNumbers"]["minimumVoucherNumber"])
        return max([minimum - 1, *used]) + 1

    def _entries(self, call: Call) -> list[Doc]:
        rows = []
        for voucher in self._journal_vouchers(call):
            for entries in self.render_voucher(call, voucher)["entries"].values():
                for entry in entries:
                    entry["amountDefaultCurrency"] = entry["amountBaseCurrency"]
                    rows.append(entry)
        order = list(ENTRY_TYPES.values())
        return sorted(rows, key=lambda e: (order.index(e["entryType"]), e["journalEntryNumber"]))

    def list_entries(self, call: Call) -> Reply:
        return collection(call, self._entries(call), ENTRY_FILTERS, render=lambda e: e)

    def delete_entry(self, call: Call) -> Reply:
        journal = self._journal(call)["journalNumber"]
        vouchers = call.agreement.vouchers
        for key in [k for k in vouchers if k[0] == journal]:
            entries = vouchers[key]["entries"]
            for type_key, items in entries.items():
                kept = [e for e in items if e["journalEntryNumber"] != call.params["entry"]]
                if len(kept) < len(items):
                    entries[type_key] = kept
                    if not any(entries.values()):
                        del vouchers[key]
                    return Reply(204, None)
        raise not_found(f"Entry {call.params['entry']}")

    # -- endpoints of add-on modules --------------------------------------------------------

    def module_routes(self) -> list[Route]:
        dd = "/departmental-distributions"
        table = "departmentalDistributions"
        return [
            self.route("/projects", "Projects", GET=self._listing("projects", PROJECT_FILTERS)),
            self.route("/projects/{id:int}", "Projects", GET=self._single("projects")),
            self.route(dd, "Departments", GET=self._listing(table, DISTRIBUTION_FILTERS)),
            self.route(dd + "/departments", "Departments", GET=self._distributions("department")),
            self.route(
                dd + "/distributions", "Departments", GET=self._distributions("distribution")
            ),
            self.route(dd + "/{id:int}", "Departments", GET=self._single(table)),
        ]

    def _listing(self, table: str, filters: Mapping[str, str]) -> Handler:
        def handler(call: Call) -> Reply:
            return collection(call, sorted_values(call.agreement.table(table)), filters)

        return handler

    def _single(self, table: str) -> Handler:
        def handler(call: Call) -> Reply:
            doc = call.agreement.table(table).get(call.params["id"])
            if doc is None:
                raise not_found(f"{table} {call.params['id']}")
            return Reply(200, linked_doc(doc, call.base))

        return handler

    def _distributions(self, distribution_type: str) -> Handler:
        def handler(call: Call) -> Reply:
            rows = sorted_values(call.agreement.table("departmentalDistributions"))
            rows = [d for d in rows if d["distributionType"] == distribution_type]
            return collection(call, rows, DISTRIBUTION_FILTERS)

        return handler


# --- control routes -------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> Response:
    return Response(to_json(body), status, media_type="application/json")


class ControlRoutes:
    """`/_control`: never faulted, authenticated or counted."""

    def __init__(self, sim: EconomicSimulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        c = CONTROL_PREFIX
        return [
            Route(f"{c}/state", self.state, methods=["GET"]),
            Route(f"{c}/reset", self.reset, methods=["POST"]),
            Route(f"{c}/faults", self.faults, methods=["GET", "PUT"]),
            Route(f"{c}/stats", self.stats, methods=["GET"]),
            Route(f"{c}/stats/reset", self.stats_reset, methods=["POST"]),
            Route(f"{c}/agreements", self.agreements, methods=["GET", "POST"]),
            Route(f"{c}/agreements/{{grant}}/revoke", self.revoke, methods=["POST"]),
            Route(f"{c}/agreements/{{grant}}/modules", self.modules, methods=["PUT"]),
            Route(f"{c}/install", self.install, methods=["GET"]),
        ]

    async def state(self, request: Request) -> Response:
        return _json(self.sim.state_dump())

    async def reset(self, request: Request) -> Response:
        self.sim.reset()
        return _json({"reset": True})

    async def faults(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.sim.faults.update(await request.json())
            except (ValueError, TypeError, AttributeError) as exc:
                return _json({"message": str(exc)}, 400)
        return _json(self.sim.faults.as_dict())

    async def stats(self, request: Request) -> Response:
        with self.sim.lock:
            calls = {token: dict(a.calls) for token, a in self.sim.agreements.items()}
        return _json({**self.sim.log.snapshot(), "callsPerAgreement": calls})

    async def stats_reset(self, request: Request) -> Response:
        self.sim.log.reset()
        with self.sim.lock:
            for agreement in self.sim.agreements.values():
                agreement.calls.clear()
        return _json({"reset": True})

    async def agreements(self, request: Request) -> Response:
        if request.method == "GET":
            with self.sim.lock:
                rows = [
                    {"grant_token": token, "country": a.country, "agreementNumber": a.number,
                     "modules": a.modules, "revoked": a.revoked}
                    for token, a in self.sim.agreements.items()
                ]  # fmt: skip
            return _json(rows)
        try:
            body = await request.json()
            country = str(body.get("country", "DK"))
            token = self.sim.add_agreement(country, body.get("modules"), body.get("grant_token"))
        except (ValueError, TypeError, AttributeError) as exc:
            return _json({"message": str(exc)}, 400)
        return _json({"grant_token": token}, 201)

    async def revoke(self, request: Request) -> Response:
        try:
            self.sim.revoke_grant(request.path_params["grant"])
        except KeyError as exc:
            return _json({"message": str(exc)}, 404)
        return _json({"revoked": True})

    async def modules(self, request: Request) -> Response:
        try:
            body = await request.json()
            names = list((body.get("modules") if isinstance(body, dict) else body) or [])
            self.sim.set_modules(request.path_params["grant"], names)
        except KeyError as exc:
            return _json({"message": str(exc)}, 404)
        except (ValueError, TypeError) as exc:
            return _json({"message": str(exc)}, 400)
        return _json({"modules": seed.normalise_modules(names)})

    async def install(self, request: Request) -> Response:
        """Stands in for secure.e-conomic.com/secure/api1/requestaccess.aspx: the customer
        accepts, and the browser goes on to redirectUrl?token=<agreement grant token>.
        `agreement` picks an existing grant, or a country for a new agreement (default DK)."""
        query = request.query_params
        if query.get("appPublicToken") != self.sim.app_public_token:
            return _json({"message": "Unknown appPublicToken."}, 400)
        redirect = query.get("redirectUrl")
        if not redirect:
            return _json({"message": "redirectUrl is required."}, 400)
        wanted = query.get("agreement", "DK")
        with self.sim.lock:
            known = wanted in self.sim.agreements
        try:
            token = wanted if known else self.sim.add_agreement(wanted)
        except ValueError as exc:
            return _json({"message": str(exc)}, 400)
        separator = "&" if urlparse(redirect).query else "?"
        return RedirectResponse(f"{redirect}{separator}{urlencode({'token': token})}", 302)


def serve(
    port: int,
    agreements: list[tuple[str, str]] | None = None,
    host: str = "127.0.0.1",
    **options: Any,
) -> None:
    """Foreground server for `ledgerpush simulate economic --port P`. `agreements` are
    (country, grant token) pairs; by default DK "demo-dk", NO "demo-no" and SE "demo-se"."""
    sim = EconomicSimulator(**options)
    for country, grant in agreements or DEFAULT_AGREEMENTS:
        sim.add_agreement(country, grant_token=grant)
    SimulatorServer(sim.app, host=host, port=port).serve_forever()
