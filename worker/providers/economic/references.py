"""Reference resolution for e-conomic: the agreement, its currencies, accounting years,
VAT zones (from the customer's country against the agreement's: domestic; EU, both in the
EU and a business; abroad otherwise), payment terms, customer groups, layouts, journals
and accounts; customers upserted by the job's external id (see `customer_number`)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

from worker.countries import EU_COUNTRIES
from worker.jobs import Customer
from worker.providers.base import ReferenceStale, Rejected, Unsupported
from worker.providers.economic.company import company_of
from worker.providers.economic.errors import ALREADY_EXISTS, CUSTOMER_FIELDS, translate
from worker.providers.paging import PagedReferences
from worker.tenancy import binding, tenants

T = TypeVar("T")
PAGE_SIZE = 1000  # the most e-conomic allows per page
MAX_CUSTOMER_NUMBER = 999_999_999
DERIVED_NUMBERS = (100_000_000, 900_000_000)  # first number, how many
ZONES = {"domestic": ("domestic", 1), "eu": ("eu", 2), "abroad": ("abroad", 3)}
DAYBOOK_WORDS = ("kassekladde", "dagbog", "dagbok", "daglig", "daybook")
FOREIGN_WORDS = ("udenland", "udland", "utenland", "utland", "foreign", "abroad")


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


def compact(value: Any) -> Any:
    """e-conomic refuses null ("omit the property to null it"): drop Nones and empty objects."""
    if isinstance(value, dict):
        kept = {k: compact(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


Row = dict[str, Any]


class Pages:
    """e-conomic's paging: `skippages` (from 0) and `pagesize`; `pagination.nextPage`."""

    def __init__(self, size: int) -> None:
        self.size = size

    def query(self, page: int) -> dict[str, Any]:
        return {"skippages": page, "pagesize": self.size}

    def rows(self, body: Any) -> list[Row]:
        rows: list[Row] = body.get("collection") or []
        return rows

    def more_after(self, page: int, body: Any) -> bool:
        return bool(self.rows(body)) and bool((body.get("pagination") or {}).get("nextPage"))


class References(PagedReferences):
    """What a job refers to in e-conomic, resolved and cached per tenant: the agreement
    (`/self`), currencies, accounting years, VAT zones, payment terms, customer groups,
    layouts, customers, journals and accounts. Mixed into the provider, which holds the
    tenant, the cache and the HTTP client."""

    def pager(self) -> Pages:
        return Pages(self.page_size)

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
            customer.country in EU_COUNTRIES and home in EU_COUNTRIES and customer.is_private_person
        ):
            kind = "domestic"
        elif customer.country in EU_COUNTRIES and home in EU_COUNTRIES:
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
        result: dict[str, Any] = compact(body)
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
