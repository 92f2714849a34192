"""Reference data for simulated e-conomic agreements in Denmark, Norway and Sweden.

Deterministic: the same country and agreement number always give the same data. Documents
are stored the way the API shows them, minus `self` links (added when rendering). Money is
Decimal. Numbers are deliberately not all 1-based (layouts 19/21, accounts from the
national charts) so a client that hard-codes ids fails here as it would in production.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Doc = dict[str, Any]

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

DK = Country(
    code="DK",
    agreement_type=(1, "denmark"),
    currency="DKK",
    language=(1, "Danish", "da-DK"),
    company={
        "name": "Nordlys Handel ApS",
        "addressLine1": "Vesterbrogade 12",
        "zip": "1620",
        "city": "København V",
        "country": "Danmark",
        "companyIdentificationNumber": "31415926",
        "phoneNumber": "+45 33 12 34 56",
        "email": "bogholderi@nordlys-handel.dk",
        "website": "https://nordlys-handel.dk",
        "attention": "Mette Holm",
    },
    accounts=(
        (1000, "RESULTATOPGØRELSE", _HEADINGS, None),
        (1010, "Salg af varer/ydelser m/moms", _PL, "U25"),
        (1020, "Salg af varer/ydelser u/moms", _PL, None),
        (1030, "Salg af varer udland, EU", _PL, None),
        (1040, "Salg af varer udland, ikke-EU", _PL, None),
        (1310, "Varekøb m/moms", _PL, "I25"),
        (1320, "Varekøb udland, EU", _PL, "EUV"),
        (2210, "Husleje", _PL, None),
        (2220, "El, vand og varme", _PL, "I25"),
        (2750, "Telefon og internet", _PL, "I25"),
        (2800, "Kontorartikler", _PL, "I25"),
        (3600, "Revisor", _PL, "I25"),
        (4000, "Renteudgifter", _PL, None),
        (5000, "BALANCE", _HEADINGS, None),
        (5200, "Inventar", _STATUS, None),
        (5600, "Debitorer", _STATUS, None),
        (5810, "Kasse", _STATUS, None),
        (5820, "Bank", _STATUS, None),
        (5830, "Mobilepay", _STATUS, None),
        (6100, "Egenkapital", _STATUS, None),
        (6800, "Kreditorer", _STATUS, None),
        (6901, "Salgsmoms", _STATUS, None),
        (6902, "Købsmoms", _STATUS, None),
        (6903, "Moms af varekøb i EU", _STATUS, None),
        (6910, "Momsafregning", _STATUS, None),
        (6990, "Skyldig A-skat", _STATUS, None),
    ),
    vat_accounts=(
        ("U25", "Salgsmoms 25%", "25", 6901, 1),
        ("I25", "Købsmoms 25%", "25", 6902, 2),
        ("EUV", "Moms af varekøb i EU 25%", "25", 6903, 3),
    ),
    product_groups={
        1: ("Varer", {1: 1010, 2: 1030, 3: 1040, 4: 1020}),
        2: ("Ydelser", {1: 1010, 2: 1030, 3: 1040, 4: 1020}),
    },
    debtors=5600,
    bank=5820,
    customer_groups=("Indenlandske kunder", "Udenlandske kunder"),
    payment_terms=("Netto 8 dage", "Netto 14 dage", "Løbende måned + 30", "Kontant", "Forfald"),
    units=("stk.", "timer", "kg", "m", "l"),
    journals=("Daglig kassekladde", "Indbetalinger"),
    rates={"EUR": "746.05", "USD": "690.00", "SEK": "65.00", "NOK": "63.50", "GBP": "870.00"},
    names=("Havbryggen", "Skovly", "Bølgen", "Kattegat", "Lindely", "Rødkilde", "Solbakken"),
    suffixes=("ApS", "A/S", "I/S"),
    cities=(("8000", "Aarhus C"), ("5000", "Odense C"), ("9000", "Aalborg"), ("7100", "Vejle")),
    domain="dk",
)

NO = Country(
    code="NO",
    agreement_type=(3, "norway"),
    currency="NOK",
    language=(3, "Norwegian", "nb-NO"),
    company={
        "name": "Fjordlys Handel AS",
        "addressLine1": "Karl Johans gate 7",
        "zip": "0154",
        "city": "Oslo",
        "country": "Norge",
        "companyIdentificationNumber": "923456781",
        "phoneNumber": "+47 22 33 44 55",
        "email": "regnskap@fjordlys.no",
        "website": "https://fjordlys.no",
        "attention": "Ingrid Berg",
    },
    accounts=(
        (1000, "BALANSE", _HEADINGS, None),
        (1200, "Maskiner og anlegg", _STATUS, None),
        (1500, "Kundefordringer", _STATUS, None),
        (1900, "Kontanter", _STATUS, None),
        (1920, "Bankinnskudd", _STATUS, None),
        (2000, "Aksjekapital", _STATUS, None),
        (2400, "Leverandørgjeld", _STATUS, None),
        (2700, "Utgående merverdiavgift, høy sats", _STATUS, None),
        (2701, "Utgående merverdiavgift, middels sats", _STATUS, None),
        (2702, "Utgående merverdiavgift, lav sats", _STATUS, None),
        (2710, "Inngående merverdiavgift, høy sats", _STATUS, None),
        (2740, "Oppgjørskonto merverdiavgift", _STATUS, None),
        (3000, "RESULTAT", _HEADINGS, None),
        (3001, "Salgsinntekt, avgiftspliktig høy sats", _PL, "U25"),
        (3010, "Salgsinntekt, næringsmidler", _PL, "U15"),
        (3020, "Salgsinntekt, persontransport", _PL, "U12"),
        (3100, "Salgsinntekt, avgiftsfri", _PL, None),
        (3200, "Salgsinntekt, utenfor avgiftsområdet", _PL, None),
        (4000, "Innkjøp av råvarer og halvfabrikata", _PL, "I25"),
        (6300, "Leie lokale", _PL, None),
        (6800, "Kontorrekvisita", _PL, "I25"),
        (6900, "Telefon", _PL, "I25"),
        (7700, "Revisjonshonorar", _PL, "I25"),
        (8150, "Annen rentekostnad", _PL, None),
    ),
    vat_accounts=(
        ("U25", "Utgående mva høy sats 25%", "25", 2700, 1),
        ("U15", "Utgående mva middels sats 15%", "15", 2701, 1),
        ("U12", "Utgående mva lav sats 12%", "12", 2702, 1),
        ("I25", "Inngående mva høy sats 25%", "25", 2710, 2),
    ),
    product_groups={
        1: ("Varer og tjenester 25%", {1: 3001, 2: 3200, 3: 3200, 4: 3100}),
        2: ("Næringsmidler 15%", {1: 3010, 2: 3200, 3: 3200, 4: 3100}),
        3: ("Persontransport 12%", {1: 3020, 2: 3200, 3: 3200, 4: 3100}),
    },
    debtors=1500,
    bank=1920,
    customer_groups=("Innenlandske kunder", "Utenlandske kunder"),
    payment_terms=("Netto 8 dager", "Netto 14 dager", "Løpende måned + 30", "Kontant", "Forfall"),
    units=("stk", "timer", "kg", "m", "l"),
    journals=("Dagbok", "Innbetalinger"),
    rates={"EUR": "1170.00", "USD": "1080.00", "DKK": "156.80", "SEK": "101.50", "GBP": "1370.00"},
    names=("Nordkapp", "Lofoten", "Granli", "Vestfjord", "Solberg", "Bjørkely", "Havgløtt"),
    suffixes=("AS", "ASA", "DA"),
    cities=(("5003", "Bergen"), ("7011", "Trondheim"), ("4006", "Stavanger"), ("9008", "Tromsø")),
    domain="no",
)

SE = Country(
    code="SE",
    agreement_type=(2, "sweden"),
    currency="SEK",
    language=(2, "Swedish", "sv-SE"),
    company={
        "name": "Skärgårdens Handel AB",
        "addressLine1": "Drottninggatan 21",
        "zip": "111 51",
        "city": "Stockholm",
        "country": "Sverige",
        "companyIdentificationNumber": "556677-8899",
        "vatNumber": "SE556677889901",
        "phoneNumber": "+46 8 123 456 78",
        "email": "ekonomi@skargardens.se",
        "website": "https://skargardens.se",
        "attention": "Karin Lind",
    },
    accounts=(
        (1000, "TILLGÅNGAR", _HEADINGS, None),
        (1220, "Inventarier och verktyg", _STATUS, None),
        (1510, "Kundfordringar", _STATUS, None),
        (1910, "Kassa", _STATUS, None),
        (1930, "Företagskonto", _STATUS, None),
        (2000, "EGET KAPITAL OCH SKULDER", _HEADINGS, None),
        (2081, "Aktiekapital", _STATUS, None),
        (2440, "Leverantörsskulder", _STATUS, None),
        (2611, "Utgående moms på försäljning inom Sverige, 25 %", _STATUS, None),
        (2621, "Utgående moms på försäljning inom Sverige, 12 %", _STATUS, None),
        (2631, "Utgående moms på försäljning inom Sverige, 6 %", _STATUS, None),
        (2641, "Debiterad ingående moms", _STATUS, None),
        (2650, "Redovisningskonto för moms", _STATUS, None),
        (3000, "INTÄKTER", _HEADINGS, None),
        (3001, "Försäljning inom Sverige, 25 % moms", _PL, "U25"),
        (3002, "Försäljning inom Sverige, 12 % moms", _PL, "U12"),
        (3003, "Försäljning inom Sverige, 6 % moms", _PL, "U06"),
        (3004, "Försäljning inom Sverige, momsfri", _PL, None),
        (3105, "Försäljning varor till land utanför EU", _PL, None),
        (3108, "Försäljning varor till annat EU-land, momsfri", _PL, None),
        (4010, "Inköp material och varor", _PL, "I25"),
        (5010, "Lokalhyra", _PL, None),
        (6110, "Kontorsmateriel", _PL, "I25"),
        (6212, "Mobiltelefon", _PL, "I25"),
        (8410, "Räntekostnader för långfristiga skulder", _PL, None),
    ),
    vat_accounts=(
        ("U25", "Utgående moms 25%", "25", 2611, 1),
        ("U12", "Utgående moms 12%", "12", 2621, 1),
        ("U06", "Utgående moms 6%", "6", 2631, 1),
        ("I25", "Ingående moms 25%", "25", 2641, 2),
    ),
    product_groups={
        1: ("Varor och tjänster 25%", {1: 3001, 2: 3108, 3: 3105, 4: 3004}),
        2: ("Livsmedel 12%", {1: 3002, 2: 3108, 3: 3105, 4: 3004}),
        3: ("Böcker och tidningar 6%", {1: 3003, 2: 3108, 3: 3105, 4: 3004}),
    },
    debtors=1510,
    bank=1930,
    customer_groups=("Kunder Sverige", "Kunder utland"),
    payment_terms=(
        "Netto 8 dagar",
        "Netto 14 dagar",
        "Löpande månad + 30",
        "Kontant",
        "Förfallodag",
    ),
    units=("st", "tim", "kg", "m", "l"),
    journals=("Dagbok", "Inbetalningar"),
    rates={"EUR": "1150.00", "USD": "1060.00", "DKK": "154.20", "NOK": "98.50", "GBP": "1340.00"},
    names=("Skärgård", "Fjällbacka", "Björkdal", "Ekudden", "Sjöbo", "Granhult", "Vinga"),
    suffixes=("AB", "HB", "KB"),
    cities=(
        ("411 19", "Göteborg"),
        ("211 20", "Malmö"),
        ("753 20", "Uppsala"),
        ("581 83", "Linköping"),
    ),
    domain="se",
)

COUNTRIES: dict[str, Country] = {"DK": DK, "NO": NO, "SE": SE}

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
