"""Reference data of a seeded Norwegian Visma.net company: VAT codes, categories and
zones, accounts, branch, organisation, financial periods (one closed in the customer
ledger), currencies, credit terms, payment methods, cash accounts, articles, number
series and two customers. Read models are plain dicts in the wire shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

#: (vatId, description, rate, vismaXmlVatType)
VAT_CODES = (
    ("3", "Utgående mva, høy sats", Decimal("25"), "High"),
    ("31", "Utgående mva, middels sats", Decimal("15"), "Medium"),
    ("33", "Utgående mva, lav sats", Decimal("12"), "Low"),
    ("5", "Innenlands omsetning, fritatt", Decimal("0"), "Zero"),
    ("52", "Utførsel av varer og tjenester", Decimal("0"), "Exempt"),
)
#: VAT category -> (description, the VAT codes it lists)
VAT_CATEGORIES = {
    "1": ("Høy sats", ("3",)),
    "2": ("Middels sats (næringsmidler)", ("31",)),
    "3": ("Lav sats", ("33",)),
    "4": ("Fritatt innenlands", ("5",)),
    "5": ("Utførsel", ("52",)),
}
#: VAT zone -> (description, default category, the VAT codes that apply in it)
VAT_ZONES = {
    "01": ("Innenlands", "1", ("3", "31", "33", "5")),
    "03": ("Utland", "5", ("52",)),
}
CURRENCIES = (
    ("NOK", "Norske kroner", 2, True),
    ("EUR", "Euro", 2, False),
    ("JPY", "Yen", 0, False),
)
ACCOUNTS = (
    ("1500", "Kundefordringer", "Asset"),
    ("1920", "Bankinnskudd", "Asset"),
    ("2700", "Utgående merverdiavgift", "Liability"),
    ("3000", "Salgsinntekt, avgiftspliktig", "Income"),
    ("3100", "Salgsinntekt, avgiftsfri", "Income"),
    ("3200", "Salgsinntekt, utenfor avgiftsområdet", "Income"),
    ("4000", "Varekostnad", "Expense"),
)
CREDIT_TERMS = (("14", "14 dager netto", 14), ("30", "30 dager netto", 30), ("0", "Kontant", 0))
PAYMENT_METHODS = (("BANK", "Bankoverføring"), ("KORT", "Kortbetaling"))
CASH_ACCOUNTS = (("1920", "Driftskonto", "NOK"),)
ARTICLES = (
    ("KONSULENT", "Konsulenttime", Decimal("1200"), "1", "3000"),
    ("BOK", "Bok", Decimal("399"), "4", "3100"),
    ("MAT", "Lunsj", Decimal("150"), "2", "3000"),
)
NUMBER_SERIES = {
    "ARINVOICE": ("AR Invoice", "100001"),
    "ARCREDITMEMO": ("AR Credit note", "200001"),
    "ARPAYMENT": ("AR Payment", "300001"),
    "CUSTOMER": ("Customer", "10001"),
    "INVENTORY": ("Inventory item", "50001"),
}
SUBACCOUNT_SEGMENTS = ((1, "0"),)


def vat_zone(zone_id: str) -> dict[str, Any]:
    description, default_category, _ = VAT_ZONES[zone_id]
    return {
        "id": zone_id,
        "description": description,
        "defaultVatCategory": default_category,
        "defaultTaxCategory": {
            "number": default_category,
            "description": VAT_CATEGORIES[default_category][0],
        },
    }


def vat_category(category_id: str, modified: str) -> dict[str, Any]:
    description, codes = VAT_CATEGORIES[category_id]
    rates = {code: rate for code, _, rate, _ in VAT_CODES}
    return {
        "vatCategoryId": category_id,
        "description": description,
        "active": True,
        "excludeListedTaxes": False,
        "lastModifiedDateTime": modified,
        "vatCategoryLines": [
            {"vatId": code, "type": "Sales", "calculateOn": "ExtractFromItemAmount",
             "vatRates": [{"vatRate": rates[code]}]}
            for code in codes
        ],
    }  # fmt: skip


def vat_code(
    vat_id: str, description: str, rate: Decimal, xml_type: str, modified: str
) -> dict[str, Any]:
    categories = [c for c, (_, codes) in VAT_CATEGORIES.items() if vat_id in codes]
    zones = [z for z, (_, _, codes) in VAT_ZONES.items() if vat_id in codes]
    return {
        "vatId": vat_id,
        "description": description,
        "type": "Sales",
        "reverseVat": False,
        "vismaXmlVatType": f"VatType{xml_type}",
        "lastModifiedDateTime": modified,
        "schedules": [{"vatRate": rate, "startDate": "2020-01-01T00:00:00", "minTaxableAmt": 0}],
        "categories": [{"vatCategoryId": c, "description": VAT_CATEGORIES[c][0]} for c in categories],
        "zones": [{"id": z, "description": VAT_ZONES[z][0]} for z in zones],
    }  # fmt: skip


def financial_periods(year: int, closed_period: str) -> dict[str, dict[str, Any]]:
    periods = {}
    for y in (year - 1, year, year + 1):
        for month in range(1, 13):
            period = f"{y}{month:02d}"
            end_month, end_year = (1, y + 1) if month == 12 else (month + 1, y)
            periods[period] = {
                "period": period,
                "year": y,
                "description": f"{month:02d}-{y}",
                "startDate": f"{y}-{month:02d}-01T00:00:00",
                "endDate": f"{end_year}-{end_month:02d}-01T00:00:00",
                "active": True,
                "closedInCustomerLedger": period == closed_period,
                "closedInSupplierLedger": period == closed_period,
                "closedInGeneralLedger": False,
                "closedInCashManagement": False,
                "closedInInventoryManagement": False,
                "closedInFixedAssets": False,
            }
    return periods


def reference_data(company_name: str, year: int, modified: str) -> dict[str, dict[str, Any]]:
    """Every read-only list of the company, keyed by list name and then by id."""
    by = {
        "vat": {v[0]: vat_code(*v, modified) for v in VAT_CODES},
        "vatCategory": {c: vat_category(c, modified) for c in VAT_CATEGORIES},
        "vatZone": {z: vat_zone(z) for z in VAT_ZONES},
        "account": {
            a: {"accountID": i + 1, "accountCD": a, "description": d, "type": t, "active": True,
                "cashAccount": a == "1920", "lastModifiedDateTime": modified}
            for i, (a, d, t) in enumerate(ACCOUNTS)
        },
        "branch": {
            "1": {"branchId": 1, "number": "1", "name": company_name, "isMainBranch": True,
                  "isActive": True, "organizationId": 1, "corporateId": "912345678",
                  "vatRegistrationId": "NO912345678MVA",
                  "currency": {"id": "NOK", "description": "Norske kroner"},
                  "ledger": {"id": "L", "description": "Hovedbok"},
                  "vatZone": {"id": "01", "description": "Innenlands"},
                  "lastModifiedDateTime": modified}
        },
        "organization": {
            "1": {"organizationCd": "1", "organizationType": "WithoutBranches", "baseCurrency": "NOK", "name": company_name, "corporateId": "912345678",
                  "vatRegistrationId": "NO912345678MVA"}
        },
        "financialPeriod": financial_periods(year, closed_period=f"{year - 1}01"),
        "currency": {
            c: {"id": c, "description": d, "decimalPrecision": p, "isBaseCurrency": b,
                "isUsedForAccounting": b, "symbol": c}
            for c, d, p, b in CURRENCIES
        },
        "creditTerm": {
            t: {"termsId": t, "description": d, "visibleTo": "All", "dueDateType": "FixedNumberOfDays",
                "delayDays": days, "discountPercent": 0, "lastModifiedDateTime": modified}
            for t, d, days in CREDIT_TERMS
        },
        "paymentmethod": {
            p: {"paymentMethodID": p, "description": d, "active": True, "meansOfPayment": "DirectDeposit",
                "useInAP": False, "details": []}
            for p, d in PAYMENT_METHODS
        },
        "cashaccount": {
            n: {"number": n, "description": d, "currency": c,
                "account": {"number": n, "description": d}, "lastModifiedDateTime": modified}
            for n, d, c in CASH_ACCOUNTS
        },
        "numberSequence": {
            n: {"numberingId": n, "description": d, "manualNumbering": False, "newNumberSymbol": "<NEW>",
                "sequence": [{"startNbr": start, "lastNbr": start, "nbrStep": 1}]}
            for n, (d, start) in NUMBER_SERIES.items()
        },
    }  # fmt: skip
    return by


def article(number: str, description: str, price: Decimal, category: str, account: str,
            inventory_id: int, modified: str) -> dict[str, Any]:  # fmt: skip
    return {
        "inventoryId": inventory_id,
        "inventoryNumber": number,
        "description": description,
        "type": "NonStockItem",
        "status": "Active",
        "stockItem": False,
        "defaultPrice": price,
        "baseUnit": "STK",
        "salesUnit": "STK",
        "vatCode": {"id": category, "description": VAT_CATEGORIES[category][0]},
        "accountInformation": {"salesAccount": {"number": account}},
        "lastModifiedDateTime": modified,
    }


def articles(modified: str) -> dict[str, dict[str, Any]]:
    return {a[0]: article(*a, i + 1, modified) for i, a in enumerate(ARTICLES)}


#: (number, name, corporateId, vatZone, creditTerms)
CUSTOMERS = (
    ("10000", "Fjordkraft Verksted AS", "987654321", "01", "14"),
    ("10001", "Hamburg Import GmbH", "", "03", "30"),
)
