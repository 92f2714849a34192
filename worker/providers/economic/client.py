"""Visma e-conomic (DK, NO, SE) provider client, on the classic REST API.

How a job lands in e-conomic:

- **VAT** is not a code on the line: e-conomic takes it from the line's *product* → its
  product group → the group's sales account for the recipient's *VAT zone* → that
  account's VAT code → its rate. So for every line we pick a product that yields the
  line's rate in the recipient's zone (or the one the tenant's mapping pins, or the
  line's own `article_number`) and refuse a line whose rate no product can give, naming
  the mapping that fixes it. A pinned product is checked the same way: we never book VAT
  other than what the producer sent.
- **VAT zone** from the customer's country against the agreement's: domestic; EU (both in
  the EU, a business); abroad otherwise. Private persons in the EU pay domestic VAT.
- **Customers** are upserted by the job's external id: see `customer_number`.
- **Invoices and credit notes**: `POST /invoices/drafts` with the job's idempotency key in
  `references.other` (filterable on drafts and booked invoices, so a lost answer is
  found again), then `POST /invoices/booked`. Credit notes are invoices with negative
  quantities.
- **Payments**: a customer-payment voucher in a daybook journal, its entry text carrying
  the job's key (filterable on `/journals/{n}/entries`). e-conomic's API has no call to
  book a journal: the voucher waits in the daybook for the accountant, which is where
  e-conomic wants payments registered.

References (`/self`, layouts, payment terms, VAT zones, currencies, accounting years,
products with their groups' sales accounts and VAT accounts, journals) are cached per
tenant in Redis (`references.py`, the product choice in `products.py`); in steady state
an invoice costs two calls: draft and book. This module holds the plan, the writes and
the lookups after a lost answer.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.jobs import Payment, PaymentJob
from worker.ledger.models import Tenant
from worker.providers.base import Call, Plan, ReferenceStale, Rejected, Step, StepContext
from worker.providers.documents import Document, document_of
from worker.providers.economic.auth import EconomicAuth
from worker.providers.economic.errors import DRAFT_FIELDS, VOUCHER_FIELDS, map_error, translate
from worker.providers.economic.products import Products
from worker.providers.economic.references import PAGE_SIZE, Row, compact
from worker.providers.economic.references import customer_number as customer_number  # re-exported
from worker.providers.economic.settings import provider_settings
from worker.providers.http import ProviderHttp
from worker.providers.limits import Limits
from worker.tenancy import tenants
from worker.tenancy.refcache import TenantCache
from worker.transport.ratelimit import Rate

_FILTER_SPECIALS = "()*,[]"
#: economic/introduction.md (annotated errors example, E04740): "unitNetPrice scale cannot
#: be greater then two decimal places"; quantity and discountPercentage are held to the same
#: scale (the docs give no other); invoices.md: lines.description max length 2500. No line
#: count or payment-amount scale is documented; amounts are in currency, so cents.
LIMITS = Limits(
    provider="e-conomic",
    price_field="lines.unitNetPrice",
    domestic_price_places=2,
    foreign_price_places=2,
    quantity_field="lines.quantity",
    quantity_places=2,
    discount_field="lines.discountPercentage",
    discount_percent_places=2,
    description_field="lines.description",
    description_length=2500,
    max_lines=None,
    payment_field="entries.customerPayments.amount",
    payment_places=2,
)


def daily_budget(calls_per_day: int) -> Rate:
    """e-conomic's fair use: at most `calls_per_day` per agreement in any 24 hours.

    Half of it may be spent at once; the rest comes back at the even pace. (A burst of the
    whole budget would leave `Rate` a refill interval of a full day per call.)"""
    return Rate(calls_per_day, 86400.0, burst=max(calls_per_day // 2, 1))


def filter_value(value: str) -> str:
    """Escape a value for e-conomic's `filter=` language (introduction.md, "Escaping")."""
    escaped = value.replace("$", "$$")
    for char in _FILTER_SPECIALS:
        escaped = escaped.replace(char, "$" + char)
    return escaped


def _by_key(key: str) -> dict[str, str]:
    return {"filter": f"references.other$eq:{filter_value(key)}"}


@dataclass(frozen=True)
class DocumentRefs:
    """What a draft refers to in e-conomic, resolved before it is written."""

    zone: Row
    terms: Row
    customer: int
    layout: int
    products: tuple[str, ...]


@dataclass(frozen=True)
class PaymentRefs:
    """Where a customer payment is booked: the journal, its year and contra account."""

    year: str
    journal: int
    contra: int


def _reference(ctx: StepContext) -> dict[str, Any]:
    return {"reference": ctx.job.idempotency_key}


