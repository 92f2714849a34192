"""Realistic reference data and starting documents for simulated eAccounting companies.

Built from the country's profile (`profiles`): chart of accounts (per fiscal year, more
than one page of 50), VAT codes with the country's real rates, article account codings per
rate with domestic/EU/outside-EU sales accounts, terms of payment, units, bank accounts
(one inactive), five articles and 58 customers (domestic businesses and people, EU
businesses and people, outside the EU), so the customer list spans two pages. Fiscal years are last, this and next
calendar year. Ids are derived from the company id, so they are the same on every run.

Conventions: VAT rates are fractions everywhere (`VatRate` on vat codes, `VatRatePercent` on
codings, `PercentVat` on invoice rows): 25 % is 0.25. Only Dutch accounts carry
`ReferenceCode`, `Type` and `TypeDescription`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.simulators.eaccounting.profiles import (
    ACCOUNT_TYPES,
    PROFILES,
    SITUATION_ACCOUNT,
    Profile,
)
from worker.simulators.eaccounting.state import Company, date_text, utc_text

_NAMESPACE = uuid.UUID("3f6d1a52-8c1e-4b7a-9a51-0e6f5c2d7b10")
#: Fiscal years are calendar years: last year, this year and next year.
FISCAL_YEAR_OFFSETS = (-1, 0, 1)
_CODING_KEYS = (
    "domestic",
    "domestic_exempt",
    "domestic_reverse",
    "eu_vat",
    "eu_exempt",
    "outside_eu",
    "third_party",
)


def stable_id(company_id: str, kind: str, key: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{company_id}:{kind}:{key}"))


#: country, currency, name, city, postal code, VAT number ("" if none), private person
_FOREIGN_CUSTOMERS = (
    ("DE", "EUR", "Berliner Technik GmbH", "Berlin", "10115", "DE123456789", False),
    ("DK", "DKK", "Københavns Design ApS", "København", "1050", "DK12345678", False),
    ("FR", "EUR", "Atelier Lumière SARL", "Lyon", "69001", "FR12345678901", False),
    ("SE", "SEK", "Göteborgs Hamn Service AB", "Göteborg", "41101", "SE556011223301", False),
    ("NL", "EUR", "Rotterdam Logistics B.V.", "Rotterdam", "3011AA", "NL001234567B01", False),
    ("FI", "EUR", "Tampereen Kone Oy", "Tampere", "33100", "FI23456789", False),
    ("NO", "NOK", "Bergen Shipping AS", "Bergen", "5003", "NO987654321MVA", False),
    ("DE", "EUR", "Anna Schmidt", "München", "80331", "", True),
    ("ES", "EUR", "Carlos García", "Madrid", "28001", "", True),
    ("US", "USD", "Brooklyn Coffee Roasters Inc.", "New York", "11201", "", False),
    ("GB", "GBP", "Thames Analytics Ltd", "London", "EC1A 1BB", "", False),
    ("CH", "CHF", "Alpen Uhren AG", "Zürich", "8001", "", False),
)
_PERSON_NAMES = {
    "NO": (
        "Ola Nordmann",
        "Kari Hansen",
        "Per Johansen",
        "Ingrid Berg",
        "Lars Olsen",
        "Sigrid Lie",
    ),
    "SE": (
        "Anna Andersson",
        "Erik Johansson",
        "Maria Karlsson",
        "Lars Nilsson",
        "Karin Eriksson",
        "Johan Larsson",
    ),
    "FI": (
        "Matti Virtanen",
        "Anna Korhonen",
        "Juha Mäkinen",
        "Liisa Nieminen",
        "Mikko Hämäläinen",
        "Sari Laine",
    ),
    "NL": (
        "Jan de Vries",
        "Sanne Jansen",
        "Pieter Bakker",
        "Emma Visser",
        "Daan Smit",
        "Lotte Meijer",
    ),
}
DOMESTIC_BUSINESS_COUNT = 41
SEED_NOW = datetime(2025, 1, 2, 8, 0, 0)


def build_company(company_id: str, country: str, current_year: int) -> Company:
    profile = PROFILES[country]
    years = [current_year + offset for offset in FISCAL_YEAR_OFFSETS]
    fiscal_years = [_fiscal_year(company_id, year) for year in years]
    company = Company(
        id=company_id,
        country=country,
        settings={},
        fiscal_years=fiscal_years,
        accounts={fy["Id"]: _accounts(profile, fy["Id"]) for fy in fiscal_years},
        vat_codes=[_vat_code(company_id, seed) for seed in profile.vat_codes],
        codings=[_coding(company_id, index, seed) for index, seed in enumerate(profile.codings)],
        terms=_terms(company_id, profile),
        units=[_unit(company_id, seed) for seed in profile.units],
        bank_accounts=[_bank(company_id, i, seed) for i, seed in enumerate(profile.banks)],
    )
    company.settings = _settings(company, profile)
    seed_documents(company)
    return company


def seed_documents(company: Company) -> None:
    """(Re)creates the starting articles and customers and forgets every document."""
    profile = PROFILES[company.country]
    company.articles = {a["Id"]: a for a in _articles(company, profile)}
    company.customers = {c["Id"]: c for c in _customers(company, profile)}
    company.drafts.clear()
    company.invoices.clear()
    company.payments.clear()
    company.next_invoice_number = 10001
    company.next_customer_number = 1001 + len(company.customers)
    company.next_article_number = 100 + len(company.articles)
    company.next_voucher_number = 1


def _settings(company: Company, profile: Profile) -> dict[str, Any]:
    name, address, postal, city, phone, org, vat = profile.company
    default_terms = next(
        t for t in company.terms if t["NumberOfDays"] == profile.default_terms_days
    )
    return {
        "Name": name,
        "Address1": address,
        "Address2": None,
        "PostalCode": postal,
        "City": city,
        "CountryCode": profile.country,
        "CurrencyCode": profile.currency,
        "Phone": phone,
        "Email": f"post@{company.id}.example",
        "CorporateIdentityNumber": org,
        "VatCode": vat,
        "CompanyIdentifier": company.id,
        "CompanyStatus": 1,
        "ProductVariant": 1,
        "TypeOfBusiness": 1,
        "ActivatedModules": ["Invoicing", "Bookkeeping"],
        "TermsOfPaymentId": default_terms["Id"],
        "DomesticCurrencyRounding": profile.rounding,
        "KeepOriginalDraftDate": False,
        "ShowPricesExclVatPC": True,
        "UsesPaymentReferenceNumber": profile.country in ("NO", "FI", "SE"),
        "UsesRotReducedInvoicing": False,
        "UsesGreenTechnology": False,
        "UsesReverseConstructionVat": True,
        "UsesMoss": False,
        "UseAutomaticVatCalculation": profile.country != "NL",
        "AccountNumberDigits": 4,
        "VatPeriod": 6 if profile.country == "NO" else 3,
    }


def _fiscal_year(company_id: str, year: int) -> dict[str, Any]:
    return {
        "Id": stable_id(company_id, "fiscalyear", year),
        "StartDate": f"{year}-01-01T00:00:00",
        "EndDate": f"{year}-12-31T00:00:00",
        "IsLockedForAccounting": False,
        "BookkeepingMethod": 0,
    }


def _accounts(profile: Profile, fiscal_year_id: str) -> list[dict[str, Any]]:
    return [_account(profile, fiscal_year_id, entry) for entry in profile.accounts]


def _account(profile: Profile, fiscal_year_id: str, entry: str) -> dict[str, Any]:
    number, _, rest = entry.partition(" ")
    name, *dutch = rest.split(";")
    vat_code = _account_vat_code(profile, int(number))
    account: dict[str, Any] = {
        "Name": name,
        "Number": number,
        "FiscalYearId": fiscal_year_id,
        "VatCodeId": None,
        "VatCodeDescription": vat_code,
        "IsActive": True,
        "IsProjectAllowed": number[0] in "345678",
        "IsCostCenterAllowed": number[0] in "345678",
        "IsBlockedForManualBooking": False,
        "CreatedUtc": utc_text(SEED_NOW),
        "ModifiedUtc": utc_text(SEED_NOW),
    }
    if dutch:
        reference_code, account_type = dutch
        account["ReferenceCode"] = reference_code
        account["Type"] = int(account_type)
        account["TypeDescription"] = ACCOUNT_TYPES[int(account_type)]
    return account


def _account_vat_code(profile: Profile, number: int) -> str | None:
    return next((desc for _, desc, _, acc in profile.vat_codes if acc == number), None)


def _vat_code(company_id: str, seed: tuple[str, str, str, int | None]) -> dict[str, Any]:
    code, description, rate, account = seed
    return {
        "Id": stable_id(company_id, "vatcode", code),
        "Code": code,
        "Description": description,
        "VatRate": Decimal(rate),
        "OssCodeType": 0,
        "RelatedAccounts": {
            "AccountNumber1": account,
            "AccountNumber2": None,
            "AccountNumber3": None,
        },
    }


def _coding(company_id: str, index: int, seed: tuple[str, str, str, str, str]) -> dict[str, Any]:
    name, english, kind, rate, accounts = seed
    numbers = [int(n) for n in accounts.split()]
    coding: dict[str, Any] = {
        "Id": stable_id(company_id, "coding", index),
        "Name": name,
        "NameEnglish": english,
        "Type": kind,
        "VatRate": f"{(Decimal(rate) * 100).normalize():f} %",
        "VatRatePercent": Decimal(rate),
        "IsActive": True,
        "ForeignSalesSubjectToMossAccountNumber": None,
        "ChangedUtc": utc_text(SEED_NOW),
    }
    for key, number in zip(_CODING_KEYS, numbers, strict=True):
        coding[SITUATION_ACCOUNT[key]] = number
    return coding


def _terms(company_id: str, profile: Profile) -> list[dict[str, Any]]:
    word, cash, month, card = profile.terms_words
    rows: list[dict[str, Any]] = [
        _term(company_id, f"{days} {word}", f"{days} days net", days, 0)
        for days in (10, 14, 20, 30)
    ]
    rows.append(_term(company_id, cash, "Cash", 0, 2))
    rows.append(_term(company_id, f"30 {word} ({month})", "Current month + 30", 30, 1))
    rows.append(_term(company_id, card, "Card payment", 0, 3))
    return rows


def _term(company_id: str, name: str, english: str, days: int, kind: int) -> dict[str, Any]:
    texts = {0: "Normal", 1: "CurrentMonth", 2: "Cash", 3: "CardPayment"}
    return {
        "Id": stable_id(company_id, "terms", f"{kind}:{days}"),
        "Name": name,
        "NameEnglish": english,
        "NumberOfDays": days,
        "TermsOfPaymentTypeId": kind,
        "TermsOfPaymentTypeText": texts[kind],
        "AvailableForSales": True,
        "AvailableForPurchase": True,
    }


def _unit(company_id: str, seed: tuple[str, str, str, str]) -> dict[str, Any]:
    code, name, abbreviation, english = seed
    return {
        "Id": stable_id(company_id, "unit", code),
        "Code": code,
        "Name": name,
        "Abbreviation": abbreviation,
        "AbbreviationEnglish": english,
    }


def _bank(company_id: str, index: int, seed: tuple[str, int, int, str, bool]) -> dict[str, Any]:
    name, kind, ledger, currency, active = seed
    descriptions = {1: "ChequeAccount", 2: "CashAccount", 4: "CurrencyAccount", 7: "TaxAccount"}
    return {
        "Id": stable_id(company_id, "bank", index),
        "Name": name,
        "BankAccountType": kind,
        "BankAccountTypeDescription": descriptions[kind],
        "LedgerAccountNumber": ledger,
        "CurrencyCode": currency,
        "IsActive": active,
        "IsDefaultChequeAccount": index == 0,
        "Bban": None if kind in (2, 7) else f"{1200 + index:04d}{ledger:04d}{index:03d}",
        "Iban": None,
        "Bank": None,
        "HasActiveBankAgreement": False,
        "ModifiedUtc": utc_text(SEED_NOW),
    }


def _articles(company: Company, profile: Profile) -> list[dict[str, Any]]:
    units = {u["Code"]: u for u in company.units}
    return [
        _article(company, index, seed, units[seed[3]])
        for index, seed in enumerate(profile.articles)
    ]


def _article(
    company: Company, index: int, seed: tuple[str, int, str, str], unit: dict[str, Any]
) -> dict[str, Any]:
    name, coding_index, price, _ = seed
    coding = company.codings[coding_index]
    return {
        "Id": stable_id(company.id, "article", index),
        "IsActive": True,
        "Number": str(100 + index),
        "Name": name,
        "NameEnglish": None,
        "NetPrice": Decimal(price),
        "GrossPrice": (Decimal(price) * (1 + coding["VatRatePercent"])).quantize(Decimal("0.01")),
        "CodingId": coding["Id"],
        "CodingName": coding["Name"],
        "UnitId": unit["Id"],
        "UnitName": unit["Name"],
        "UnitAbbreviation": unit["Abbreviation"],
        "IsServiceArticle": coding["Type"] == "Service",
        "StockBalance": Decimal(0),
        "CreatedUtc": utc_text(SEED_NOW),
        "ChangedUtc": utc_text(SEED_NOW),
    }


def _customers(company: Company, profile: Profile) -> list[dict[str, Any]]:
    prefixes, trades, suffix = profile.business_words
    rows: list[tuple[str, str, str, str, str, str, bool]] = []
    for index in range(DOMESTIC_BUSINESS_COUNT):
        name = f"{prefixes[index % len(prefixes)]} {trades[index % len(trades)]} {suffix}"
        postal, city = profile.cities[index % len(profile.cities)]
        rows.append((profile.country, profile.currency, name, city, postal, "", False))
    for index, person in enumerate(_PERSON_NAMES[profile.country]):
        postal, city = profile.cities[index % len(profile.cities)]
        rows.append((profile.country, profile.currency, person, city, postal, "", True))
    rows.extend(c for c in _FOREIGN_CUSTOMERS if c[0] != profile.country)
    return [_customer(company, index, row) for index, row in enumerate(rows)]


def _customer(
    company: Company, index: int, row: tuple[str, str, str, str, str, str, bool]
) -> dict[str, Any]:
    country, currency, name, city, postal, vat_number, private = row
    number = 1001 + index
    terms = company.find(company.terms, company.settings["TermsOfPaymentId"]) or company.terms[0]
    domestic_vat = None if private or country != company.country else f"{country}{number:09d}"
    return {
        "Id": stable_id(company.id, "customer", number),
        "CustomerNumber": str(number),
        "Name": name,
        "IsPrivatePerson": private,
        "IsActive": True,
        "InvoiceAddress1": f"{_street(country)} {index % 40 + 1}",
        "InvoiceAddress2": None,
        "InvoicePostalCode": postal,
        "InvoiceCity": city,
        "InvoiceCountryCode": country,
        "CurrencyCode": currency,
        "CorporateIdentityNumber": None if private else f"{number:08d}",
        "VatNumber": vat_number or domestic_vat,
        "EmailAddress": f"invoice{number}@customer.example",
        "TermsOfPaymentId": terms["Id"],
        "TermsOfPayment": dict(terms),
        "ReverseChargeOnConstructionServices": False,
        "IsFutureInvoiceDateAllowed": True,
        "ChangedUtc": utc_text(SEED_NOW),
        "LastInvoiceDate": None,
    }


def _street(country: str) -> str:
    return {"NO": "Kongens gate", "SE": "Storgatan", "FI": "Kauppakatu", "NL": "Kerkstraat"}.get(
        country, "Main Street"
    )


def fiscal_year_for(company: Company, moment: datetime) -> dict[str, Any] | None:
    day = date_text(moment)
    return next(
        (fy for fy in company.fiscal_years if fy["StartDate"] <= day <= fy["EndDate"]), None
    )
