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
tenant in Redis; in steady state an invoice costs two calls: draft and book.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from worker import binding, tenants
from worker.jobs import Customer, Line, Payment, PaymentJob
from worker.ledger.models import Tenant
from worker.mapping import rate_key
from worker.providers.base import (
    Call,
    Plan,
    ReferenceStale,
    Rejected,
    Step,
    StepContext,
    Unsupported,
)
from worker.providers.documents import Document, document_of
from worker.providers.economic.auth import EconomicAuth
from worker.providers.economic.company import company_of
from worker.providers.economic.errors import (
    ALREADY_EXISTS,
    CUSTOMER_FIELDS,
    DRAFT_FIELDS,
    VOUCHER_FIELDS,
    map_error,
    translate,
)
from worker.providers.http import ProviderHttp
from worker.providers.limits import Limits
from worker.ratelimit import Rate
from worker.refcache import TenantCache
from worker.settings import get_settings

T = TypeVar("T")
PAGE_SIZE = 1000  # the most e-conomic allows per page
MAX_CUSTOMER_NUMBER = 999_999_999
DERIVED_NUMBERS = (100_000_000, 900_000_000)  # first number, how many
EU = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
ZONES = {"domestic": ("domestic", 1), "eu": ("eu", 2), "abroad": ("abroad", 3)}
DAYBOOK_WORDS = ("kassekladde", "dagbog", "dagbok", "daglig", "daybook")
FOREIGN_WORDS = ("udenland", "udland", "utenland", "utland", "foreign", "abroad")
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


def customer_number(external_id: str) -> int:
    """The e-conomic customer number for a producer's customer id.

    e-conomic keys customers by a number (1..999,999,999) and has no field for a foreign
    id that its API can filter on. An all-digit id in range is used as the number itself;
    any other id gets a number derived from its SHA-256 in 100,000,000..999,999,999, away
    from the small numbers e-conomic hands out itself. Deriving (rather than letting
    e-conomic number a new customer) keeps the upsert stateless and idempotent: a retry
    after a lost answer finds the customer it created instead of creating a second one.
    The one risk, two ids with the same derived number, is caught by `_check_identity`
    when the org numbers differ.
    """
    if external_id.isdigit() and 1 <= int(external_id) <= MAX_CUSTOMER_NUMBER:
        return int(external_id)
    digest = hashlib.sha256(external_id.encode()).digest()
    first, count = DERIVED_NUMBERS
    return first + int.from_bytes(digest[:8], "big") % count


def filter_value(value: str) -> str:
    """Escape a value for e-conomic's `filter=` language (introduction.md, "Escaping")."""
    escaped = value.replace("$", "$$")
    for char in _FILTER_SPECIALS:
        escaped = escaped.replace(char, "$" + char)
    return escaped


def _by_key(key: str) -> dict[str, str]:
    return {"filter": f"references.other$eq:{filter_value(key)}"}


