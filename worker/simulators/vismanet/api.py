"""The simulated `/v1`, `/v2` endpoints: one handler per (method, path template) of
endpoints.json. Handlers run under the simulator's lock and return a `Reply`."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.simulators.vismanet import listing, views
from worker.simulators.vismanet.contract import carries_metadata
from worker.simulators.vismanet.documents import (
    build_document,
    build_payment,
    document_input,
    rebuild_document,
)
from worker.simulators.vismanet.errors import business_error, message_error, not_found
from worker.simulators.vismanet.masterdata import create_article, create_customer, update_customer
from worker.simulators.vismanet.state import Company, Document
from worker.simulators.vismanet.webhooks import AR_INVOICE_STATUS_CHANGED, CUSTOMER_CHANGED


@dataclass
class Settings:
    """The tunables handlers read (part of the simulator's `/_control/config`)."""

    default_page_size: int = 50
    max_page_sizes: dict[str, int] = field(default_factory=dict)
    release_queued_rate: float = 0.0
    release_queued_seconds: float = 1.0


@dataclass
class Call:
    company: Company
    params: dict[str, str]
    query: dict[str, str]  # names lower-cased
    body: Any
    now: datetime
    clock: float
    base_url: str
    settings: Settings
    rng: random.Random
    if_match: str | None = None
    #: The endpoint's answer model (list items carry `metadata` only if it has the field).
    response_model: str | None = None
    #: The endpoint takes paging parameters (lists without them are answered whole).
    paged: bool = True
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (event, entity, number)


@dataclass
class Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Reply]
HANDLERS: dict[tuple[str, str], Handler] = {}


