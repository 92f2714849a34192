"""Reference resolution for eAccounting: VAT reaches an invoice row through an article,
whose account coding decides the VAT rate and sales account, so for each VAT rate of a
job a coding is picked (the one the tenant's mapping pins, or the one whose sales account
is the line's `account`) and one article that uses it found or created, once per tenant
and coding."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.countries import EU_COUNTRIES
from worker.jobs import Customer, Line
from worker.providers.base import Rejected
from worker.providers.eaccounting.company import company_of
from worker.providers.eaccounting.errors import fields_of
from worker.providers.paging import PagedReferences
from worker.tenancy import binding
from worker.tenancy.mapping import rate_key

PAGE_SIZE = 200
ARTICLE_PREFIX = "LP-VAT"
#: The coding's sales account eAccounting books a row on, by the sale's situation.
SITUATION_ACCOUNT = {
    "domestic": "DomesticSalesSubjectToVatAccountNumber",
    "domestic_exempt": "DomesticSalesVatExemptAccountNumber",
    "eu_vat": "ForeignSalesSubjectToVatWithinEuAccountNumber",
    "eu_exempt": "ForeignSalesVatExemptWithinEuAccountNumber",
    "outside_eu": "ForeignSalesVatExemptOutsideEuAccountNumber",
}


def _rate(value: Any) -> Decimal:
    """VatRate / VatRatePercent may arrive as 0.25 or 25; normalise to percent."""
    number = Decimal(str(value))
    return (number * 100).normalize() if number <= 1 else number.normalize()


@dataclass(frozen=True)
class Pages:
    """eAccounting's paging: `$page` (from 1) and `$pagesize`; `Meta.TotalNumberOfPages`."""

    size: int

    def query(self, page: int) -> dict[str, Any]:
        return {"$page": page + 1, "$pagesize": self.size}

    def rows(self, body: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = body.get("Data") or []
        return rows

    def more_after(self, page: int, body: Any) -> bool:
        meta = body.get("Meta") or {}
        return page + 1 < int(meta.get("TotalNumberOfPages") or 1)


class References(PagedReferences):
    """What a job refers to in eAccounting, resolved and cached per tenant: the company,
    currencies, fiscal years, accounts, article account codings, units, articles, terms
    of payment, bank accounts and customers. Mixed into the provider, which holds the
    tenant, the cache and the HTTP client."""

    def pager(self) -> Pages:
        return Pages(self.page_size)

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