class EconomicProvider(Products):
    name = "economic"

    def __init__(self, tenant: Tenant) -> None:
        ec = provider_settings()
        grant = str(tenants.credentials_of(tenant).get("grant_token", ""))
        agreement = hashlib.sha256(grant.encode()).hexdigest()[:16]
        self.tenant = tenant
        self.cache = TenantCache(tenant.id)
        self.http = ProviderHttp(
            ec.api_url,
            EconomicAuth(grant),
            limit_key=f"ec:{agreement}",
            rate=daily_budget(ec.calls_per_day),
            map_error=map_error,
            endpoint_limits=False,
        )
        self.calls: list[Call] = self.http.calls
        self.page_size = PAGE_SIZE
        self.company_checked = False

    def _payment_text(self, ctx: StepContext) -> str:
        invoice = ctx.related["invoice"]["book"]["number"]
        return f"Payment of invoice {invoice}: {ctx.job.idempotency_key}"

    # -- steps ----------------------------------------------------------------------------

    def invalidate_references(self) -> None:
        self.cache.invalidate()

    def prepare(self, ctx: StepContext) -> Plan:
        job = ctx.job
        self.self_info()
        if isinstance(job, PaymentJob):
            return self._payment_plan(job.payment)
        book = Step("book", self._book, self._lookup_book, intent=_reference)
        if "draft" in ctx.remote:
            return Plan((book,))
        refs = self._document_refs(ctx, document_of(ctx))
        draft = Step("draft", functools.partial(self._draft, refs), self._lookup_draft, _reference)
        return Plan((draft, book))

    def _document_refs(self, ctx: StepContext, document: Document) -> DocumentRefs:
        prefix = ctx.job.kind
        self.require_currency(document["currency"], f"{prefix}.currency")
        self.open_year(document["date"], f"{prefix}.issue_date")
        zone = self.zone_for(document["customer"])
        terms = self.payment_terms_for(document["date"], document["due"])
        customer = self.customer_for(
            document["customer"], document["currency"], prefix, zone, terms
        )
        return DocumentRefs(
            zone=zone,
            terms=terms,
            customer=customer["number"],
            layout=self.layout_for(customer),
            products=tuple(
                self.product_for(i, line, zone, prefix) for i, line in enumerate(document["lines"])
            ),
        )

    def _payment_plan(self, payment: Payment) -> Plan:
        self.require_currency(payment.currency, "payment.currency")
        journal = self.journal_for()
        refs = PaymentRefs(
            year=self.open_year(payment.payment_date, "payment.payment_date"),
            journal=journal["number"],
            contra=self.contra_account_for(journal),
        )
        pay = Step(
            "pay",
            functools.partial(self._pay, payment, refs),
            functools.partial(self._find_payment, refs),
            intent=functools.partial(self._payment_intent, refs),
            serialise_on=payment.invoice_idempotency_key,
        )
        return Plan((pay,))

    def _payment_intent(self, refs: PaymentRefs, ctx: StepContext) -> dict[str, Any]:
        return {"journal": refs.journal, "text": self._payment_text(ctx)}

    def _draft(self, refs: DocumentRefs, ctx: StepContext) -> dict[str, Any]:
        document = document_of(ctx)
        body = self._draft_body(refs, ctx, document)
        try:
            draft = self.http.request("POST", "/invoices/drafts", json=body).json()
        except Rejected as exc:
            exc.fields = self._document_fields(exc.fields, ctx)
            raise
        return {
            "draft_number": draft["draftInvoiceNumber"],
            "customer": body["customer"]["customerNumber"],
        }

    def _draft_body(
        self, refs: DocumentRefs, ctx: StepContext, document: Document
    ) -> dict[str, Any]:
        sign = Decimal(-1) if ctx.job.kind == "credit_note" else Decimal(1)
        customer, terms = document["customer"], refs.terms
        address = customer.address
        lines = [
            {
                "lineNumber": index + 1,
                "sortKey": index + 1,
                "description": line.description,
                "quantity": sign * line.quantity,
                "unitNetPrice": line.unit_price,
                "discountPercentage": line.discount_percent,
                "product": {"productNumber": product},
            }
            for index, (line, product) in enumerate(
                zip(document["lines"], refs.products, strict=True)
            )
        ]
        body = {
            "date": document["date"].isoformat(),
            # invoices.md: dueDate is used (and then required) only by terms of type dueDate.
            "dueDate": document["due"].isoformat() if terms["type"] == "dueDate" else None,
            "currency": document["currency"],
            "customer": {"customerNumber": refs.customer},
            "layout": {"layoutNumber": refs.layout},
            "paymentTerms": {"paymentTermsNumber": terms["number"]},
            "recipient": {  # countries as ISO codes: the job carries no country names
                "name": customer.name,
                "address": "\n".join(x for x in (address.line1, address.line2) if x),
                "zip": address.postal_code,
                "city": address.city,
                "country": customer.country,
                "vatZone": {"vatZoneNumber": refs.zone["number"]},
            },
            "notes": {
                "heading": document["reference"],
                "textLine1": document["notes"]
                if document["notes"] != document["reference"]
                else None,
            },
            "references": {"other": ctx.job.idempotency_key},
            "lines": lines,
        }
        result: dict[str, Any] = compact(body)
        return result

    def _document_fields(
        self, fields: list[dict[str, str]], ctx: StepContext
    ) -> list[dict[str, str]]:
        """Field errors of a credit note that credits the original's lines or customer are
        reported on the original invoice's key: those fields are not in its payload."""
        job = ctx.job
        mapped = translate(fields, DRAFT_FIELDS, job.kind)
        if job.kind != "credit_note":
            return mapped
        own_lines = job.credit_note.lines is not None
        for item in mapped:
            path = item["field"]
            if path.startswith("credit_note.customer") or (
                path.startswith("credit_note.lines") and not own_lines
            ):
                item["message"] = (
                    f"original invoice's {path.removeprefix('credit_note.')}: {item['message']}"
                )
                item["field"] = "credit_note.original_idempotency_key"
        return mapped

    def _book(self, ctx: StepContext) -> dict[str, Any]:
        draft = ctx.remote["draft"]
        if draft.get("booked_number") is not None:  # found booked already by the draft lookup
            return {"number": draft["booked_number"]}
        body = {"draftInvoice": {"draftInvoiceNumber": draft["draft_number"]}}
        try:
            booked = self.http.request("POST", "/invoices/booked", json=body).json()
        except ReferenceStale as exc:
            if "draftInvoice" not in (exc.original or ""):
                raise
            found = self._find_booked(ctx.job.idempotency_key)
            if len(found) == 1:
                return found[0]
            raise Rejected(
                f"draft invoice {draft['draft_number']} is gone from e-conomic and no booked "
                "invoice carries this job's key: someone deleted it there; replay the job",
                "draft_missing",
                exc.original,
            ) from None
        except Rejected as exc:
            exc.fields = self._document_fields(exc.fields, ctx)
            raise
        totals = {
            "net": booked.get("netAmount"),
            "vat": booked.get("vatAmount"),
            "gross": booked.get("grossAmount"),
            "currency": booked.get("currency"),
        }
        return {"number": booked["bookedInvoiceNumber"], "totals": totals}

    def _pay(self, payment: Payment, refs: PaymentRefs, ctx: StepContext) -> dict[str, Any]:
        invoice = ctx.related["invoice"]
        journal = refs.journal
        entry = {
            "customer": {"customerNumber": invoice["draft"]["customer"]},
            # The entry books on the customer: a payment credits it, hence the minus.
            "amount": -payment.amount,
            "currency": {"code": payment.currency},
            "date": payment.payment_date.isoformat(),
            "text": ctx.intent.get("text") or self._payment_text(ctx),
            "contraAccount": {"accountNumber": refs.contra},
            "customerInvoice": invoice["book"]["number"],
        }
        body = {
            "accountingYear": {"year": refs.year},
            "journal": {"journalNumber": journal},
            "entries": {"customerPayments": [entry]},
        }
        try:
            answer = self.http.request("POST", f"/journals/{journal}/vouchers", json=body).json()
        except Rejected as exc:
            exc.fields = translate(exc.fields, VOUCHER_FIELDS, "payment")
            raise
        voucher = answer[0] if isinstance(answer, list) else answer  # one object, or bulk array
        return {
            "voucher_number": voucher["voucherNumber"],
            "journal": journal,
            "year": (voucher.get("accountingYear") or {}).get("year", refs.year),
        }

    # -- lookups after a lost answer ------------------------------------------------------

    def _lookup_draft(self, ctx: StepContext) -> list[dict[str, Any]]:
        key = ctx.job.idempotency_key
        drafts = [
            {
                "draft_number": d["draftInvoiceNumber"],
                "customer": d["customer"]["customerNumber"],
            }
            for d in self._with_key("/invoices/drafts", key)
        ]
        # Booking deletes the draft: an invoice booked already is the draft's result too.
        booked = [
            {
                "draft_number": None,
                "booked_number": b["bookedInvoiceNumber"],
                "customer": b["customer"]["customerNumber"],
            }
            for b in self._with_key("/invoices/booked", key)
        ]
        return drafts + booked

    def _lookup_book(self, ctx: StepContext) -> list[dict[str, Any]]:
        return self._find_booked(ctx.job.idempotency_key)

    def _with_key(self, path: str, key: str) -> list[dict[str, Any]]:
        # Filters compare strings case-insensitively: keep exact matches only.
        return [
            d
            for d in self.collect(path, _by_key(key))
            if (d.get("references") or {}).get("other") == key
        ]

    def _find_booked(self, key: str) -> list[dict[str, Any]]:
        return [
            {"number": b["bookedInvoiceNumber"]} for b in self._with_key("/invoices/booked", key)
        ]

    def _find_payment(self, refs: PaymentRefs, ctx: StepContext) -> list[dict[str, Any]]:
        journal = ctx.intent.get("journal") or refs.journal
        text = ctx.intent.get("text") or self._payment_text(ctx)
        entries = self.collect(
            f"/journals/{journal}/entries", {"filter": f"text$eq:{filter_value(text)}"}
        )
        vouchers: dict[tuple[str, int], dict[str, Any]] = {}
        for entry in entries:
            if entry.get("text") != text:
                continue
            voucher = entry.get("voucher") or {}
            year = str((voucher.get("accountingYear") or {}).get("year", refs.year))
            number = int(voucher["voucherNumber"])
            vouchers[(year, number)] = {"voucher_number": number, "journal": journal, "year": year}
        return list(vouchers.values())
