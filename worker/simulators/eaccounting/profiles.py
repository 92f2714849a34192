"""Country profiles of simulated eAccounting companies and the fixed exchange rates.

One profile per country (NO, SE, FI, NL) in data/eaccounting_countries.json: the company,
its chart of accounts, VAT codes, article account codings, units, terms, bank accounts,
cities and articles. Which sales account a coding gives each situation of a sale, and the
Dutch account types, are fixed here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.simulators.eaccounting.state import DATA_DIR

COUNTRIES = ("NO", "SE", "FI", "NL")
#: Each country's profile (the fields of `Profile`), loaded into `PROFILES`.
PROFILES_FILE = DATA_DIR / "eaccounting_countries.json"
#: Units of each currency per euro; the simulator's fixed exchange rates.
PER_EUR = {
    "EUR": Decimal("1"),
    "NOK": Decimal("11.70"),
    "SEK": Decimal("11.20"),
    "DKK": Decimal("7.46"),
    "USD": Decimal("1.08"),
    "GBP": Decimal("0.85"),
    "CHF": Decimal("0.94"),
    "PLN": Decimal("4.30"),
}
#: Which account of a coding a sale uses, by situation.
SITUATION_ACCOUNT = {
    "domestic": "DomesticSalesSubjectToVatAccountNumber",
    "domestic_exempt": "DomesticSalesVatExemptAccountNumber",
    "domestic_reverse": "DomesticSalesSubjectToReversedConstructionVatAccountNumber",
    "eu_vat": "ForeignSalesSubjectToVatWithinEuAccountNumber",
    "eu_exempt": "ForeignSalesVatExemptWithinEuAccountNumber",
    "outside_eu": "ForeignSalesVatExemptOutsideEuAccountNumber",
    "third_party": "ForeignSalesSubjectToThirdPartySalesAccountNumber",
}


def currency_rate(currency: str, base: str) -> Decimal:
    """Units of `base` per unit of `currency`."""
    return (PER_EUR[base] / PER_EUR[currency]).quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class Profile:
    country: str
    currency: str
    company: tuple[
        str, str, str, str, str, str, str
    ]  # name, address, postal, city, phone, org, vat
    accounts: tuple[str, ...]  # "number name", Dutch ones ";reference code;type" after
    vat_codes: tuple[tuple[str, str, str, int | None], ...]  # code, description, rate, account
    codings: tuple[tuple[str, str, str, str, str], ...]  # name, english, type, rate, accounts
    units: tuple[tuple[str, str, str, str], ...]  # code, name, abbreviation, english abbreviation
    terms_words: tuple[str, str, str, str]  # "N days net", cash, current month, card
    banks: tuple[tuple[str, int, int, str, bool], ...]  # name, type, ledger, currency, active
    rounding: int
    default_terms_days: int
    cities: tuple[tuple[str, str], ...]
    business_words: tuple[tuple[str, ...], tuple[str, ...], str]
    articles: tuple[tuple[str, int, str, str], ...]  # name, coding index, price, unit code


def _tuples(value: Any) -> Any:
    """JSON arrays back into the tuples a profile is made of."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _load_profiles() -> dict[str, Profile]:
    raw = json.loads(PROFILES_FILE.read_text(encoding="utf-8"))
    return {
        country: Profile(country=country, **{key: _tuples(value) for key, value in fields.items()})
        for country, fields in raw.items()
    }


PROFILES = _load_profiles()
ACCOUNT_TYPES = {
    1: "Activa",
    2: "Passiva",
    3: "Eigen vermogen",
    4: "Omzet",
    5: "Kostprijs van de omzet",
    6: "Bedrijfskosten",
    7: "Financiële baten en lasten",
    8: "Belastingen",
}