def handles(method: str, *templates: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        for template in templates:
            HANDLERS[(method, template)] = handler
        return handler

    return register


def _created(call: Call, resource: str, number: str, etag: str | None = None) -> Reply:
    headers = {"Location": f"{call.base_url}/v1/{resource}/{number}"}
    if etag:
        headers["ETag"] = etag
    return Reply(201, None, headers)


def _check_etag(call: Call, etag: str) -> None:
    if call.if_match and call.if_match.strip() not in ("*", etag):
        raise message_error(412, "Precondition Failed: the resource was changed by someone else.")


def _list(call: Call, resource: str, rows: list[dict[str, Any]]) -> Reply:
    rows = listing.modified_since(rows, call.query)
    size = listing.max_page_size(resource, call.settings.max_page_sizes)
    metadata = carries_metadata(call.response_model)
    if not call.paged:
        return Reply(200, listing.whole(rows, size, metadata))
    return Reply(
        200, listing.paged(rows, call.query, size, call.settings.default_page_size, metadata)
    )


# ---------------------------------------------------------------- reference data

_REFERENCE_KEYS = {
    "vat": "vatId", "vatCategory": "taxCategoryId", "vatZone": "vatZoneId", "account": "accountCd",
    "branch": "branchNumber", "organization": "organizationNumber",
    "financialPeriod": "financialPeriodId", "currency": "curyId",
    "paymentmethod": "paymentMethodNumber", "cashaccount": "accountNumber",
    "numberSequence": "numberingId",
}  # fmt: skip


def _reference_list(resource: str) -> Handler:
    def handler(call: Call) -> Reply:
        return _list(call, resource, list(call.company.ref[resource].values()))

    return handler


def _reference_item(resource: str, key: str) -> Handler:
    def handler(call: Call) -> Reply:
        item = call.company.ref[resource].get(call.params[key])
        if item is None:
            raise not_found(resource, call.params[key])
        return Reply(200, item)

    return handler


for _resource, _key in _REFERENCE_KEYS.items():
    HANDLERS[("GET", f"/v1/{_resource}")] = _reference_list(_resource)
    HANDLERS[("GET", f"/v1/{_resource}/{{{_key}}}")] = _reference_item(_resource, _key)


@handles("GET", "/v1/creditTerm")
def credit_terms(call: Call) -> Reply:
    rows = listing.modified_since(call.company.ref["creditTerm"].values(), call.query)
    size = listing.max_page_size("creditTerm", call.settings.max_page_sizes)
    return Reply(200, listing.paged_object(rows, call.query, size, call.settings.default_page_size))


# ---------------------------------------------------------------- customers, articles

_CUSTOMER_FILTERS = {
    "name": lambda c: c.get("name"), "status": lambda c: c.get("status"),
    "corporateId": lambda c: c.get("corporateId"),
    "vatRegistrationId": lambda c: c.get("vatRegistrationId"),
    "email": lambda c: (c.get("mainContact") or {}).get("email"),
}  # fmt: skip


@handles("GET", "/v1/customer")
def customers(call: Call) -> Reply:
    rows = listing.matching(call.company.customers.values(), call.query, _CUSTOMER_FILTERS)
    return _list(call, "customer", rows)


def _customer_etag(record: dict[str, Any]) -> str:
    return f'"Customer-{record["number"]}-{record["timeStamp"]}"'


@handles("GET", "/v1/customer/{customerCd}")
def customer(call: Call) -> Reply:
    record = call.company.customers.get(call.params["customerCd"])
    if record is None:
        raise not_found("Customer", call.params["customerCd"])
    return Reply(200, record, {"ETag": _customer_etag(record)})


@handles("POST", "/v1/customer")
def customer_create(call: Call) -> Reply:
    record = create_customer(call.company, call.body, call.now)
    call.events.append((CUSTOMER_CHANGED, "Customer", record["number"]))
    return _created(call, "customer", record["number"], _customer_etag(record))


@handles("PUT", "/v1/customer/{customerCd}")
def customer_update(call: Call) -> Reply:
    number = call.params["customerCd"]
    current = call.company.customers.get(number)
    if current is None:
        raise not_found("Customer", number)
    _check_etag(call, _customer_etag(current))
    record = update_customer(call.company, number, call.body, call.now)
    call.events.append((CUSTOMER_CHANGED, "Customer", number))
    return Reply(204, None, {"ETag": _customer_etag(record)})


@handles("GET", "/v1/inventory")
def articles(call: Call) -> Reply:
    return _list(call, "inventory", list(call.company.articles.values()))


@handles("GET", "/v1/inventory/{inventoryNumber}")
def article(call: Call) -> Reply:
    record = call.company.articles.get(call.params["inventoryNumber"])
    if record is None:
        raise not_found("Inventory", call.params["inventoryNumber"])
    return Reply(200, record)


@handles("POST", "/v1/inventory")
def article_create(call: Call) -> Reply:
    record = create_article(call.company, call.body, call.now)
    return _created(call, "inventory", record["inventoryNumber"])


# ---------------------------------------------------------------- customer documents

_KINDS = {"customerinvoice": "Invoice", "customerCreditNote": "CreditNote"}
_NUMBER_PARAM = {"Invoice": "invoiceNumber", "CreditNote": "creditNoteNumber"}
_DOCUMENT_FILTERS = {
    "customer": lambda d: d["customer"]["number"], "status": lambda d: d["status"],
    "documentType": lambda d: d["documentType"], "externalReference": lambda d: d["externalReference"],
    "customerRefNumber": lambda d: d["customerRefNumber"], "financialPeriod": lambda d: d["financialPeriod"],
    "released": lambda d: d["status"] in ("Open", "Closed"), "branch": lambda d: d["branchNumber"]["number"],
    "paymentReference": lambda d: d["paymentReference"],
}  # fmt: skip


def _document(call: Call, kind: str) -> Document:
    number = call.params[_NUMBER_PARAM[kind]]
    found = call.company.document(kind, number)
    if found is None:
        raise not_found("Customer invoice" if kind == "Invoice" else "Credit note", number)
    return found


def _register_documents(resource: str, kind: str) -> None:
    item = f"/v1/{resource}/{{{_NUMBER_PARAM[kind]}}}"

    def create(call: Call) -> Reply:
        given = document_input(kind, call.body, "creating document")
        document = build_document(call.company, kind, given, "creating document", call.now)
        call.company.documents[(kind, document.number)] = document
        return _created(call, resource, document.number, document.etag)

    def list_(call: Call) -> Reply:
        rows = [
            views.document(call.company, d)
            for d in call.company.documents.values()
            if d.kind == kind
        ]
        return _list(call, resource, listing.matching(rows, call.query, _DOCUMENT_FILTERS))

    def get(call: Call) -> Reply:
        document = _document(call, kind)
        return Reply(200, views.document(call.company, document), {"ETag": document.etag})

    def update(call: Call) -> Reply:
        document = _document(call, kind)
        _check_etag(call, document.etag)
        if document.released or document.release_due is not None:
            raise business_error("updating document", "A released document cannot be changed.")
        rebuilt = rebuild_document(call.company, document, call.body, call.now)
        call.company.documents[(kind, document.number)] = rebuilt
        return Reply(204, None, {"ETag": rebuilt.etag})

    def delete(call: Call) -> Reply:
        document = _document(call, kind)
        _check_etag(call, document.etag)
        if document.released or document.release_due is not None:
            raise business_error("deleting document", "A released document cannot be deleted.")
        del call.company.documents[(kind, document.number)]
        return Reply(204)

    def release(call: Call) -> Reply:
        return _release(call, _document(call, kind))

    for template in (f"/v1/{resource}", f"/v2/{resource}"):
        HANDLERS[("POST", template)] = create
    HANDLERS[("GET", f"/v1/{resource}")] = list_
    HANDLERS[("GET", item)] = get
    HANDLERS[("PUT", item)] = update
    HANDLERS[("DELETE", item)] = delete
    HANDLERS[("POST", f"{item}/action/release")] = release


def _release(call: Call, document: Document) -> Reply:
    _check_etag(call, document.etag)
    action = "releasing document"
    if document.status == "Hold":
        raise business_error(action, "Document is on hold and cannot be released.")
    if document.released or document.release_due is not None:
        raise business_error(action, "Document status is invalid for processing.")
    if document.kind == "CreditNote":  # its applications must still fit
        for application in document.applications:
            target = call.company.open_document(
                application.document_type, application.ref_nbr, document.customer
            )
            if target is None or application.amount > target.balance:
                raise business_error(
                    action, f"AdjdRefNbr '{application.ref_nbr}' cannot be found in the system."
                )
    settings = call.settings
    if settings.release_queued_rate and call.rng.random() < settings.release_queued_rate:
        document.release_due = call.clock + settings.release_queued_seconds
        result = "Queued"
    else:
        finish_release(call.company, document, call.now, call.events)
        result = "Done"
    return Reply(200, {"actionId": str(uuid.uuid4()), "actionResult": result, "errorInfo": None})


def finish_release(company: Company, document: Document, now: datetime,
                   events: list[tuple[str, str, str]]) -> None:  # fmt: skip
    for changed in company.release(document):
        changed.modified = now
        changed.version += 1
        if changed.kind == "Invoice":
            events.append((AR_INVOICE_STATUS_CHANGED, "CustomerInvoice", changed.number))


for _resource, _kind in _KINDS.items():
    _register_documents(_resource, _kind)


# ---------------------------------------------------------------- payments

_PAYMENT_FILTERS = {
    "customer": lambda p: p["customer"]["number"], "paymentNbr": lambda p: p["refNbr"],
    "paymentType": lambda p: p["type"], "status": lambda p: p["status"],
    "invoiceRefNbr": lambda p: [line["refNbr"] for line in p["paymentLines"]],
    "branch": lambda p: p["branch"]["number"],
}  # fmt: skip


@handles("GET", "/v1/customerPayment")
def payments(call: Call) -> Reply:
    rows = [views.payment(call.company, p) for p in call.company.payments.values()]
    return _list(call, "customerPayment", listing.matching(rows, call.query, _PAYMENT_FILTERS))


@handles("GET", "/v1/customerPayment/{paymentNumber}")
def payment(call: Call) -> Reply:
    found = call.company.payments.get(call.params["paymentNumber"])
    if found is None:
        raise not_found("Payment", call.params["paymentNumber"])
    return Reply(200, views.payment(call.company, found), {"ETag": found.etag})


@handles("POST", "/v1/customerPayment")
def payment_create(call: Call) -> Reply:
    created = build_payment(call.company, call.body, call.now)
    call.company.payments[created.number] = created
    return _created(call, "customerPayment", created.number, created.etag)


@handles("POST", "/v1/customerPayment/{paymentNumber}/action/release")
def payment_release(call: Call) -> Reply:
    """Performed in the background (the simulator answers 202 before calling this)."""
    found = call.company.payments.get(call.params["paymentNumber"])
    if found is None:
        raise not_found("Payment", call.params["paymentNumber"])
    _check_etag(call, found.etag)
    if found.status == "Hold":
        raise business_error("releasing payment", "Document is on hold and cannot be released.")
    if found.status != "Balanced":
        raise business_error("releasing payment", "Document status is invalid for processing.")
    for changed in call.company.release_payment(found, call.now):
        if changed.kind == "Invoice":
            call.events.append((AR_INVOICE_STATUS_CHANGED, "CustomerInvoice", changed.number))
    return Reply(204)


#: Endpoints that the spec answers only with 202 (always performed in the background).
ALWAYS_BACKGROUND = frozenset({("POST", "/v1/customerPayment/{paymentNumber}/action/release")})
