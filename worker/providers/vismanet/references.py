"""A Visma.net company's references, cached per tenant (worker/tenancy/refcache.py), and the
choices ledgerpush makes from them: the VAT category of a line (which must fit the
customer's VAT zone: the "TaxCategoryID cannot be found" failure), the branch, the
financial period (refused before writing when closed in the customer ledger), the
currency's decimals, credit terms, our article per VAT category, payment methods and
cash accounts. What cannot be inferred is pinned in the tenant's mapping (spec.py).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from worker.ledger.models import Tenant
from worker.providers.base import ReferenceStale, Rejected
from worker.providers.vismanet.documents import wrap
from worker.providers.vismanet.transport import VismaNetHttp
from worker.tenancy.mapping import rate_key
from worker.tenancy.refcache import TenantCache

ARTICLE_PREFIX = "LP-VAT-"


def _rejected(message: str, code: str, field: str, why: str) -> Rejected:
    return Rejected(message, code, fields=[{"field": field, "message": why}])


def rate_on(code: dict[str, Any], day: dt.date) -> Decimal | None:
    """The rate a VAT code (VatInformationDto) has on `day`: its latest schedule then."""
    schedules = sorted(code.get("schedules") or [], key=lambda s: str(s.get("startDate") or ""))
    current = [s for s in schedules if str(s.get("startDate") or "")[:10] <= day.isoformat()]
    chosen = (current or schedules)[-1:] or [{}]
    rate = chosen[0].get("vatRate")
    return None if rate is None else Decimal(str(rate)).normalize()


class References:
    def __init__(self, tenant: Tenant, http: VismaNetHttp, cache: TenantCache) -> None:
        self.tenant = tenant
        self.http = http
        self.cache = cache

    def listed(self, name: str, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.cache.get(name, lambda: self.http.collect(path))
        return items

    def pinned(self, key: str) -> str | None:
        value = self.tenant.mapping.get(key)
        return None if value in (None, "") else str(value)

    # -- company ----------------------------------------------------------------------

    def branch(self) -> dict[str, Any]:
        branches = self.listed("branches", "/v1/branch")
        wanted = self.pinned("branch")
        for branch in branches:
            if wanted is not None and str(branch.get("number")) == wanted:
                return branch
        if wanted is not None:
            raise _rejected(f"mapping branch={wanted}: Visma.net has no branch {wanted}",
                            "mapping_invalid", "mapping.branch", "no such branch")  # fmt: skip
        main = [b for b in branches if b.get("isMainBranch")] or branches
        if not main:
            raise Rejected("the Visma.net company lists no branch", "no_branch")
        return main[0]

    def branch_number(self) -> str:
        return str(self.branch().get("number"))

    # -- VAT --------------------------------------------------------------------------

    def zone_for(self, country: str) -> str:
        """The VAT zone of a new customer: the branch's for a domestic one, else
        `vat_zone_foreign` or the company's only other zone."""
        home = str((self.branch().get("vatZone") or {}).get("id") or "")
        if country == self.tenant.country and home:
            return home
        pinned = self.pinned("vat_zone_foreign")
        if country != self.tenant.country and pinned:
            return pinned
        others = [str(z.get("id")) for z in self.listed("vatzones", "/v1/vatZone")]
        others = [z for z in others if z != home]
        if country != self.tenant.country and len(others) == 1:
            return others[0]
        raise _rejected(
            f"cannot tell which Visma.net VAT zone a customer in {country} belongs to; map it "
            f"with `ledgerpush tenants map {self.tenant.id} vat_zone_foreign=<zone id>`",
            "no_vat_zone", "invoice.customer.country", "no VAT zone for this country",
        )  # fmt: skip

    def _codes(self) -> dict[str, dict[str, Any]]:
        return {str(c.get("vatId")): c for c in self.listed("vat", "/v1/vat")}

    def _fits(self, category: dict[str, Any], zone: str, rate: Decimal, day: dt.date) -> bool:
        """Some VAT code of the category applies in the zone with this rate. A code whose
        zones are not listed is taken to apply everywhere."""
        codes = self._codes()
        for line in category.get("vatCategoryLines") or []:
            code = codes.get(str(line.get("vatId")))
            if code is None:
                continue
            zones = {str(z.get("id")) for z in code.get("zones") or []}
            if (not zones or zone in zones) and rate_on(code, day) == rate:
                return True
        return False

    def category_for(self, rate: Decimal, zone: str, day: dt.date, field: str) -> str:
        """The VAT category of a line with this rate for a customer in this zone."""
        rate = rate.normalize()
        categories = {
            str(c.get("vatCategoryId")): c
            for c in self.listed("vatcategories", "/v1/vatCategory")
            if c.get("active", True)
        }
        key = rate_key("vat", rate)
        pinned = self.pinned(key)
        if pinned is not None:
            category = categories.get(pinned)
            if category is None or not self._fits(category, zone, rate, day):
                why = "no such active VAT category" if category is None else (
                    f"it has no {rate:f}% VAT code for VAT zone {zone}")  # fmt: skip
                raise _rejected(
                    f"mapping {key}={pinned}: {why}; fix it with `ledgerpush tenants map "
                    f"{self.tenant.id} {key}=<VAT category id>`",
                    "mapping_invalid", f"mapping.{key}", why,
                )  # fmt: skip
            return pinned
        fitting = sorted(i for i, c in categories.items() if self._fits(c, zone, rate, day))
        default = self._zone_default(zone)
        if default in fitting:
            return default
        if fitting:
            return fitting[0]
        raise _rejected(
            f"no Visma.net VAT category has {rate:f}% VAT in VAT zone {zone}; set one up or "
            f"map one with `ledgerpush tenants map {self.tenant.id} {key}=<VAT category id>`",
            "no_vat_category", field, f"no {rate:f}% VAT category for VAT zone {zone}",
        )  # fmt: skip

    def _zone_default(self, zone: str) -> str | None:
        for item in self.listed("vatzones", "/v1/vatZone"):
            if str(item.get("id")) == zone:
                default = item.get("defaultVatCategory") or (
                    item.get("defaultTaxCategory") or {}).get("number")  # fmt: skip
                return None if default is None else str(default)
        return None

    # -- periods, currencies, terms, accounts -----------------------------------------

    def require_open_period(self, day: dt.date, field: str) -> str:
        """The financial period (YYYYMM) of `day`, refused when it is closed in the
        customer ledger or not there: before anything is written."""
        wanted = f"{day.year}{day.month:02d}"
        for period in self.listed("periods", "/v1/financialPeriod"):
            if str(period.get("period")) != wanted:
                continue
            if period.get("closedInCustomerLedger") or period.get("active") is False:
                raise _rejected(
                    f"financial period {wanted} is closed in the Visma.net customer ledger; "
                    "use a date in an open period or have the period reopened",
                    "period_closed", field, f"period {wanted} is closed in the customer ledger",
                )  # fmt: skip
            return wanted
        raise _rejected(
            f"Visma.net has no financial period {wanted}; create the financial year first",
            "no_period", field, f"no financial period {wanted}",
        )  # fmt: skip

    def currency_places(self, code: str, field: str) -> int:
        for currency in self.listed("currencies", "/v1/currency"):
            if str(currency.get("id")) == code:
                return int(currency.get("decimalPrecision", 2))
        raise _rejected(f"currency {code} is not set up in this Visma.net company",
                        "unknown_currency", field, f"{code} is not available")  # fmt: skip

    def credit_terms_id(self, days: int) -> str:
        pinned = self.pinned("payment_terms")
        if pinned is not None:
            return pinned
        terms = self.listed("creditterms", "/v1/creditTerm")
        if not terms:
            raise Rejected("no credit terms in Visma.net; map one with payment_terms=<id>",
                           "no_payment_terms")  # fmt: skip
        closest = min(terms, key=lambda t: (abs(int(t.get("delayDays") or 0) - days),
                                            str(t.get("termsId"))))  # fmt: skip
        return str(closest.get("termsId"))

    def require_account(self, number: int, field: str) -> str:
        wanted = str(number)
        for account in self.listed("accounts", "/v1/account"):
            if str(account.get("accountCD") or account.get("number")) == wanted:
                if account.get("active") is False:
                    break
                return wanted
        raise _rejected(f"account {wanted} is not an active account in Visma.net",
                        "unknown_account", field, f"no active account {wanted}")  # fmt: skip

    # -- articles -----------------------------------------------------------------------

    def article_for(self, rate: Decimal, category: str) -> str:
        """`article.<rate>` when pinned, else our non-stock item for the VAT category
        (`LP-VAT-<category>`), created the first time it is needed."""
        pinned = self.pinned(rate_key("article", rate))
        if pinned is not None:
            return pinned
        number = f"{ARTICLE_PREFIX}{category}"
        self.cache.get(f"article:{number}", lambda: self._find_or_create(number, category),
                       exclusive=True)  # fmt: skip
        return number

    def _find_or_create(self, number: str, category: str) -> str:
        try:
            self.http.get_json(f"/v1/inventory/{number}")
            return number
        except ReferenceStale:
            pass
        body = {
            "inventoryNumber": wrap(number),
            "description": wrap(f"Sales, VAT category {category}"),
            "type": wrap("NonStockItem"),
            "vatCode": wrap(category),
        }
        self.http.create("/v1/inventory", body)
        return number

    # -- payments -------------------------------------------------------------------------

    def payment_method(self) -> str:
        pinned = self.pinned("payment_method")
        if pinned is not None:
            return pinned
        active = [m for m in self.listed("paymentmethods", "/v1/paymentmethod")
                  if m.get("active", True)]  # fmt: skip
        if len(active) == 1:
            return str(active[0].get("paymentMethodID"))
        raise _rejected(
            f"{len(active)} payment methods in Visma.net; map the one customer payments use "
            f"with `ledgerpush tenants map {self.tenant.id} payment_method=<id>`",
            "no_payment_method", "mapping.payment_method", "choose a payment method",
        )  # fmt: skip

    def cash_account(self, currency: str) -> str:
        pinned = self.pinned("cash_account")
        if pinned is not None:
            return pinned
        accounts = self.listed("cashaccounts", "/v1/cashaccount")
        same = [a for a in accounts if a.get("currency") in (currency, None, "")]
        if len(same) == 1:
            return str(same[0].get("number"))
        raise _rejected(
            f"{len(same)} cash accounts in {currency} in Visma.net; map the one payments are "
            f"booked on with `ledgerpush tenants map {self.tenant.id} cash_account=<number>`",
            "no_cash_account", "mapping.cash_account", "choose a cash account",
        )  # fmt: skip
