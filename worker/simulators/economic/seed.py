"""Reference data for simulated e-conomic agreements in Denmark, Norway and Sweden.

Per country in data/economic_countries.json (the fields of `Country`). Deterministic: the
same country and agreement number always give the same data. Documents are stored the way
the API shows them, minus `self` links (added when rendering). Money is Decimal. Numbers are deliberately not all 1-based (layouts 19/21, accounts from the
national charts) so a client that hard-codes ids fails here as it would in production.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

Doc = dict[str, Any]
#: Each country's reference data (the fields of `Country`), loaded into `COUNTRIES`.
COUNTRIES_FILE = Path(__file__).parents[1] / "data" / "economic_countries.json"

MODULES: dict[str, int] = {
    "Departments": 1,
    "Inventory": 2,
    "Projects": 3,
    "Subscriptions": 4,
    "Scanning": 5,
}

VAT_ZONES = {1: "Domestic", 2: "EU", 3: "Abroad", 4: "Domestic exempt"}
YEARS = ("2025", "2026", "2027")
VAT_TYPES = {1: "Sales VAT", 2: "Purchase VAT", 3: "VAT on purchases abroad"}
CUSTOMER_COUNT = 25


@dataclass(frozen=True)
class Country:
    code: str
    agreement_type: tuple[int, str]
    currency: str
    language: tuple[int, str, str]
    company: Doc
    accounts: tuple[tuple[int, str, str, str | None], ...]  # number, name, type, vat code
    vat_accounts: tuple[tuple[str, str, str, int, int], ...]  # code, name, rate, account, type
    # product group number -> (name, {vat zone -> sales account})
    product_groups: dict[int, tuple[str, dict[int, int]]]
    debtors: int
    bank: int
    customer_groups: tuple[str, str]
    payment_terms: tuple[str, str, str, str, str]
    units: tuple[str, ...]
    journals: tuple[str, str]
    rates: dict[str, str]  # price in base currency of 100 units
    names: tuple[str, ...]
    suffixes: tuple[str, ...]
    cities: tuple[tuple[str, str], ...]
    domain: str


_HEADINGS = "heading"
_PL = "profitAndLoss"
_STATUS = "status"


def _tuples(value: Any) -> Any:
    """JSON arrays back into the tuples a country is made of."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _country(code: str, fields: dict[str, Any]) -> Country:
    groups = {
        int(number): (name, {int(zone): account for zone, account in zones.items()})
        for number, (name, zones) in fields.pop("product_groups").items()
    }
    plain: dict[str, Any] = {k: v if isinstance(v, dict) else _tuples(v) for k, v in fields.items()}
    return Country(code=code, product_groups=groups, **plain)


def _load_countries() -> dict[str, Country]:
    raw = json.loads(COUNTRIES_FILE.read_text(encoding="utf-8"))
    return {code: _country(code, fields) for code, fields in raw.items()}


COUNTRIES = _load_countries()

CURRENCY_INFO: dict[str, tuple[str, str]] = {
    "DKK": ("208", "Danish krone"),
    "NOK": ("578", "Norwegian krone"),
    "SEK": ("752", "Swedish krona"),
    "EUR": ("978", "Euro"),
    "USD": ("840", "US dollar"),
    "GBP": ("826", "Pound sterling"),
}

_FOREIGN = (
    ("Germany", "DE", 2, "EUR", ("10115", "Berlin")),
    ("Netherlands", "NL", 2, "EUR", ("1011", "Amsterdam")),
    ("United States", "US", 3, "USD", ("10001", "New York")),
    ("United Kingdom", "GB", 3, "GBP", ("EC1A 1BB", "London")),
)

_PRODUCTS = (
    ("1001", "Kaffebønner, 1 kg", 1, 1, "189.00", "95.00"),
    ("1002", "Te, økologisk, 500 g", 1, 1, "79.50", "38.00"),
    ("1003", "Kaffemaskine, kommerciel", 1, 1, "12995.00", "8100.00"),
    ("1004", "Filterpapir, 1000 stk.", 1, 1, "149.00", "61.25"),
    ("1005", "Kopper, 12 stk.", 1, 1, "299.00", "140.00"),
    ("2001", "Konsulenttime", 2, 2, "950.00", "0.00"),
    ("2002", "Installation", 2, 2, "1450.00", "0.00"),
    ("2003", "Servicebesøg", 2, 2, "795.00", "0.00"),
    ("2004", "Support, måned", 2, 1, "499.00", "0.00"),
    ("3001", "Frakt", 2, 1, "125.00", "89.00"),
    ("3002", "Emballage", 1, 1, "35.00", "12.50"),
    ("3003", "Gavekort", 1, 1, "500.00", "500.00"),
)