def _compact(value: Any) -> Any:
    """e-conomic refuses null ("omit the property to null it"): drop Nones and empty objects."""
    if isinstance(value, dict):
        kept = {k: _compact(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _natural(number: str) -> tuple[int, int | str]:
    return (0, int(number)) if number.isdigit() else (1, number)


Row = dict[str, Any]


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


class EconomicProvider:
    name = "economic"

    def __init__(self, tenant: Tenant) -> None:
        settings = get_settings()
        grant = str(tenants.credentials_of(tenant).get("grant_token", ""))
        agreement = hashlib.sha256(grant.encode()).hexdigest()[:16]
        self.tenant = tenant
        self.cache = TenantCache(tenant.id)
        self.http = ProviderHttp(
            settings.economic_api_url,
            EconomicAuth(grant),
            limit_key=f"ec:{agreement}",
            rate=daily_budget(settings.economic_calls_per_day),
            map_error=map_error,
            endpoint_limits=False,
        )
        self.calls: list[Call] = self.http.calls
        self.page_size = PAGE_SIZE
        self.company_checked = False

    # -- collections and cached references ---------------------------------------------

    def collect(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every page of a collection, following `pagination.nextPage` to the end."""
        items: list[dict[str, Any]] = []
        skip = 0
        while True:
            body = self.http.get_json(
                path, {**(params or {}), "skippages": skip, "pagesize": self.page_size}
            )
            page = body.get("collection") or []
            items.extend(page)
            if not page or not (body.get("pagination") or {}).get("nextPage"):
                return items
            skip += 1

    def _fresh(self, name: str, load: Callable[[], T], ok: Callable[[T], bool]) -> T:
        """The cached value if `ok` with it, else reloaded once (it may be older than the
        thing we look for) before the caller gives up."""
        value: T = self.cache.get(name, load)
        if ok(value):
            return value
        value = load()
        self.cache.put(name, value)
        return value

    def self_info(self) -> dict[str, Any]:
        """The agreement's `/self`, checked against the tenant's bound company whenever
        it is loaded from e-conomic (a tenant not bound yet is bound now)."""
        if self.tenant.company_id is None and not self.company_checked:
            self.cache.put("self", self._load_self())
        info: dict[str, Any] = self.cache.get("self", self._load_self)
        return info

    def _load_self(self) -> dict[str, Any]:
        body = self.http.get_json("/self")
        binding.verify(self.tenant, company_of(body))
        self.company_checked = True
        modules = sorted(str(m.get("name")) for m in body.get("modules") or [])
        tenants.update_capabilities(self.tenant.id, {"modules": modules})
        return {
            "agreement": body.get("agreementNumber"),
            "modules": modules,
            "base_currency": (body.get("settings") or {}).get("baseCurrency"),
        }

    def require_module(self, module: str) -> None:
        if module not in self.self_info()["modules"]:
            raise Unsupported(
                f"module_missing: {module} (the e-conomic agreement lacks the {module} module)",
                "module_missing",
            )

    def projects(self) -> list[dict[str, Any]]:
        """The agreement's projects (Projects module): asks e-conomic, which is the judge."""
        return self.collect("/projects")

    def _layouts(self) -> list[dict[str, Any]]:
        return [
            {"number": x["layoutNumber"], "name": x.get("name")}
            for x in self.collect("/layouts")
            if not x.get("deleted")
        ]

    def _payment_terms(self) -> list[dict[str, Any]]:
        return [
            {
                "number": t["paymentTermsNumber"],
                "type": t.get("paymentTermsType"),
                "days": int(t.get("daysOfCredit") or 0),
            }
            for t in self.collect("/payment-terms")
        ]

    def _vat_zones(self) -> list[dict[str, Any]]:
        return [
            {"number": z["vatZoneNumber"], "name": str(z.get("name", ""))}
            for z in self.collect("/vat-zones")
            if z.get("enabledForCustomer", True)
        ]

    def _currencies(self) -> list[str]:
        return [str(c["code"]) for c in self.collect("/currencies")]

    def _years(self) -> list[dict[str, Any]]:
        return [
            {
                "year": y["year"],
                "from": y["fromDate"],
                "to": y["toDate"],
                "closed": bool(y.get("closed")),
            }
            for y in self.collect("/accounting-years")
        ]

    def _journals(self) -> list[dict[str, Any]]:
        journals = []
        for j in self.collect("/journals"):
            settings = j.get("settings") or {}
            contra = (settings.get("contraAccounts") or {}).get("customerPayments") or {}
            journals.append(
                {
                    "number": j["journalNumber"],
                    "name": str(j.get("name", "")),
                    "restricted": settings.get("entryTypeRestrictedTo"),
                    "contra": contra.get("accountNumber"),
                }
            )
        return journals

    def _customer_groups(self) -> list[dict[str, Any]]:
        return [
            {"number": g["customerGroupNumber"], "name": str(g.get("name", ""))}
            for g in self.collect("/customer-groups")
        ]

    def _accounts(self) -> list[int]:
        return [int(a["accountNumber"]) for a in self.collect("/accounts") if not a.get("barred")]

    def _catalogue(self) -> dict[str, Any]:
        """Products, and for each product group the sales account and VAT code per zone."""
        products = [
            {
                "number": str(p["productNumber"]),
                "group": str((p.get("productGroup") or {}).get("productGroupNumber")),
                "barred": bool(p.get("barred")),
            }
            for p in self.collect("/products")
        ]
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        for group in self.collect("/product-groups"):
            number = group["productGroupNumber"]
            zones: dict[str, dict[str, Any]] = {}
            for row in self.collect(f"/product-groups/{number}/sales-accounts"):
                account = row.get("salesAccount") or {}
                zones[str(row["vatZone"]["vatZoneNumber"])] = {
                    "account": account.get("accountNumber"),
                    "vat": (account.get("vatAccount") or {}).get("vatCode"),
                }
            groups[str(number)] = zones
        rates = {
            str(v["vatCode"]): str(v.get("ratePercentage", 0))
            for v in self.collect("/vat-accounts")
        }
        return {"products": products, "groups": groups, "rates": rates}

    # -- choices ------------------------------------------------------------------------

    def _pinned(self, key: str) -> Any:
        return self.tenant.mapping.get(key)

    def _pinned_row(
        self, key: str, name: str, load: Callable[[], list[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """The cached reference the mapping `key` pins by number (None when it pins none)."""
        pinned = self._pinned(key)
        if not pinned:
            return None

        def pick(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
            return next((r for r in rows if str(r["number"]) == str(pinned)), None)

        row = pick(self._fresh(name, load, lambda rows: pick(rows) is not None))
        if row is None:
            raise self._mapping_invalid(key, pinned, key.replace("_", " "))
        return row

    def _mapping_invalid(self, key: str, value: Any, what: str) -> Rejected:
        return Rejected(
            f"mapping {key}={value}: e-conomic has no {what} {value}; fix it with "
            f"`ledgerpush tenants map {self.tenant.id} {key}=<number>`",
            "mapping_invalid",
            fields=[{"field": f"mapping.{key}", "message": f"no {what} {value} in e-conomic"}],
        )

    def require_currency(self, code: str, field: str) -> None:
        currencies = self._fresh("currencies", self._currencies, lambda c: code in c)
        if code not in currencies:
            raise Rejected(
                f"currency {code} is not set up in e-conomic; add it there first",
                "unknown_currency",
                fields=[{"field": field, "message": f"{code} is not a currency of the agreement"}],
            )

    def open_year(self, day: dt.date, field: str) -> str:
        iso = day.isoformat()

        def covering(years: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [y for y in years if y["from"] <= iso <= y["to"] and not y["closed"]]

        found = covering(self._fresh("years", self._years, lambda ys: bool(covering(ys))))
        if not found:
            raise Rejected(
                f"no open accounting year in e-conomic covers {iso}; create or reopen it there",
                "no_accounting_year",
                fields=[{"field": field, "message": "no open accounting year covers this date"}],
            )
        return str(found[0]["year"])

    def zone_for(self, customer: Customer) -> dict[str, Any]:
        home = self.tenant.country
        if customer.country == home or (
            customer.country in EU and home in EU and customer.is_private_person
        ):
            kind = "domestic"
        elif customer.country in EU and home in EU:
            kind = "eu"
        else:
            kind = "abroad"
        name, number = ZONES[kind]
        zones: list[dict[str, Any]] = self.cache.get("vatzones", self._vat_zones)
        chosen = [z for z in zones if z["name"].lower() == name] or [
            z for z in zones if z["number"] == number
        ]
        if not chosen:
            raise Rejected(f"e-conomic has no VAT zone '{name}' for customers", "no_vat_zone")
        return {"number": chosen[0]["number"], "kind": kind}

    def payment_terms_for(self, issued: dt.date, due: dt.date) -> dict[str, Any]:
        """The pinned terms, else net terms with exactly the job's days of credit, else
        terms of type dueDate (which take the job's due date as it is), else the closest."""
        pinned = self._pinned_row("payment_terms", "paymentterms", self._payment_terms)
        if pinned:
            return pinned
        terms: list[dict[str, Any]] = self.cache.get("paymentterms", self._payment_terms)
        days = (due - issued).days
        net = [t for t in terms if t["type"] == "net"]
        ranked = (
            [t for t in net if t["days"] == days]
            + [t for t in terms if t["type"] == "dueDate"]
            + sorted(net, key=lambda t: abs(t["days"] - days))
            + terms
        )
        if not ranked:
            raise Rejected("e-conomic has no payment terms; create one there", "no_payment_terms")
        return ranked[0]

    def customer_group_for(self, zone: dict[str, Any]) -> int:
        pinned = self._pinned_row("customer_group", "customergroups", self._customer_groups)
        if pinned:
            return int(pinned["number"])
        groups: list[dict[str, Any]] = self.cache.get("customergroups", self._customer_groups)
        foreign = [g for g in groups if any(w in g["name"].lower() for w in FOREIGN_WORDS)]
        domestic = [g for g in groups if g not in foreign]
        ranked = (foreign + domestic) if zone["kind"] != "domestic" else (domestic + foreign)
        if not ranked:
            raise Rejected(
                "e-conomic has no customer groups; create one or map customer_group",
                "no_customer_group",
            )
        return int(ranked[0]["number"])

    def layout_for(self, customer: dict[str, Any]) -> int:
        pinned = self._pinned_row("layout", "layouts", self._layouts)
        if pinned:
            return int(pinned["number"])
        layouts: list[dict[str, Any]] = self.cache.get("layouts", self._layouts)
        if any(x["number"] == customer.get("layout") for x in layouts):
            return int(customer["layout"])
        if not layouts:
            raise Rejected("e-conomic has no layouts; create one there", "no_layout")
        return int(min(x["number"] for x in layouts))

    def _vat_of(self, catalogue: dict[str, Any], product: dict[str, Any], zone: int) -> Decimal:
        coding = catalogue["groups"].get(product["group"], {}).get(str(zone)) or {}
        rate = catalogue["rates"].get(str(coding.get("vat")), "0") if coding.get("vat") else "0"
        return Decimal(rate).normalize()

    def product_for(self, index: int, line: Line, zone: dict[str, Any], prefix: str) -> str:
        rate = line.vat_rate.normalize()
        key = rate_key("article", line.vat_rate)
        wanted = line.account
        if wanted is not None:
            if line.article_number:
                raise Rejected(
                    f"line {index} names both a product and an account; the product's group "
                    "decides the account",
                    "account_with_article",
                    fields=[
                        {
                            "field": f"{prefix}.lines.{index}.account",
                            "message": "leave account out when article_number is set",
                        }
                    ],
                )
            choice = f"product:{zone['number']}:{rate:f}:account:{wanted}"
            return str(
                self.cache.get(choice, lambda: self._search(rate, zone, (index, wanted, prefix)))
            )
        pinned = line.article_number or self._pinned(key)
        if not pinned:
            narrowed = [self._pinned(k) for k in (rate_key("vat", rate), rate_key("account", rate))]
            choice = f"product:{zone['number']}:{rate:f}:{narrowed}:{self._pinned('product')}"
            return str(self.cache.get(choice, lambda: self._search(rate, zone)))
        number = str(pinned)
        field = (
            f"{prefix}.lines.{index}.article_number" if line.article_number else f"mapping.{key}"
        )
        catalogue = self._fresh(
            "catalogue",
            self._catalogue,
            lambda c: any(p["number"] == number for p in c["products"]),
        )
        product = next((p for p in catalogue["products"] if p["number"] == number), None)
        if product is None and not line.article_number:
            raise self._mapping_invalid(key, number, "product")
        if product is None or product["barred"]:
            state = "does not exist" if product is None else "is barred"
            raise Rejected(
                f"product {number} {state} in e-conomic",
                "unknown_product",
                fields=[{"field": field, "message": f"product {number} {state}"}],
            )
        actual = self._vat_of(catalogue, product, zone["number"])
        if actual != rate:
            raise Rejected(
                f"line {index}: product {number} gives {actual:f}% VAT to {zone['kind']} customers "
                f"in e-conomic, but the line says {rate:f}%",
                "vat_mismatch",
                fields=[
                    {
                        "field": f"{prefix}.lines.{index}.vat_rate",
                        "message": f"{actual:f}% in e-conomic",
                    }
                ],
            )
        return number

    def _search(
        self, rate: Decimal, zone: dict[str, Any], line_account: tuple[int, int, str] | None = None
    ) -> str:
        """A product giving `rate` in the zone (the default product first, then the lowest
        number); `vat.<rate>` / `account.<rate>` in the mapping narrow the VAT code / account.
        `line_account` (index, account, prefix): a line's own sales account, which the
        product's group must book on in this zone (instead of `account.<rate>`)."""
        catalogue: dict[str, Any] = self.cache.get("catalogue", self._catalogue)
        vat_code = self._pinned(rate_key("vat", rate))
        account = self._pinned(rate_key("account", rate))
        if line_account is not None:
            account = line_account[1]
        zone_key = str(zone["number"])

        def fits(product: dict[str, Any]) -> bool:
            coding = catalogue["groups"].get(product["group"], {}).get(zone_key) or {}
            return (
                not product["barred"]
                and self._vat_of(catalogue, product, zone["number"]) == rate
                and (vat_code is None or str(coding.get("vat")) == str(vat_code))
                and (account is None or str(coding.get("account")) == str(account))
            )

        default = str(self._pinned("product") or "")
        candidates: list[str] = sorted(
            (str(p["number"]) for p in catalogue["products"] if fits(p)),
            key=lambda n: (n != default, _natural(n)),
        )
        if not candidates and line_account is not None:
            index, wanted, prefix = line_account
            raise Rejected(
                f"line {index}: no e-conomic product gives {rate:f}% VAT to {zone['kind']} "
                f"customers and books on account {wanted}",
                "no_product_for_account",
                fields=[
                    {
                        "field": f"{prefix}.lines.{index}.account",
                        "message": f"no product whose group books {rate:f}% VAT sales to "
                        f"{zone['kind']} customers on {wanted}; set one up in e-conomic "
                        "or leave account out",
                    }
                ],
            )
        if not candidates:
            raise Rejected(
                f"no e-conomic product gives {rate:f}% VAT to {zone['kind']} customers; map one "
                f"with `ledgerpush tenants map {self.tenant.id} article.{rate:f}=<product number>`",
                "no_product_for_vat_rate",
                fields=[
                    {
                        "field": f"mapping.article.{rate:f}",
                        "message": f"no product with {rate:f}% VAT",
                    }
                ],
            )
        return candidates[0]

    # -- customers ------------------------------------------------------------------------

    def customer_for(
        self, customer: Customer, currency: str, prefix: str, zone: Row, terms: Row
    ) -> dict[str, Any]:
        """Found or created once per tenant (created with this zone and these terms)."""
        found: dict[str, Any] = self.cache.get(
            f"customer:{customer.external_id}",
            lambda: self._upsert_customer(customer, currency, prefix, zone, terms),
            exclusive=True,
        )
        return found

    def _get_customer(self, number: int) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.http.get_json(f"/customers/{number}")
            return found
        except ReferenceStale:  # 404: no such customer
            return None

    def _upsert_customer(
        self, customer: Customer, currency: str, prefix: str, zone: Row, terms: Row
    ) -> dict[str, Any]:
        number = customer_number(customer.external_id)
        found = self._get_customer(number)
        created = False
        if found is None:
            try:
                found = self.http.request(
                    "POST",
                    "/customers",
                    json=self._customer_body(number, customer, currency, zone, terms),
                ).json()
                created = True
            except Rejected as exc:
                if ALREADY_EXISTS not in (exc.original or ""):
                    exc.fields = translate(exc.fields, CUSTOMER_FIELDS, prefix)
                    raise
                found = self._get_customer(number)  # another worker created it just now
            if found is None:
                raise ReferenceStale(f"customer {number} vanished while being created")
        self._check_identity(found, customer, number, prefix)
        return {
            "number": number,
            "layout": (found.get("layout") or {}).get("layoutNumber"),
            "created": created,
        }

    def _customer_body(
        self, number: int, customer: Customer, currency: str, zone: Row, terms: Row
    ) -> dict[str, Any]:
        address = customer.address
        body = {
            "customerNumber": number,
            "name": customer.name,
            "currency": currency,
            "customerGroup": {"customerGroupNumber": self.customer_group_for(zone)},
            "paymentTerms": {"paymentTermsNumber": terms["number"]},
            "vatZone": {"vatZoneNumber": zone["number"]},
            "address": "\n".join(x for x in (address.line1, address.line2) if x),
            "zip": address.postal_code,
            "city": address.city,
            "country": customer.country,
            "email": customer.email,
            "corporateIdentificationNumber": customer.org_number,
            # customers.md: vatNumber exists only on Swedish (and UK/DE/PL/FI) agreements.
            "vatNumber": customer.vat_number if self.tenant.country == "SE" else None,
        }
        result: dict[str, Any] = _compact(body)
        return result

    def _check_identity(
        self, found: dict[str, Any], customer: Customer, number: int, prefix: str
    ) -> None:
        theirs = found.get("corporateIdentificationNumber")
        if customer.org_number and theirs and str(theirs) != customer.org_number:
            raise Rejected(
                f"e-conomic customer {number} ({found.get('name')}, org number {theirs}) is not "
                f"customer {customer.external_id} (org number {customer.org_number}); their "
                "numbers collide: give this customer a numeric external id",
                "customer_number_taken",
                fields=[
                    {
                        "field": f"{prefix}.customer.external_id",
                        "message": f"number {number} is taken",
                    }
                ],
            )

    # -- payments -------------------------------------------------------------------------

    def journal_for(self) -> dict[str, Any]:
        pinned = self._pinned_row("journal", "journals", self._journals)
        if pinned:
            return pinned
        journals: list[dict[str, Any]] = self.cache.get("journals", self._journals)
        usable = [j for j in journals if j["restricted"] in (None, "customerPayment")]
        daybooks = [j for j in usable if any(w in j["name"].lower() for w in DAYBOOK_WORDS)]
        if not usable:
            raise Rejected(
                "no e-conomic journal takes customer payments; map one with "
                f"`ledgerpush tenants map {self.tenant.id} journal=<journal number>`",
                "no_journal",
            )
        return (daybooks or usable)[0]

    def contra_account_for(self, journal: dict[str, Any]) -> int:
        pinned = self._pinned("contra_account")
        if pinned:
            accounts = self._fresh("accounts", self._accounts, lambda a: int(pinned) in a)
            if int(pinned) not in accounts:
                raise self._mapping_invalid("contra_account", pinned, "account")
            return int(pinned)
        if journal["contra"] is None:
            raise Rejected(
                f"journal {journal['number']} has no default account for customer payments; map "
                f"one with `ledgerpush tenants map {self.tenant.id} contra_account=<account>`",
                "no_contra_account",
            )
        return int(journal["contra"])

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
        result: dict[str, Any] = _compact(body)
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
