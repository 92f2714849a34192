"""Visma eAccounting (NO, NL; Spiris SE; ePasseli FI) provider client.

VAT reaches an invoice row through an article: a non-text row must reference an
article, and the article's account coding decides the VAT rate and sales account. So
for each VAT rate of a job we pick the coding with that rate (the one the tenant's
mapping pins, or the one whose sales account is the line's `account`) and find or
create one article that uses that coding, once per tenant and coding.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from worker import binding, tenants
from worker.jobs import Customer, Line, Payment, PaymentJob
from worker.ledger.models import Tenant
from worker.mapping import rate_key
from worker.providers.base import (
    Call,
    NeedsReauth,
    NeedsReview,
    Plan,
    ProviderError,
    ReferenceStale,
    Rejected,
    Step,
    StepContext,
    Transient,
    Unsupported,
)
from worker.providers.documents import Document, document_of
from worker.providers.eaccounting.auth import EAccountingAuth
from worker.providers.eaccounting.company import company_of
from worker.providers.http import ProviderHttp, retry_after_seconds
from worker.providers.limits import Limits
from worker.ratelimit import Rate
from worker.refcache import TenantCache
from worker.settings import get_settings

PAGE_SIZE = 200
# CompanySettingsApi.ProductVariant; endpoints.json lists the variants of each endpoint:
# customers, articles, drafts and invoice payments exist in every variant but Bookkeeping.
BOOKKEEPING_VARIANT = 3
CLOCK_SKEW = dt.timedelta(seconds=5)
PAYMENT_COMPLETE, PAYMENT_PARTIAL = 2, 1
ARTICLE_PREFIX = "LP-VAT"
EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
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
#: The coding's sales account eAccounting books a row on, by the sale's situation.
SITUATION_ACCOUNT = {
    "domestic": "DomesticSalesSubjectToVatAccountNumber",
    "domestic_exempt": "DomesticSalesVatExemptAccountNumber",
    "eu_vat": "ForeignSalesSubjectToVatWithinEuAccountNumber",
    "eu_exempt": "ForeignSalesVatExemptWithinEuAccountNumber",
    "outside_eu": "ForeignSalesVatExemptOutsideEuAccountNumber",
}
#: A copy of the reference's endpoints.json (a test checks they are the same file).
ENDPOINTS_FILE = Path(__file__).parents[2] / "simulators" / "data" / "eaccounting_endpoints.json"
_ROW_FIELD = re.compile(r"Rows\[(\d+)\]\.(\w+)")
_REFERENCE_FIELDS = (
    "CustomerId",
    "ArticleId",
    "CodingId",
    "TermsOfPaymentId",
    "UnitId",
    "CompanyBankAccountId",
)
ROW_FIELDS = {
    "UnitPrice": "unit_price",
    "Quantity": "quantity",
    "Text": "description",
    "DiscountPercentage": "discount_percent",
    "ArticleId": "vat_rate",
}
DOCUMENT_FIELDS = {
    "InvoiceDate": "issue_date",
    "DueDate": "due_date",
    "YourReference": "your_reference",
    "InvoiceCurrencyCode": "currency",
    "CustomerId": "customer",
}
CUSTOMER_FIELDS = {
    "Name": "name",
    "InvoiceAddress1": "address.line1",
    "InvoiceAddress2": "address.line2",
    "InvoiceCity": "address.city",
    "InvoicePostalCode": "address.postal_code",
    "InvoiceCountryCode": "country",
    "EmailAddress": "email",
    "CorporateIdentityNumber": "org_number",
    "VatNumber": "vat_number",
    "CustomerNumber": "external_id",
}
PAYMENT_FIELDS = {
    "PaymentAmount": "amount",
    "PaymentDate": "payment_date",
    "PaymentCurrency": "currency",
    "Reference": "reference",
}


def rate_limit_key(client_id: str, tenant_id: str) -> str:
    """Visma counts 600 requests a minute "per client and endpoint"; the endpoint is added
    by ProviderHttp. LEDGERPUSH_EACCOUNTING_RATE_SCOPE=client shares one budget between
    all companies of the application."""
    if get_settings().eaccounting_rate_scope == "client":
        return f"ea:{client_id}"
    return f"ea:{client_id}:{tenant_id}"


def _rate(value: Any) -> Decimal:
    """VatRate / VatRatePercent may arrive as 0.25 or 25; normalise to percent."""
    number = Decimal(str(value))
    return (number * 100).normalize() if number <= 1 else number.normalize()


def _message(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300], str(response.status_code)
    if not isinstance(body, dict):
        return str(body)[:300], str(response.status_code)
    text = str(
        body.get("DeveloperErrorMessage") or body.get("Error") or body.get("Message") or body
    )
    return text, str(body.get("ErrorCode", response.status_code))


def map_error(
    response: httpx.Response, prefix: str = "invoice", granted: frozenset[str] | None = None
) -> ProviderError:
    """By status code and the scopes endpoints.json lists, never by the message's words
    (the reference fixes only the keys ErrorCode, Error/DeveloperErrorMessage and ErrorId,
    and one ErrorCode: 4010, throttled). `granted`: the scopes of the tenant's consent."""
    text, code = _message(response)
    original = f"HTTP {response.status_code} ErrorCode {code}: {text}"
    status = response.status_code
    if status == 401:
        return NeedsReauth(
            "eAccounting refused the access token even after a refresh", "token_refused", original
        )
    if status == 403:
        return _forbidden(response, granted, text, code, original)
    if status == 429:
        return Transient(
            "eAccounting rate limit hit",
            "rate_limited",
            original,
            retry_after=_retry_after(response, text),
        )
    if status >= 500:
        return Transient(f"eAccounting answered {status}", "provider_unavailable", original)
    if status == 404:
        # A path with an id we took from the cache (or a draft we wrote) that is not there.
        return ReferenceStale(
            "a cached eAccounting reference no longer exists", "reference_stale", original
        )
    return Rejected(
        f"eAccounting rejected the document: {text}", "rejected", original, fields_of(text, prefix)
    )