def build_reference(country_code: str, agreement_number: int) -> dict[str, Any]:
    """All collections of a new agreement, keyed by their identifiers."""
    country = COUNTRIES[country_code]
    rng = random.Random(f"economic:{country_code}:{agreement_number}")
    groups = _product_groups(country)
    return {
        "company": dict(country.company),
        "currencies": _currencies(country),
        "exchangeRates": _exchange_rates(country),
        "vatZones": _vat_zones(),
        "vatTypes": {n: {"vatTypeNumber": n, "name": name} for n, name in VAT_TYPES.items()},
        "vatAccounts": _vat_accounts(country),
        "accounts": _accounts(country),
        "accountingYears": _accounting_years(),
        "layouts": {
            19: {"layoutNumber": 19, "name": "Standard"},
            21: {"layoutNumber": 21, "name": "Standard (English)"},
        },
        "paymentTerms": _payment_terms(country),
        "customerGroups": _customer_groups(country),
        "units": {i + 1: {"unitNumber": i + 1, "name": n} for i, n in enumerate(country.units)},
        "productGroups": groups,
        "products": _products(country, groups),
        "customers": _customers(country, rng),
        "journals": _journals(country),
        "departmentalDistributions": _distributions(),
        "projects": _projects(),
    }


def _currencies(country: Country) -> dict[str, Doc]:
    codes = [country.currency, *country.rates]
    return {
        c: {"code": c, "isoNumber": CURRENCY_INFO[c][0], "name": CURRENCY_INFO[c][1]} for c in codes
    }


def _exchange_rates(country: Country) -> dict[str, Decimal]:
    rates = {code: Decimal(rate) for code, rate in country.rates.items()}
    rates[country.currency] = Decimal(100)
    return rates


def _vat_zones() -> dict[int, Doc]:
    return {
        n: {
            "vatZoneNumber": n,
            "name": name,
            "enabledForCustomer": True,
            "enabledForSupplier": True,
        }
        for n, name in VAT_ZONES.items()
    }


def _vat_accounts(country: Country) -> dict[str, Doc]:
    return {
        code: {
            "vatCode": code,
            "name": name,
            "ratePercentage": Decimal(rate),
            "account": {"accountNumber": account},
            "vatType": {"vatTypeNumber": vat_type, "name": VAT_TYPES[vat_type]},
        }
        for code, name, rate, account, vat_type in country.vat_accounts
    }


def _accounts(country: Country) -> dict[int, Doc]:
    accounts: dict[int, Doc] = {}
    for number, name, kind, vat_code in country.accounts:
        doc: Doc = {
            "accountNumber": number,
            "accountType": kind,
            "name": name,
            "balance": Decimal("0.00"),
            "draftBalance": Decimal("0.00"),
            "debitCredit": "credit" if kind == _PL and vat_code and vat_code[0] == "U" else "debit",
        }
        if kind == _HEADINGS:
            doc["blockDirectEntries"] = True
        if vat_code:
            doc["vatAccount"] = {"vatCode": vat_code}
        accounts[number] = doc
    return accounts


def _accounting_years() -> dict[str, Doc]:
    return {y: {"year": y, "fromDate": f"{y}-01-01", "toDate": f"{y}-12-31"} for y in YEARS}


def _payment_terms(country: Country) -> dict[int, Doc]:
    shapes = (("net", 8), ("net", 14), ("invoiceMonth", 30), ("paidInCash", 0), ("dueDate", 0))
    terms: dict[int, Doc] = {}
    for number, (name, (kind, days)) in enumerate(
        zip(country.payment_terms, shapes, strict=True), 1
    ):
        terms[number] = {
            "paymentTermsNumber": number,
            "name": name,
            "paymentTermsType": kind,
            "daysOfCredit": days,
            "description": f"{name} ({kind})",
        }
    return terms


def _customer_groups(country: Country) -> dict[int, Doc]:
    return {
        n: {
            "customerGroupNumber": n,
            "name": name,
            "account": {"accountNumber": country.debtors},
            "layout": {"layoutNumber": 19},
        }
        for n, name in enumerate(country.customer_groups, 1)
    }


def _product_groups(country: Country) -> dict[int, Doc]:
    return {
        n: {"productGroupNumber": n, "name": name, "salesAccounts": dict(accounts)}
        for n, (name, accounts) in country.product_groups.items()
    }


def _products(country: Country, groups: dict[int, Doc]) -> dict[str, Doc]:
    products: dict[str, Doc] = {}
    for number, name, group, unit, price, cost in _PRODUCTS:
        group = group if group in groups else 1
        products[number] = {
            "productNumber": number,
            "name": name,
            "salesPrice": Decimal(price),
            "costPrice": Decimal(cost),
            "recommendedPrice": Decimal(price),
            "productGroup": {"productGroupNumber": group},
            "unit": {"unitNumber": unit, "name": country.units[unit - 1]},
            "lastUpdated": "2025-01-02T08:00:00Z",
        }
    if 3 in groups:  # NO/SE: products at the reduced rates too
        products["4001"] = _reduced_product(country, "4001", "Matkasse", 2, "249.00")
        products["4002"] = _reduced_product(country, "4002", "Bok: Regnskap", 3, "399.00")
    return products


