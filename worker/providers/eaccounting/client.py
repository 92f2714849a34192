"""Visma eAccounting (NO, NL; Spiris SE; ePasseli FI) provider: the step plan (draft, book;
pay), the writes, and the lookups after a lost answer.

What a job refers to (customer, articles and their codings, fiscal year, bank account) is
resolved in `references.py`; eAccounting's answers are mapped to the error taxonomy in
`errors.py`.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.jobs import Line, Payment, PaymentJob
from worker.ledger.models import Tenant
from worker.providers.base import (
    Call,
    NeedsReview,
    Plan,
    ReferenceStale,
    Rejected,
    Step,
    StepContext,
    Unsupported,
)
from worker.providers.documents import Document, document_of
from worker.providers.eaccounting.auth import EAccountingAuth
from worker.providers.eaccounting.errors import fields_of, granted_scopes, map_error, rate_limit_key
from worker.providers.eaccounting.references import PAGE_SIZE, References
from worker.providers.eaccounting.settings import provider_settings
from worker.providers.http import ProviderHttp
from worker.providers.limits import Limits
from worker.tenancy import tenants
from worker.tenancy.refcache import TenantCache
from worker.transport.ratelimit import Rate

# CompanySettingsApi.ProductVariant; endpoints.json lists the variants of each endpoint:
# customers, articles, drafts and invoice payments exist in every variant but Bookkeeping.
BOOKKEEPING_VARIANT = 3
CLOCK_SKEW = dt.timedelta(seconds=5)
PAYMENT_COMPLETE, PAYMENT_PARTIAL = 2, 1
#: eaccounting/models.json, CustomerInvoiceDraftRowApi: UnitPrice "Format: 2 decimals allowed
#: if the customer is domestic or 4 decimals if foreign", Quantity "Format: 2 decimals",
#: DiscountPercentage a fraction 0-1 "Format: 4 decimals allowed" (so 2 in percent), Text
#: maxLength 2000, LineNumber 0-1000. InvoicePaymentApi.PaymentAmount states no format.
LIMITS = Limits(
    provider="eAccounting",
    price_field="Rows.UnitPrice",
    domestic_price_places=2,
    foreign_price_places=4,
    quantity_field="Rows.Quantity",
    quantity_places=2,
    discount_field="Rows.DiscountPercentage",
    discount_percent_places=2,
    description_field="Rows.Text",
    description_length=2000,
    max_lines=1001,
    payment_field="PaymentAmount",
    payment_places=None,
)


@dataclass(frozen=True)
class DocumentRefs:
    """What a draft refers to in eAccounting: its customer and one article per line."""

    customer: str
    articles: tuple[str, ...]


class EAccountingProvider(References):
    name = "eaccounting"

    def __init__(self, tenant: Tenant) -> None:
        ea = provider_settings()
        self.tenant = tenant
        self.cache = TenantCache(tenant.id)
        self.http = ProviderHttp(
            ea.api_url,
            EAccountingAuth(tenant.id, tenants.credentials_of(tenant)),
            limit_key=rate_limit_key(ea.client_id, tenant.id),
            rate=Rate(
                ea.rate_per_minute,
                60.0,
                burst=max(ea.rate_per_minute // 20, 1),
            ),
            map_error=functools.partial(map_error, granted=granted_scopes(tenant)),
        )
        self.calls: list[Call] = self.http.calls
        self.company_checked = False
        self.page_size = PAGE_SIZE

    # -- steps ------------------------------------------------------------------------

    def invalidate_references(self) -> None:
        self.cache.invalidate()

    def prepare(self, ctx: StepContext) -> Plan:
        job = ctx.job
        self._require_sales_variant()
        if isinstance(job, PaymentJob):
            return self._payment_plan(job.payment, self.bank_account_id(job.payment.currency))
        book = Step("book", self._book, self._find_booked)
        if "book" in ctx.remote:
            return Plan((book,))
        document = document_of(ctx)
        self.company()
        fiscal_year = self.fiscal_year_id(document["date"])
        self.accounts(fiscal_year)
        self.cache.get("vatcodes", lambda: self.collect("/vatcodes"))
        if "draft" in ctx.remote:
            return Plan((book,))
        refs = self._document_refs(ctx, document)
        draft = Step(
            "draft",
            functools.partial(self._draft, refs),
            functools.partial(self._find_drafts, refs.customer),
        )
        return Plan((draft, book))

    def _document_refs(self, ctx: StepContext, document: Document) -> DocumentRefs:
        if ctx.job.kind == "invoice":
            self.require_currency(document["currency"])
        days = max((document["due"] - document["date"]).days, 0)
        customer = self.customer_id(document["customer"], days)
        prefix = "credit_note" if ctx.job.kind == "credit_note" else "invoice"
        articles = tuple(
            self.article_for(index, line, document["customer"], prefix)
            for index, line in enumerate(document["lines"])
        )
        return DocumentRefs(customer, articles)

    def _payment_plan(self, payment: Payment, bank_account: str) -> Plan:
        pay = Step(
            "pay",
            functools.partial(self._pay, payment, bank_account),
            functools.partial(self._find_payment, payment),
            intent=self._remaining_before,
            serialise_on=payment.invoice_idempotency_key,
        )
        return Plan((pay,))

    def _require_sales_variant(self) -> None:
        if self.company().get("ProductVariant") == BOOKKEEPING_VARIANT:
            raise Unsupported(
                "the company uses eAccounting Bookkeeping, whose API has no customer invoices, "
                "customers or invoice payments (they need Standard, Invoicing, Solo or Pro)",
                "variant_unsupported",
            )

    def _remaining_before(self, ctx: StepContext) -> dict[str, Any]:
        invoice = self.http.get_json(f"/customerinvoices/{_invoice_id(ctx)}")
        return {
            "remaining_before": str(
                invoice.get("RemainingAmountInvoiceCurrency", invoice.get("RemainingAmount"))
            )
        }

    def _draft(self, refs: DocumentRefs, ctx: StepContext) -> dict[str, Any]:
        body = self._draft_body(refs, ctx)
        try:
            draft = self.http.request("POST", "/customerinvoicedrafts", json=body).json()
        except Rejected:
            articles = {row["ArticleId"] for row in body["Rows"]}
            self._raise_if_gone(
                [f"/customers/{body['CustomerId']}", *(f"/articles/{a}" for a in articles)]
            )
            raise
        return {"id": draft["Id"], "customer_id": body["CustomerId"]}

    def _book(self, ctx: StepContext) -> dict[str, Any]:
        draft_id = ctx.remote["draft"]["id"]
        # Without the flag eAccounting dates the invoice today, not on the draft's date.
        invoice = self.http.request(
            "POST", f"/customerinvoicedrafts/{draft_id}/convert?keepOriginalDraftDate=true"
        ).json()
        booked = {"id": invoice["Id"], "number": invoice.get("InvoiceNumber")}
        return {**booked, "totals": _booked_totals(invoice)}

    def _draft_body(self, refs: DocumentRefs, ctx: StepContext) -> dict[str, Any]:
        document = document_of(ctx)
        credit = ctx.job.kind == "credit_note"
        sign = Decimal(-1) if credit else Decimal(1)
        rows = [
            {
                "LineNumber": index,
                "ArticleId": article,
                "Text": line.description,
                "Quantity": sign * line.quantity,
                "UnitPrice": line.unit_price,
                "DiscountPercentage": line.discount_percent / 100,
                "IsTextRow": False,
                "ReversedConstructionServicesVatFree": False,
            }
            for index, (line, article) in enumerate(
                zip(document["lines"], refs.articles, strict=True)
            )
        ]
        body: dict[str, Any] = {
            "CustomerId": refs.customer,
            "InvoiceDate": document["date"].isoformat(),
            "DueDate": document["due"].isoformat(),
            "InvoiceCurrencyCode": document["currency"],
            "YourReference": document["reference"],
            "RotReducedInvoicingType": 0,
            "EuThirdParty": False,
            "IsCreditInvoice": credit,
            "Rows": rows,
        }
        return {k: v for k, v in body.items() if v is not None}

    def _pay(self, payment: Payment, bank_account: str, ctx: StepContext) -> dict[str, Any]:
        invoice_id = _invoice_id(ctx)
        body = {
            "PaymentDate": payment.payment_date.isoformat(),
            "PaymentAmount": payment.amount,
            "PaymentCurrency": payment.currency,
            "PaymentType": PAYMENT_COMPLETE
            if Decimal(ctx.intent.get("remaining_before", "0")) == payment.amount
            else PAYMENT_PARTIAL,
            "CompanyBankAccountId": bank_account,
            "Reference": payment.reference,
        }
        try:
            self.http.request(
                "POST",
                f"/customerinvoices/{invoice_id}/payments",
                json={k: v for k, v in body.items() if v is not None},
            )
        except Rejected as exc:
            self._raise_if_gone([f"/bankaccounts/{bank_account}"])
            exc.fields = fields_of(exc.original or exc.message, "payment")
            raise
        return {"invoice_id": invoice_id, "amount": str(payment.amount)}

    def _raise_if_gone(self, paths: list[str]) -> None:
        """After a 400 on a write: is a cached reference it named gone? The reference
        documents no ErrorCode for that, so ask: a 404 on the reference's own path raises
        ReferenceStale (map_error), and the job retries on fresh references."""
        for path in paths:
            self.http.get_json(path)

    def _find_drafts(self, customer_id: str, ctx: StepContext) -> list[dict[str, Any]]:
        document = document_of(ctx)
        drafts = self.collect(
            "/customerinvoicedrafts",
            {
                "$filter": f"CustomerId eq {customer_id} and InvoiceDate eq {document['date'].isoformat()}"
            },
        )
        # Rows (text, quantity, unit price, discount) fix the row count and the net total.
        wanted = _fingerprint(document["lines"], -1 if ctx.job.kind == "credit_note" else 1)
        return [
            {"id": d["Id"], "customer_id": customer_id}
            for d in drafts
            if _created_after(d, ctx.intent_at)
            and d.get("InvoiceCurrencyCode", document["currency"]) == document["currency"]
            and (d.get("YourReference") or None) == (document["reference"] or None)
            and _row_fingerprint(d.get("Rows") or []) == wanted
        ]

    def _find_booked(self, ctx: StepContext) -> list[dict[str, Any]]:
        draft = ctx.remote["draft"]
        try:
            self.http.get_json(f"/customerinvoicedrafts/{draft['id']}")
            return []  # the draft still exists: it was not converted
        except ReferenceStale:
            pass
        document = document_of(ctx)
        invoices = self.collect(
            "/customerinvoices",
            {
                "$filter": f"CustomerId eq {draft['customer_id']} and InvoiceDate eq {document['date'].isoformat()}"
            },
        )
        matches = [i for i in invoices if str(i.get("CreatedFromDraftId")) == str(draft["id"])]
        if not matches:
            raise NeedsReview(
                f"draft {draft['id']} is gone but no invoice was created from it; check eAccounting",
                [{"draft_id": draft["id"]}],
            )
        return [{"id": i["Id"], "number": i.get("InvoiceNumber")} for i in matches]

    def _find_payment(self, payment: Payment, ctx: StepContext) -> list[dict[str, Any]]:
        """eAccounting lists no payments with their references: a payment is known only by
        how much the invoice's remaining amount moved since the intent (the pipeline keeps
        other payments of the invoice from writing meanwhile)."""
        invoice = self.http.get_json(f"/customerinvoices/{_invoice_id(ctx)}")
        now = Decimal(
            str(invoice.get("RemainingAmountInvoiceCurrency", invoice.get("RemainingAmount")))
        )
        before = Decimal(ctx.intent.get("remaining_before", "NaN"))
        if now == before:
            return []
        if now == before - payment.amount:
            return [{"invoice_id": invoice["Id"], "amount": str(payment.amount), "recovered": True}]
        raise NeedsReview(
            f"the invoice's remaining amount moved from {before} to {now}, not by {payment.amount}",
            [
                {
                    "invoice_id": invoice["Id"],
                    "remaining_before": str(before),
                    "remaining_now": str(now),
                }
            ],
        )


def _invoice_id(ctx: StepContext) -> str:
    return str(ctx.related["invoice"]["book"]["id"])


def _fingerprint(lines: list[Line], sign: int) -> list[tuple[str, str, str, str]]:
    return sorted(
        (
            line.description,
            f"{Decimal(sign) * line.quantity:.2f}",
            f"{line.unit_price:.4f}",
            f"{line.discount_percent / 100:.4f}",
        )
        for line in lines
    )


def _row_fingerprint(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (
            str(r.get("Text")),
            f"{Decimal(str(r.get('Quantity'))):.2f}",
            f"{Decimal(str(r.get('UnitPrice'))):.4f}",
            f"{Decimal(str(r.get('DiscountPercentage') or 0)):.4f}",
        )
        for r in rows
        if not r.get("IsTextRow")
    )


def _created_after(document: dict[str, Any], moment: dt.datetime | None) -> bool:
    created = document.get("CreatedUtc")
    if moment is None or not created:
        return True
    stamp = dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp >= moment - CLOCK_SKEW


def _booked_totals(invoice: dict[str, Any]) -> dict[str, str | None]:
    """The booked invoice's totals in its own currency (for the job.booked event)."""
    gross = invoice.get("TotalAmountInvoiceCurrency")
    vat = invoice.get("TotalVatAmountInvoiceCurrency")
    net = None
    if gross is not None and vat is not None:
        net = str(Decimal(str(gross)) - Decimal(str(vat)))
    return {
        "net": net,
        "vat": None if vat is None else str(vat),
        "gross": None if gross is None else str(gross),
        "currency": invoice.get("CurrencyCode"),
    }
