"""Visma.net ERP (Visma Net Financials) provider: references and the step plan.

Invoices and credit notes: `draft` creates the document (it lands Balanced, with the
job's key as `externalReference`), `book` releases it (status Open). Payments: `pay`
creates the payment applied to the released invoice (`paymentRef` = the job's key),
`release` releases it in the background (202): the request id is recorded with the
step's intent before it is polled, so after a crash it is polled, never sent again.

The API has no idempotency keys: after an unknown outcome each step's lookup finds
what was written by the key (`externalReference`, `paymentRef`) or by the status.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from decimal import Decimal
from typing import Any

from worker.jobs import Customer, PaymentJob
from worker.ledger.models import Tenant
from worker.providers.base import (
    Call,
    Plan,
    ReferenceStale,
    Rejected,
    Step,
    StepContext,
    Transient,
)
from worker.providers.documents import Document, document_of
from worker.providers.limits import Limits
from worker.providers.vismanet import documents as bodies
from worker.providers.vismanet import transport
from worker.providers.vismanet.auth import TENANT_KEY, VismaNetAuth
from worker.providers.vismanet.company import company_of
from worker.providers.vismanet.documents import DocumentRefs, LineRefs
from worker.providers.vismanet.errors import fields_of, map_error
from worker.providers.vismanet.payment_steps import (
    RELEASED,
    PaymentSteps,
    invoice_number,
)
from worker.providers.vismanet.references import References
from worker.providers.vismanet.settings import provider_settings
from worker.providers.vismanet.transport import VismaNetHttp, path_id
from worker.tenancy import binding, tenants
from worker.tenancy.refcache import TenantCache
from worker.transport.ratelimit import Rate

RESOURCES = {"invoice": "customerinvoice", "credit_note": "customerCreditNote"}
CREATE_PATHS = {"invoice": "/v2/customerinvoice", "credit_note": "/v2/customerCreditNote"}
#: A queued release not done after this long is taken to have been dropped.
QUEUED_RELEASE_GRACE = dt.timedelta(minutes=10)
#: models.json gives no decimals or lengths (DtoValueOfDecimal is a double, strings have
#: no maxLength); currencies carry `decimalPrecision`. These are the ERP screen's usual.
LIMITS = Limits(
    provider="Visma.net",
    price_field="invoiceLines.unitPriceInCurrency",
    domestic_price_places=4,
    foreign_price_places=4,
    quantity_field="invoiceLines.quantity",
    quantity_places=2,
    discount_field="invoiceLines.discountPercent",
    discount_percent_places=2,
    description_field="invoiceLines.description",
    description_length=2000,
    max_lines=None,
    payment_field="paymentAmount",
    payment_places=None,
)


def rate_limit_key(client_id: str, company_tenant_id: str) -> str:
    """Visma counts calls per company and client (docs how-tos/ratelimits)."""
    return f"vn:{client_id}:{company_tenant_id}"


class VismaNetProvider:
    name = "vismanet"

    def __init__(self, tenant: Tenant) -> None:
        vn = provider_settings()
        credentials = tenants.credentials_of(tenant)
        self.tenant = tenant
        self.company_tenant_id = str(credentials.get(TENANT_KEY) or "")
        self.cache = TenantCache(tenant.id)
        per_hour = vn.rate_per_hour
        self.http = VismaNetHttp(
            vn.api_url,
            VismaNetAuth(tenant.id, credentials),
            limit_key=rate_limit_key(vn.client_id, self.company_tenant_id),
            rate=Rate(per_hour, 3600.0, burst=max(per_hour // 600, 1)),
            map_error=map_error,
        )
        self.calls: list[Call] = self.http.calls
        self.refs = References(tenant, self.http, self.cache)
        self.company_checked = False

    def invalidate_references(self) -> None:
        self.cache.invalidate()

    def company(self) -> dict[str, Any]:
        """The organisation, checked against the tenant's bound company whenever it is
        read from Visma.net (a tenant not bound yet is bound now)."""
        if self.tenant.company_id is None and not self.company_checked:
            self.cache.put("organization", self._load_company())
        organization: dict[str, Any] = self.cache.get("organization", self._load_company)
        return organization

    def _load_company(self) -> dict[str, Any]:
        organizations = self.http.collect("/v1/organization")
        organization = organizations[0] if organizations else {}
        binding.verify(self.tenant, company_of(self.company_tenant_id, organization))
        self.company_checked = True
        return organization

    # -- customers --------------------------------------------------------------------

    def customer(self, customer: Customer, days: int) -> dict[str, str]:
        """Our customer number in Visma.net, created or brought up to date, and its VAT zone."""
        found: dict[str, str] = self.cache.get(
            f"customer:{customer.external_id}",
            lambda: self._upsert_customer(customer, days),
            exclusive=True,
        )
        return found

    def _upsert_customer(self, customer: Customer, days: int) -> dict[str, str]:
        number = customer.external_id
        try:
            current = self.http.get_json(f"/v1/customer/{path_id(number)}")
        except ReferenceStale:
            current = None
        try:
            if current is None:
                zone = self.refs.zone_for(customer.country)
                body = bodies.customer_body(customer, zone, self.refs.credit_terms_id(days))
                body["number"] = bodies.wrap(number)
                body["overrideNumberSeries"] = bodies.wrap(True)
                return {"number": self.http.create("/v1/customer", body), "vat_zone": zone}
            zone = str((current.get("vatZone") or {}).get("id") or "")
            if not zone or _customer_differs(current, customer):
                missing_zone = None if zone else self.refs.zone_for(customer.country)
                body = bodies.customer_body(customer, missing_zone, None)
                self.http.request("PUT", f"/v1/customer/{path_id(number)}", json=body)
                zone = zone or str(missing_zone)
        except Rejected as exc:
            exc.fields = fields_of(exc.original or exc.message, "invoice") or [
                {"field": "invoice.customer", "message": exc.message}
            ]
            raise
        return {"number": number, "vat_zone": zone}

    # -- the plan ---------------------------------------------------------------------

    def prepare(self, ctx: StepContext) -> Plan:
        self.company()
        job = ctx.job
        if isinstance(job, PaymentJob):
            return PaymentSteps(self.http, self.refs).plan(ctx, job)
        resource = RESOURCES[job.kind]
        book = Step(
            "book",
            functools.partial(self._release_document, resource),
            functools.partial(self._find_released, resource),
        )
        if "draft" in ctx.remote:
            return Plan((book,))
        document = document_of(ctx)
        refs = self._document_refs(ctx, document)
        applied = self._credited_amount(ctx, document, refs) if job.kind == "credit_note" else None
        draft = Step(
            "draft",
            functools.partial(self._draft, refs, applied),
            functools.partial(self._find_documents, resource),
        )
        return Plan((draft, book))

    def _document_refs(self, ctx: StepContext, document: Document) -> DocumentRefs:
        """Everything the document refers to, checked before anything is written."""
        prefix = ctx.job.kind
        day = document["date"]
        period = self.refs.require_open_period(day, f"{prefix}.issue_date")
        places = self.refs.currency_places(document["currency"], f"{prefix}.currency")
        branch = self.refs.branch_number()
        days = max((document["due"] - day).days, 0)
        terms = self.refs.credit_terms_id(days) if prefix == "invoice" else None
        customer = self.customer(document["customer"], days)
        lines = []
        for index, line in enumerate(document["lines"]):
            field = f"{prefix}.lines.{index}"
            category = self.refs.category_for(
                line.vat_rate, customer["vat_zone"], day, f"{field}.vat_rate"
            )
            article = line.article_number or self.refs.article_for(line.vat_rate, category)
            account = None
            if line.account is not None:
                account = self.refs.require_account(line.account, f"{field}.account")
            lines.append(LineRefs(category, article, account))
        return DocumentRefs(
            customer["number"], customer["vat_zone"], branch, period, terms, places,
            tuple(lines), self.refs.pinned("subaccount"),
        )  # fmt: skip

    def _credited_amount(self, ctx: StepContext, document: Document, refs: DocumentRefs) -> Decimal:
        """The credit note's gross amount applied to the invoice, at most its balance."""
        gross = bodies.gross_total(document["lines"], refs.places)
        invoice = self.http.get_json(f"/v1/customerinvoice/{path_id(invoice_number(ctx))}")
        balance = Decimal(str(invoice.get("balanceInCurrency", invoice.get("balance", gross))))
        return max(min(gross, balance), Decimal(0))

    def _draft(
        self, refs: DocumentRefs, applied: Decimal | None, ctx: StepContext
    ) -> dict[str, Any]:
        document = document_of(ctx)
        key = ctx.job.idempotency_key
        if applied is None:
            body = bodies.invoice_body(document, refs, key)
        else:
            body = bodies.credit_note_body(document, refs, key, invoice_number(ctx), applied)
        try:
            number = self.http.create(CREATE_PATHS[ctx.job.kind], body)
        except Rejected as exc:
            exc.fields = fields_of(exc.original or exc.message, ctx.job.kind)
            raise
        result: dict[str, Any] = {"number": number, "customer": refs.customer}
        if applied is not None:
            result["applied"] = str(applied)
        return result

    def _find_documents(self, resource: str, ctx: StepContext) -> list[dict[str, Any]]:
        """The documents carrying this job's key as `externalReference`."""
        key = ctx.job.idempotency_key
        found = self.http.collect(f"/v1/{resource}", {"externalReference": key})
        return [
            {"number": str(d.get("referenceNumber")),
             "customer": str((d.get("customer") or {}).get("number"))}
            for d in found
            if d.get("externalReference") == key
        ]  # fmt: skip

    def _release_document(self, resource: str, ctx: StepContext) -> dict[str, Any]:
        """Release (post) the document. The status is read first by the lookup, which
        runs before any second attempt: a release is never sent twice."""
        number = ctx.remote["draft"]["number"]
        path = f"/v1/{resource}/{path_id(number)}"
        try:
            answer = self.http.request("POST", f"{path}/action/release").json()
        except Rejected as exc:
            exc.fields = fields_of(exc.original or exc.message, ctx.job.kind)
            raise
        result = str(answer.get("actionResult") or "")
        if result == "Done":
            return self._booked(number, ctx)
        if result == "Failed":
            raise Rejected(
                f"Visma.net did not release {number}: {answer.get('errorInfo') or 'Failed'}",
                "release_failed",
            )
        ctx.record_progress({"release_action": str(answer.get("actionId") or result)})
        deadline = time.monotonic() + transport.WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(transport.POLL_SECONDS)
            if self.http.get_json(path).get("status") in RELEASED:
                return self._booked(number, ctx)
        raise Transient(f"the release of {number} is {result}; it is checked again later",
                        "release_pending", retry_after=5)  # fmt: skip

    def _find_released(self, resource: str, ctx: StepContext) -> list[dict[str, Any]]:
        number = ctx.remote["draft"]["number"]
        current = self.http.get_json(f"/v1/{resource}/{path_id(number)}")
        if current.get("status") in RELEASED:
            return [self._booked(number, ctx)]
        queued = ctx.intent.get("release_action")
        if queued and ctx.intent_at and _since(ctx.intent_at) < QUEUED_RELEASE_GRACE:
            raise Transient(f"the queued release of {number} has not happened yet",
                            "release_pending", retry_after=5)  # fmt: skip
        return []

    def _booked(self, number: str, ctx: StepContext) -> dict[str, Any]:
        document = document_of(ctx)
        places = self.refs.currency_places(document["currency"], f"{ctx.job.kind}.currency")
        net = sum((bodies.rounded(li.quantity * li.unit_price * (1 - li.discount_percent / 100),
                                  places) for li in document["lines"]), Decimal(0))  # fmt: skip
        gross = bodies.gross_total(document["lines"], places)
        totals = {"net": str(net), "vat": str(gross - net), "gross": str(gross),
                  "currency": document["currency"]}  # fmt: skip
        return {"number": number, "totals": totals}


def _customer_differs(current: dict[str, Any], customer: Customer) -> bool:
    address = current.get("mainAddress") or {}
    pairs = (
        (current.get("name"), customer.name),
        (address.get("addressLine1"), customer.address.line1),
        (address.get("postalCode"), customer.address.postal_code),
        (address.get("city"), customer.address.city),
        ((current.get("mainContact") or {}).get("email"), customer.email),
        (current.get("corporateId"), customer.org_number),
    )
    return any((theirs or None) != (ours or None) for theirs, ours in pairs)


def _since(moment: dt.datetime) -> dt.timedelta:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC) - moment