def _reduced_product(country: Country, number: str, name: str, group: int, price: str) -> Doc:
    return {
        "productNumber": number,
        "name": name,
        "salesPrice": Decimal(price),
        "costPrice": Decimal("0.00"),
        "productGroup": {"productGroupNumber": group},
        "unit": {"unitNumber": 1, "name": country.units[0]},
        "lastUpdated": "2025-01-02T08:00:00Z",
    }


def _customers(country: Country, rng: random.Random) -> dict[int, Doc]:
    customers: dict[int, Doc] = {}
    for number in range(1, CUSTOMER_COUNT + 1):
        foreign = _FOREIGN[number % len(_FOREIGN)] if number % 6 == 0 else None
        customers[number] = _customer(country, rng, number, foreign)
    return customers


def _customer(
    country: Country,
    rng: random.Random,
    number: int,
    foreign: tuple[str, str, int, str, tuple[str, str]] | None,
) -> Doc:
    base = country.names[number % len(country.names)]
    name = f"{base} {rng.choice(['Kaffe', 'Design', 'Byg', 'Data', 'Mad'])} {rng.choice(country.suffixes)}"
    slug = "".join(ch for ch in base.lower() if ch.isalnum() and ch.isascii()) or "kunde"
    zip_code, city = rng.choice(country.cities)
    doc: Doc = {
        "customerNumber": number,
        "name": name,
        "address": f"{rng.choice(['Storgata', 'Hovedgaden', 'Kungsgatan'])} {rng.randint(1, 99)}",
        "zip": zip_code,
        "city": city,
        "country": country.company["country"],
        "currency": country.currency,
        "email": f"faktura{number}@{slug}.{country.domain}",
        "corporateIdentificationNumber": str(rng.randint(10_000_000, 99_999_999)),
        "customerGroup": {"customerGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": rng.choice([1, 2, 3])},
        "vatZone": {"vatZoneNumber": 1},
        "layout": {"layoutNumber": 19},
        "balance": Decimal("0.00"),
        "lastUpdated": "2025-01-02T08:00:00Z",
    }
    if foreign:
        country_name, prefix, zone, currency, (fzip, fcity) = foreign
        doc.update(country=country_name, currency=currency, zip=fzip, city=fcity)
        doc.update(vatZone={"vatZoneNumber": zone}, customerGroup={"customerGroupNumber": 2})
        doc["layout"] = {"layoutNumber": 21}
        doc["vatNumber"] = f"{prefix}{rng.randint(100_000_000, 999_999_999)}"
    return doc


def _journals(country: Country) -> dict[int, Doc]:
    contra = {"accountNumber": country.bank}
    settings: Doc = {
        "contraAccounts": {
            "customerPayments": dict(contra),
            "financeVouchers": dict(contra),
            "supplierPayments": dict(contra),
        },
        "voucherNumbers": {"minimumVoucherNumber": 1, "maximumVoucherNumber": 999999999},
    }
    daybook: Doc = {"journalNumber": 1, "name": country.journals[0], "settings": settings}
    payments_settings = {**settings, "entryTypeRestrictedTo": "customerPayment"}
    payments: Doc = {"journalNumber": 2, "name": country.journals[1], "settings": payments_settings}
    return {1: daybook, 2: payments}


def _distributions() -> dict[int, Doc]:
    def single(number: int, name: str) -> Doc:
        return {
            "departmentalDistributionNumber": number,
            "name": name,
            "distributionType": "department",
            "distributions": [{"department": {"departmentNumber": number}, "percentage": 100}],
        }

    split: Doc = {
        "departmentalDistributionNumber": 3,
        "name": "Salg/Administration 50/50",
        "distributionType": "distribution",
        "distributions": [
            {"department": {"departmentNumber": 1}, "percentage": 50},
            {"department": {"departmentNumber": 2}, "percentage": 50},
        ],
    }
    return {1: single(1, "Salg"), 2: single(2, "Administration"), 3: split}


def _projects() -> dict[int, Doc]:
    return {
        1: {"projectNumber": 1, "name": "Website", "customer": {"customerNumber": 1}},
        2: {"projectNumber": 2, "name": "Support 2025", "customer": {"customerNumber": 2}},
    }


def modules_doc(names: list[str]) -> list[Doc]:
    return [{"moduleNumber": MODULES[n], "name": n} for n in names]


def normalise_modules(names: list[str] | None) -> list[str]:
    """Canonical module names; raises ValueError on an unknown one."""
    known = {n.lower(): n for n in MODULES}
    result: list[str] = []
    for name in names or []:
        canonical = known.get(name.strip().lower())
        if canonical is None:
            raise ValueError(f"unknown module {name!r}; known: {sorted(MODULES)}")
        if canonical not in result:
            result.append(canonical)
    return result