def _forbidden(
    response: httpx.Response, granted: frozenset[str] | None, text: str, code: str, original: str
) -> ProviderError:
    """Reference README: "A scope missing from the authorization request gives an
    authorization error for that area"; endpoints.json lists the scopes each endpoint
    accepts. It documents no ErrorCode or field that marks a 403 as a scope problem, so
    only a consent that provably lacks every scope the endpoint accepts is one (the
    customer must authorize again); any other 403 is reported as eAccounting said it,
    since re-authorizing would not change it."""
    request = response.request
    accepted = endpoint_scopes(request.method, request.url.path)
    if granted is not None and accepted and not granted & set(accepted):
        return NeedsReauth(
            f"missing scope {' or '.join(accepted)} ({request.method} "
            f"{_template(request.method, request.url.path)} needs it): the consent must be "
            "given again",
            "missing_scope",
            original,
        )
    return Rejected(f"eAccounting refused the request (403, ErrorCode {code}): {text}",
                    "forbidden", original)  # fmt: skip


def _endpoint_patterns() -> list[tuple[str, str, re.Pattern[str], tuple[str, ...]]]:
    """(method, template, pattern, accepted scopes) from the packaged endpoints.json, the
    most literal templates first so /customers/{id} does not shadow a fixed path."""
    raw = json.loads(ENDPOINTS_FILE.read_text(encoding="utf-8"))["endpoints"]
    found = []
    for item in raw:
        template = str(item["path"])
        parts = re.split(r"\{[^}]+\}", template)
        regex = "[^/]+".join(re.escape(part) for part in parts)
        found.append((str(item["method"]), template, re.compile(f"{regex}/?$", re.I),
                      tuple(item["scopes"])))  # fmt: skip
    found.sort(key=lambda e: e[1].count("{"))
    return found


_ENDPOINTS = _endpoint_patterns()


def _match(method: str, path: str) -> tuple[str, tuple[str, ...]] | None:
    for known, template, pattern, scopes in _ENDPOINTS:
        if known == method and pattern.search(path):
            return template, scopes
    return None


def endpoint_scopes(method: str, path: str) -> tuple[str, ...]:
    """The scopes endpoints.json says the endpoint accepts (empty if it is not listed)."""
    found = _match(method, path)
    return found[1] if found else ()


def _template(method: str, path: str) -> str:
    found = _match(method, path)
    return found[0] if found else path


def _retry_after(response: httpx.Response, text: str) -> float:
    match = re.search(r"Try again in (\d+) seconds", text)
    return float(match.group(1)) if match else retry_after_seconds(response, 60)


def fields_of(text: str, prefix: str) -> list[dict[str, str]]:
    """Point eAccounting's field names at our payload's paths."""
    found: list[dict[str, str]] = []
    for match in _ROW_FIELD.finditer(text):
        index, name = match.groups()
        ours = ROW_FIELDS.get(name, name)
        found.append({"field": f"{prefix}.lines.{index}.{ours}", "message": text})
    for name, ours in {**DOCUMENT_FIELDS, **PAYMENT_FIELDS}.items():
        if re.search(rf"(?<![\w.\]]){name}\b", text):
            found.append({"field": f"{prefix}.{ours}", "message": text})
    for name, ours in CUSTOMER_FIELDS.items():
        if re.search(rf"(?<![\w.\]]){name}\b", text) and not any(
            f["field"].endswith(ours) for f in found
        ):
            found.append({"field": f"{prefix}.customer.{ours}", "message": text})
    return found


def granted_scopes(tenant: Tenant) -> frozenset[str] | None:
    """The scopes the tenant's consent gave (the token answer's `scope`); None if unknown."""
    scope = str(tenants.credentials_of(tenant).get("scope") or "")
    return frozenset(scope.split()) or None


@dataclass(frozen=True)
class DocumentRefs:
    """What a draft refers to in eAccounting: its customer and one article per line."""

    customer: str
    articles: tuple[str, ...]


class EAccountingProvider:
    name = "eaccounting"

    def __init__(self, tenant: Tenant) -> None:
        settings = get_settings()
        self.tenant = tenant
        self.cache = TenantCache(tenant.id)
        self.http = ProviderHttp(
            settings.eaccounting_api_url,
            EAccountingAuth(tenant.id, tenants.credentials_of(tenant)),
            limit_key=rate_limit_key(settings.eaccounting_client_id, tenant.id),
            rate=Rate(
                settings.eaccounting_rate_per_minute,
                60.0,
                burst=max(settings.eaccounting_rate_per_minute // 20, 1),
            ),
            map_error=functools.partial(map_error, granted=granted_scopes(tenant)),
        )
        self.calls: list[Call] = self.http.calls
        self.company_checked = False

    # -- references -----------------------------------------------------------------

    def collect(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every page of a collection, not just the first."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.http.get_json(
                path, {**(params or {}), "$page": page, "$pagesize": PAGE_SIZE}
            )
            items.extend(body.get("Data") or [])
            meta = body.get("Meta") or {}
            if page >= int(meta.get("TotalNumberOfPages") or 1):
                return items
            page += 1

    def _cached(self, name: str, path: str) -> Any:
        return self.cache.get(name, lambda: self.collect(path))

    def company(self) -> dict[str, Any]:
        """The company's settings, checked against the tenant's bound company whenever
        they are loaded from eAccounting (a tenant not bound yet is bound now)."""
        if self.tenant.company_id is None and not self.company_checked:
            self.cache.put("companysettings", self._load_company())
        settings: dict[str, Any] = self.cache.get("companysettings", self._load_company)
        return settings

    def _load_company(self) -> dict[str, Any]:
        settings: dict[str, Any] = self.http.get_json("/companysettings")
        binding.verify(self.tenant, company_of(settings))
        self.company_checked = True
        return settings

    def require_currency(self, code: str) -> None:
        """Before the customer is written: a foreign currency the company's eAccounting
        does not list (GET /v2/currencies) fails the job; the cached list is read again
        once before that, as the currency may be newer than the cache."""
        if code == self.company().get("CurrencyCode"):
            return

        def load() -> list[str]:
            return [str(c.get("Code")) for c in self.collect("/currencies")]

        codes: list[str] = self.cache.get("currencies", load)
        if code not in codes:
            codes = load()
            self.cache.put("currencies", codes)
        if code not in codes:
            raise Rejected(
                f"currency {code} is not available in this eAccounting company",
                "unknown_currency",
                fields=[{"field": "invoice.currency", "message": f"{code} is not available"}],
            )

    def fiscal_year_id(self, day: dt.date) -> str:
        for year in self._cached("fiscalyears", "/fiscalyears"):
            if str(year["StartDate"])[:10] <= day.isoformat() <= str(year["EndDate"])[:10]:
                return str(year["Id"])
        raise Rejected(
            f"no fiscal year in eAccounting covers {day.isoformat()}; create it in eAccounting first",
            "no_fiscal_year",
            fields=[{"field": "invoice.issue_date", "message": "no fiscal year covers this date"}],
        )

    def accounts(self, fiscal_year_id: str) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = self._cached(
            f"accounts:{fiscal_year_id}", f"/accounts/{fiscal_year_id}"
        )
        return accounts

    def codings(self) -> list[dict[str, Any]]:
        codings: list[dict[str, Any]] = self._cached("codings", "/articleaccountcodings")
        return codings

    def pinned_coding(self, rate: Decimal) -> dict[str, Any] | None:
        """The coding `vat.<rate>` pins (reloaded once if the cached list lacks it)."""
        key = rate_key("vat", rate)
        pinned = self.tenant.mapping.get(key)
        if not pinned:
            return None

        def pick(codings: list[dict[str, Any]]) -> dict[str, Any] | None:
            return next((c for c in codings if str(c["Id"]) == str(pinned)), None)

        coding = pick(self.codings())
        if coding is None:
            fresh = self.collect("/articleaccountcodings")
            self.cache.put("codings", fresh)
            coding = pick(fresh)
        if coding is None:
            raise Rejected(
                f"mapping {key}={pinned}: eAccounting has no article account coding {pinned}; "
                f"fix it with `ledgerpush tenants map {self.tenant.id} {key}=<coding id>`",
                "mapping_invalid",
                fields=[
                    {"field": f"mapping.{key}", "message": f"no coding {pinned} in eAccounting"}
                ],
            )
        return coding

    def coding_for(self, rate: Decimal) -> dict[str, Any]:
        pinned = self.pinned_coding(rate)
        if pinned is not None:
            return pinned
        matching = self._codings_with_rate(rate)
        if not matching:
            raise Rejected(
                f"no article account coding with {rate:f}% VAT in this company; map one with "
                f"`ledgerpush tenants map {self.tenant.id} vat.{rate:f}=<coding id>`",
                "no_vat_coding",
                fields=[
                    {"field": "invoice.lines.vat_rate", "message": f"no coding with {rate:f}% VAT"}
                ],
            )
        return matching[0]

    def _codings_with_rate(self, rate: Decimal) -> list[dict[str, Any]]:
        matching = [
            c
            for c in self.codings()
            if c.get("IsActive", True) and _rate(c.get("VatRatePercent", -1)) == rate
        ]
        return sorted(matching, key=lambda c: (c.get("Type") != "Goods", str(c.get("Name"))))

    def situation(self, customer: Customer, rate: Decimal) -> str:
        """Which of a coding's sales accounts eAccounting books this customer's sale on."""
        home = str(self.company().get("CountryCode") or self.tenant.country)
        if customer.country == home:
            return "domestic_exempt" if rate == 0 else "domestic"
        if home in EU_COUNTRIES and customer.country in EU_COUNTRIES:
            business = not customer.is_private_person and customer.vat_number
            return "eu_exempt" if business else "eu_vat"
        return "outside_eu"

    def coding_for_account(
        self, index: int, line: Line, customer: Customer, prefix: str
    ) -> dict[str, Any]:
        """The coding with the line's VAT rate that books this sale on `line.account`
        (the pinned `vat.<rate>` coding first when it does)."""
        rate = line.vat_rate.normalize()
        situation = self.situation(customer, rate)
        field = SITUATION_ACCOUNT[situation]
        pinned = self.pinned_coding(rate)
        candidates = ([pinned] if pinned else []) + self._codings_with_rate(rate)
        for coding in candidates:
            if str(coding.get(field)) == str(line.account):
                return coding
        accounts = sorted({str(c.get(field)) for c in candidates if c.get(field) is not None})
        raise Rejected(
            f"line {index}: no article account coding with {rate:f}% VAT books {situation} "
            f"sales on account {line.account}",
            "no_coding_for_account",
            fields=[
                {
                    "field": f"{prefix}.lines.{index}.account",
                    "message": f"codings with {rate:f}% VAT book these sales on "
                    f"{', '.join(accounts) or 'no account'}; set up a coding for "
                    f"{line.account} in eAccounting or leave account out",
                }
            ],
        )

    def unit_id(self) -> str:
        units: list[dict[str, Any]] = self._cached("units", "/units")
        if not units:
            raise Rejected("the company has no units; create one in eAccounting", "no_units")
        preferred = [
            u for u in units if str(u.get("Code", "")).lower() in ("st", "stk", "pcs", "kpl", "st.")
        ]
        return str((preferred or units)[0]["Id"])

    def article_for(self, index: int, line: Line, customer: Customer, prefix: str) -> str:
        if line.article_number:
            if line.account is not None:
                raise _account_with_article(index, prefix)
            number = line.article_number
            return str(
                self.cache.get(
                    f"article:{number}", lambda: self._find_article(number), exclusive=True
                )
            )
        pinned = self.tenant.mapping.get(rate_key("article", line.vat_rate))
        if pinned and line.account is None:
            return str(pinned)
        coding = (
            self.coding_for(line.vat_rate)
            if line.account is None
            else self.coding_for_account(index, line, customer, prefix)
        )
        return str(
            self.cache.get(
                f"article:coding:{coding['Id']}",
                lambda: self._find_or_create_article(line.vat_rate, coding),
                exclusive=True,
            )
        )

    def _find_article(self, number: str) -> str:
        found = self.collect("/articles", {"$filter": f"Number eq '{_quote(number)}'"})
        if not found:
            raise Rejected(f"article {number} does not exist in eAccounting", "unknown_article")
        return str(found[0]["Id"])

    def _find_or_create_article(self, rate: Decimal, coding: dict[str, Any]) -> str:
        """Our article for this coding: `LP-VAT<rate>` when that one uses the coding (or
        does not exist yet), else `LP-VAT<rate>-<coding id prefix>`."""
        plain = f"{ARTICLE_PREFIX}{rate.normalize():f}"
        numbers = (plain, f"{plain}-{str(coding['Id'])[:8]}")
        query = " or ".join(f"Number eq '{_quote(n)}'" for n in numbers)
        found = self.collect("/articles", {"$filter": query})
        for number in numbers:
            for article in found:
                if article.get("Number") == number and str(article.get("CodingId")) == str(
                    coding["Id"]
                ):
                    return str(article["Id"])
        taken = {str(a.get("Number")) for a in found}
        body = {
            "Number": next(n for n in numbers if n not in taken),
            "Name": f"Sales {rate.normalize():f}% VAT ({coding.get('Name')})"[:50],
            "CodingId": coding["Id"],
            "UnitId": self.unit_id(),
            "IsActive": True,
            "NetPrice": 0,
        }
        return str(self.http.request("POST", "/articles", json=body).json()["Id"])

    def terms_of_payment_id(self, days: int) -> str:
        pinned = self.tenant.mapping.get("payment_terms")
        if pinned:
            return str(pinned)
        terms = [
            t
            for t in self._cached("termsofpayment", "/termsofpayments")
            if t.get("AvailableForSales", True)
        ]
        if not terms:
            raise Rejected(
                "no terms of payment for sales; map one with payment_terms=<id>", "no_payment_terms"
            )
        return str(min(terms, key=lambda t: abs(int(t.get("NumberOfDays") or 0) - days))["Id"])

    def bank_account_id(self, currency: str) -> str:
        pinned = self.tenant.mapping.get("bank_account")
        if pinned:
            return str(pinned)
        accounts = [
            a for a in self._cached("bankaccounts", "/bankaccounts") if a.get("IsActive", True)
        ]
        same = [a for a in accounts if a.get("CurrencyCode") in (currency, None, "")]
        if not same:
            raise Rejected(
                f"no active bank account for {currency}; map one with "
                f"`ledgerpush tenants map {self.tenant.id} bank_account=<id>`",
                "no_bank_account",
            )
        default = [a for a in same if a.get("IsDefaultChequeAccount")]
        return str((default or same)[0]["Id"])

    def customer_id(self, customer: Customer, days: int) -> str:
        return str(
            self.cache.get(
                f"customer:{customer.external_id}",
                lambda: self._upsert_customer(customer, days),
                exclusive=True,
            )
        )

    def _upsert_customer(self, customer: Customer, days: int) -> str:
        found = self.collect(
            "/customers", {"$filter": f"CustomerNumber eq '{_quote(customer.external_id)}'"}
        )
        if found:
            return str(found[0]["Id"])
        address = customer.address
        body = {
            "CustomerNumber": customer.external_id,
            "Name": customer.name,
            "InvoiceAddress1": address.line1,
            "InvoiceAddress2": address.line2,
            "InvoiceCity": address.city,
            "InvoicePostalCode": address.postal_code,
            "InvoiceCountryCode": customer.country,
            "EmailAddress": customer.email,
            "CorporateIdentityNumber": customer.org_number,
            "VatNumber": customer.vat_number,
            "IsPrivatePerson": customer.is_private_person,
            "IsActive": True,
            "TermsOfPaymentId": self.terms_of_payment_id(days),
        }
        body = {k: v for k, v in body.items() if v is not None}
        try:
            response = self.http.request("POST", "/customers", json=body)
        except Rejected as exc:
            exc.fields = fields_of(exc.original or exc.message, "invoice")
            raise
        return str(response.json()["Id"])

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


def _account_with_article(index: int, prefix: str) -> Rejected:
    return Rejected(
        f"line {index} names both an article and an account; the article's coding decides "
        "the account",
        "account_with_article",
        fields=[
            {
                "field": f"{prefix}.lines.{index}.account",
                "message": "leave account out when article_number is set",
            }
        ],
    )


def _quote(value: str) -> str:
    return value.replace("'", "''")


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
