"""Customer invoice drafts, booked customer invoices and their payments.

The rules come from `models.json` (generic checks in `modelcheck`) and from its descriptions:
a non-text row needs an article; the row's VAT rate and sales account come from the article's
account coding and the sale's situation (domestic, EU with or without VAT, outside the EU,
third-party trade, reversed construction VAT); `UnitPrice` allows 2 decimals for domestic and
4 for foreign customers. Amounts are `Decimal`, rounded half away from zero to cents.

Totals: `TotalAmount` includes VAT and rounding; `TotalVatAmount` is computed per VAT rate on
the summed net amounts of that rate; `TotalRoundings` is the whole-unit rounding done when the
company rounds its domestic currency (Swedish companies by default). On drafts `TotalAmount`
is in the invoice currency (with `...BaseCurrency` twins); on booked invoices `TotalAmount`
is in the company's currency and `TotalAmountInvoiceCurrency` in the invoice's.
Credit invoices (`IsCreditInvoice`) carry negative quantities or prices and negative totals.
"""

from __future__ import annotations

import calendar
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from worker.countries import EU_COUNTRIES
from worker.simulators.eaccounting_seed import (
    PER_EUR,
    SITUATION_ACCOUNT,
    currency_rate,
    fiscal_year_for,
)
from worker.simulators.eaccounting_state import (
    MODELS,
    ApiError,
    Company,
    date_text,
    gone_message,
    invalid,
    invalid_field,
    money,
    utc_text,
)
from worker.simulators.modelcheck import Violation, decimal_places, parse_datetime

ZERO = Decimal(0)
#: Fields of a draft that always come from the customer.
_FROM_CUSTOMER = {
    "InvoiceCustomerName": "Name",
    "InvoicePostalCode": "InvoicePostalCode",
    "InvoiceCity": "InvoiceCity",
    "InvoiceCountryCode": "InvoiceCountryCode",
    "CustomerIsPrivatePerson": "IsPrivatePerson",
    "CustomerName": "Name",
    "CustomerNumber": "CustomerNumber",
}
#: Fields of a draft that default to the customer's value unless the request sets them.
_OVERRIDABLE = {
    "InvoiceAddress1": "InvoiceAddress1",
    "InvoiceAddress2": "InvoiceAddress2",
    "DeliveryCustomerName": "DeliveryCustomerName",
    "DeliveryAddress1": "DeliveryAddress1",
    "DeliveryAddress2": "DeliveryAddress2",
    "DeliveryPostalCode": "DeliveryPostalCode",
    "DeliveryCity": "DeliveryCity",
    "DeliveryCountryCode": "DeliveryCountryCode",
}
#: What booking copies from a draft: the fields both models have (the rest is computed).
_COPIED_TO_INVOICE = sorted(
    MODELS.fields("CustomerInvoiceDraftApi").keys() & MODELS.fields("CustomerInvoiceApi").keys()
)
_COPIED_TO_INVOICE_ROW = sorted(
    MODELS.fields("CustomerInvoiceDraftRowApi").keys()
    & MODELS.fields("CustomerInvoiceRowApi").keys()
)


@dataclass
class SaleContext:
    company: Company
    customer: dict[str, Any]
    eu_third_party: bool
    includes_vat: bool
    replace_zero_price: bool
    reverse_charge_construction: bool
    problems: list[Violation] = field(default_factory=list)

    @property
    def customer_country(self) -> str:
        return str(self.customer.get("InvoiceCountryCode") or self.company.country)

    @property
    def domestic(self) -> bool:
        return self.customer_country == self.company.country

    def situation(self, coding: Mapping[str, Any], reversed_construction: bool) -> str:
        if self.domestic:
            if reversed_construction:
                return "domestic_reverse"
            return "domestic_exempt" if coding["VatRatePercent"] == 0 else "domestic"
        if self.eu_third_party:
            return "third_party"
        both_in_eu = self.company.country in EU_COUNTRIES and self.customer_country in EU_COUNTRIES
        if both_in_eu:
            business = not self.customer.get("IsPrivatePerson") and self.customer.get("VatNumber")
            return "eu_exempt" if business else "eu_vat"
        return "outside_eu"


# ---------------------------------------------------------------- drafts


def build_draft(
    company: Company, body: Any, now: datetime, draft_id: str, created_utc: str
) -> dict[str, Any]:
    """A draft from a `CustomerInvoiceDraftApi` body, or ApiError(400) naming each problem."""
    clean, problems = MODELS.check("CustomerInvoiceDraftApi", body)
    if problems:
        raise invalid(problems)
    customer = _customer(company, clean["CustomerId"])
    context = SaleContext(
        company=company,
        customer=customer,
        eu_third_party=bool(clean.get("EuThirdParty")),
        includes_vat=bool(customer.get("IsPrivatePerson"))
        and not company.settings.get("ShowPricesExclVatPC", True),
        replace_zero_price=bool(clean.get("ReplaceUnitPriceWhenZero")),
        reverse_charge_construction=bool(
            customer.get("ReverseChargeOnConstructionServices")
            or clean.get("ReverseChargeOnConstructionServices")
        ),
    )
    _check_header(context, clean)
    rows = [_draft_row(context, index, row) for index, row in enumerate(clean.get("Rows") or [])]
    if context.problems:
        raise invalid(context.problems)
    draft = _draft_header(context, clean, now)
    draft.update(Id=draft_id, CreatedUtc=created_utc, Rows=rows)
    draft.update(_totals(context, draft))
    _check_credit_sign(draft)
    return draft


def _customer(company: Company, customer_id: str) -> dict[str, Any]:
    customer = company.find(company.customers.values(), customer_id)
    if customer is None:
        raise invalid_field("CustomerId", f"No customer with id '{customer_id}' exists.")
    if not customer.get("IsActive", True):
        raise invalid_field("CustomerId", f"The customer '{customer_id}' is inactive.")
    return customer


def _check_header(context: SaleContext, clean: Mapping[str, Any]) -> None:
    company, customer, problems = context.company, context.customer, context.problems

    def fail(name: str, message: str) -> None:
        problems.append(Violation(name, f"{name}: {message}"))

    currency = clean.get("InvoiceCurrencyCode")
    if currency is not None and currency not in PER_EUR:
        fail("InvoiceCurrencyCode", f"Unknown currency '{currency}'.")
    if context.eu_third_party and not _third_party_allowed(context):
        fail(
            "EuThirdParty",
            "Only an EU company invoicing a company in another EU country "
            "may use EU third-party trade.",
        )
    if clean.get("IsDirectDebit") and company.country != "NL":
        fail("IsDirectDebit", "Direct debit is only applicable for NL.")
    if clean.get("RotReducedInvoicingType", 0) != 0 and not company.settings.get(
        "UsesRotReducedInvoicing"
    ):
        fail(
            "RotReducedInvoicingType", "ROT/RUT reduced invoicing is not activated for the company."
        )
    if clean.get("UsesGreenTechnology") and not company.settings.get("UsesGreenTechnology"):
        fail("UsesGreenTechnology", "Green Technology is not activated for the company.")
    if clean.get("ElectronicReference") and customer.get("IsPrivatePerson"):
        fail("ElectronicReference", "Can only be set for non-private individuals.")


def _third_party_allowed(context: SaleContext) -> bool:
    return (
        context.company.country in EU_COUNTRIES
        and context.customer_country in EU_COUNTRIES
        and not context.domestic
        and not context.customer.get("IsPrivatePerson")
    )


def _draft_header(context: SaleContext, clean: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    customer = context.customer
    draft: dict[str, Any] = {k: v for k, v in clean.items() if k != "Rows"}
    for target, source in _FROM_CUSTOMER.items():
        draft[target] = customer.get(source)
    for target, source in _OVERRIDABLE.items():
        draft[target] = clean.get(target) or customer.get(source)
    draft["InvoiceCountryCode"] = context.customer_country
    draft["InvoiceCurrencyCode"] = (
        clean.get("InvoiceCurrencyCode") or customer.get("CurrencyCode") or context.company.currency
    )
    invoice_date = clean.get("InvoiceDate") or date_text(now)
    draft["InvoiceDate"] = invoice_date
    draft["DueDate"] = clean.get("DueDate") or date_text(
        due_date(parse_datetime(invoice_date), _terms_of(context.company, customer))
    )
    draft["IncludesVat"] = context.includes_vat
    draft["IsCreditInvoice"] = bool(clean.get("IsCreditInvoice"))
    for name in ("Notes", "MessageThreads", "SalesDocumentAttachments", "Persons"):
        draft.setdefault(name, [])
    return draft


def _terms_of(company: Company, customer: Mapping[str, Any]) -> dict[str, Any]:
    return (
        company.find(company.terms, customer.get("TermsOfPaymentId"))
        or company.find(company.terms, company.settings["TermsOfPaymentId"])
        or company.terms[0]
    )


def due_date(invoice_date: datetime, terms: Mapping[str, Any]) -> datetime:
    kind, days = terms.get("TermsOfPaymentTypeId", 0), int(terms.get("NumberOfDays") or 0)
    if kind in (2, 3, 4, 5):
        return invoice_date
    if kind == 1:
        last = calendar.monthrange(invoice_date.year, invoice_date.month)[1]
        return invoice_date.replace(day=last) + timedelta(days=days)
    return invoice_date + timedelta(days=days)


def _draft_row(context: SaleContext, index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    path = f"Rows[{index}]"
    result: dict[str, Any] = dict(row)
    result["Id"] = str(uuid.uuid4())
    result["LineNumber"] = row.get("LineNumber", index)
    if row.get("IsTextRow"):
        result.update(ArticleId=None, UnitPrice=None, Quantity=None, _Line=ZERO, _Rate=ZERO)
        return result
    article = _row_article(context, row, path)
    coding = _row_coding(context, row, article, path)
    if article is None or coding is None:
        return result
    reversed_construction = _reversed_construction(context, row, path)
    situation = context.situation(coding, reversed_construction)
    rate = coding["VatRatePercent"] if situation in ("domestic", "eu_vat") else ZERO
    price = _unit_price(context, row, article, path)
    quantity = row.get("Quantity", ZERO)
    discount = row.get("DiscountPercentage", ZERO)
    result.update(
        ArticleId=article["Id"],
        ArticleNumber=article["Number"],
        Text=row.get("Text") or article["Name"],
        UnitPrice=price,
        Quantity=quantity,
        DiscountPercentage=discount,
        VatRateId=coding["Id"],
        IsServiceArticle=coding["Type"] == "Service",
        _Line=money(quantity * price * (1 - discount)),
        _Rate=rate,
        _Situation=situation,
        _SalesAccount=coding.get(SITUATION_ACCOUNT[situation]),
    )
    result.update(_row_unit(context, row, article, path))
    return result


def _row_article(context: SaleContext, row: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    article_id = row.get("ArticleId")
    if not article_id:
        context.problems.append(
            Violation(f"{path}.ArticleId", f"{path}.ArticleId: Required if IsTextRow is false.")
        )
        return None
    article = context.company.find(context.company.articles.values(), article_id)
    if article is None or not article.get("IsActive", True):
        problem = gone_message("Article", article_id) if article is None else "is inactive"
        context.problems.append(Violation(f"{path}.ArticleId", f"{path}.ArticleId: {problem}"))
        return None
    return article


def _row_coding(
    context: SaleContext, row: Mapping[str, Any], article: Mapping[str, Any] | None, path: str
) -> dict[str, Any] | None:
    wanted = row.get("VatRateId") or (article or {}).get("CodingId")
    if wanted is None:
        return None
    coding = context.company.find(context.company.codings, wanted)
    if coding is None:
        name = f"{path}.VatRateId" if row.get("VatRateId") else f"{path}.ArticleId"
        context.problems.append(Violation(name, f"{name}: No article account coding '{wanted}'."))
    return coding


def _reversed_construction(context: SaleContext, row: Mapping[str, Any], path: str) -> bool:
    if not row.get("ReversedConstructionServicesVatFree"):
        return False
    if context.domestic and context.reverse_charge_construction:
        return True
    name = f"{path}.ReversedConstructionServicesVatFree"
    context.problems.append(
        Violation(
            name,
            f"{name}: Only for domestic customers with reverse charge on construction services.",
        )
    )
    return False


def _unit_price(
    context: SaleContext, row: Mapping[str, Any], article: Mapping[str, Any], path: str
) -> Decimal:
    price: Decimal = row.get("UnitPrice", ZERO)
    allowed = 2 if context.domestic else 4
    if decimal_places(price) > allowed:
        who = "domestic" if context.domestic else "foreign"
        name = f"{path}.UnitPrice"
        context.problems.append(
            Violation(name, f"{name}: {allowed} decimals allowed for a {who} customer.")
        )
    if price == 0 and context.replace_zero_price:
        key = "GrossPrice" if context.includes_vat else "NetPrice"
        return Decimal(article.get(key) or ZERO)
    return price


def _row_unit(
    context: SaleContext, row: Mapping[str, Any], article: Mapping[str, Any], path: str
) -> dict[str, Any]:
    unit_id = row.get("UnitId") or article.get("UnitId")
    unit = context.company.find(context.company.units, unit_id)
    if unit is None:
        context.problems.append(Violation(f"{path}.UnitId", f"{path}.UnitId: No unit '{unit_id}'."))
        return {}
    return {
        "UnitId": unit["Id"],
        "UnitName": unit["Name"],
        "UnitAbbreviation": unit["Abbreviation"],
        "UnitAbbreviationEnglish": unit["AbbreviationEnglish"],
    }


def _totals(context: SaleContext, draft: Mapping[str, Any]) -> dict[str, Any]:
    groups: dict[Decimal, Decimal] = {}
    for row in draft["Rows"]:
        if not row.get("IsTextRow"):
            groups[row["_Rate"]] = groups.get(row["_Rate"], ZERO) + row["_Line"]
    specification = [
        _vat_group(rate, amount, context.includes_vat) for rate, amount in groups.items()
    ]
    specification.sort(key=lambda g: g["VatPercent"], reverse=True)
    net = sum((g["AmountInvoiceCurrency"] for g in specification), ZERO)
    vat = sum((g["VatAmountInvoiceCurrency"] for g in specification), ZERO)
    gross = net + vat
    total = _rounded_total(context.company, draft["InvoiceCurrencyCode"], gross)
    rate = currency_rate(draft["InvoiceCurrencyCode"], context.company.currency)
    return {
        "TotalAmount": total,
        "TotalVatAmount": vat,
        "TotalRoundings": total - gross,
        "TotalAmountBaseCurrency": money(total * rate),
        "TotalVatAmountBaseCurrency": money(vat * rate),
        "_NetAmount": net,
        "_CurrencyRate": rate,
        "_VatSpecification": specification,
    }


def _vat_group(rate: Decimal, amount: Decimal, includes_vat: bool) -> dict[str, Any]:
    if includes_vat:
        vat = money(amount * rate / (1 + rate))
        net = amount - vat
    else:
        net, vat = amount, money(amount * rate)
    return {"VatPercent": rate, "AmountInvoiceCurrency": net, "VatAmountInvoiceCurrency": vat}


def _rounded_total(company: Company, currency: str, gross: Decimal) -> Decimal:
    if company.settings.get("DomesticCurrencyRounding") == 1 and currency == company.currency:
        return gross.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return gross


def _check_credit_sign(draft: Mapping[str, Any]) -> None:
    total: Decimal = draft["TotalAmount"]
    if draft["IsCreditInvoice"] and total > 0:
        raise invalid_field(
            "IsCreditInvoice", "A credit invoice must have a negative total amount."
        )
    if not draft["IsCreditInvoice"] and total < 0:
        raise invalid_field(
            "IsCreditInvoice", "The total amount is negative: create a credit invoice instead."
        )


def row_amount_no_vat(row: Mapping[str, Any], includes_vat: bool) -> Decimal:
    line: Decimal = row.get("_Line", ZERO)
    return money(line / (1 + row["_Rate"])) if includes_vat and not row.get("IsTextRow") else line


# ---------------------------------------------------------------- booking


def convert_draft(
    company: Company, draft: dict[str, Any], body: Any, options: Mapping[str, bool], now: datetime
) -> dict[str, Any]:
    """Books a draft as a customer invoice; the caller removes the draft."""
    if body:
        _check_expectations(draft, body)
    if not draft["Rows"]:
        raise invalid_field("Rows", "An invoice must have at least one row.")
    draft = dict(draft)
    if not _keeps_draft_date(company, options):
        today = date_text(now)
        draft["InvoiceDate"] = today
        customer = company.find(company.customers.values(), draft["CustomerId"]) or {}
        draft["DueDate"] = date_text(due_date(parse_datetime(today), _terms_of(company, customer)))
    return book(company, draft, now, draft_id=draft["Id"])


def _keeps_draft_date(company: Company, options: Mapping[str, bool]) -> bool:
    keep = options.get("keeporiginaldraftdate", False)
    if options.get("overridecompanykeeporiginaldraftdate", False):
        return keep
    return keep or bool(company.settings.get("KeepOriginalDraftDate"))


def _check_expectations(draft: Mapping[str, Any], body: Any) -> None:
    clean, problems = MODELS.check("CustomerInvoiceDraftValidationApi", body)
    if problems:
        raise invalid(problems)
    expected = {
        "TotalAmountInvoiceCurrency": draft["TotalAmount"],
        "TotalVatAmountInvoiceCurrency": draft["TotalVatAmount"],
        "TotalRoundingsInvoiceCurrency": draft["TotalRoundings"],
    }
    mismatches = [
        Violation(name, f"{name}: expected {clean[name]} but the draft has {actual}.")
        for name, actual in expected.items()
        if name in clean and clean[name] != actual
    ]
    mismatches.extend(_row_mismatches(draft, clean.get("Rows") or []))
    if mismatches:
        raise invalid(mismatches)


def _row_mismatches(
    draft: Mapping[str, Any], expected_rows: list[dict[str, Any]]
) -> list[Violation]:
    by_line = {row["LineNumber"]: row for row in draft["Rows"]}
    problems: list[Violation] = []
    for index, expected in enumerate(expected_rows):
        row = by_line.get(expected.get("LineNumber"))
        if row is None:
            name = f"Rows[{index}].LineNumber"
            problems.append(Violation(name, f"{name}: no row with that line number."))
            continue
        actual = _row_validation_amounts(row, bool(draft["IncludesVat"]))
        for key, value in actual.items():
            if key in expected and expected[key] != value:
                name = f"Rows[{index}].{key}"
                problems.append(
                    Violation(name, f"{name}: expected {expected[key]} but got {value}.")
                )
    return problems


def _row_validation_amounts(row: Mapping[str, Any], includes_vat: bool) -> dict[str, Decimal]:
    net = row_amount_no_vat(row, includes_vat)
    gross = row.get("_Line", ZERO) if includes_vat else net + money(net * row.get("_Rate", ZERO))
    return {"TotalAmountNoVatInvoiceCurrency": net, "TotalAmountIncVatInvoiceCurrency": gross}


def book(
    company: Company, draft: Mapping[str, Any], now: datetime, draft_id: str | None
) -> dict[str, Any]:
    invoice_date = parse_datetime(draft["InvoiceDate"])
    fiscal_year = fiscal_year_for(company, invoice_date)
    if fiscal_year is None or fiscal_year["IsLockedForAccounting"]:
        raise invalid_field(
            "InvoiceDate", f"{draft['InvoiceDate'][:10]} is not in an open fiscal year."
        )
    number = company.next_invoice_number
    company.next_invoice_number += 1
    invoice: dict[str, Any] = {key: draft.get(key) for key in _COPIED_TO_INVOICE}
    invoice.update(_booked_fields(company, draft, now, number, draft_id))
    company.invoices[str(invoice["Id"])] = invoice
    company.payments[str(invoice["Id"])] = []
    customer = company.find(company.customers.values(), draft["CustomerId"])
    if customer is not None:
        customer["LastInvoiceDate"] = draft["InvoiceDate"]
    return invoice


def _booked_fields(
    company: Company, draft: Mapping[str, Any], now: datetime, number: int, draft_id: str | None
) -> dict[str, Any]:
    rate: Decimal = draft["_CurrencyRate"]
    total: Decimal = draft["TotalAmount"]
    customer = company.find(company.customers.values(), draft["CustomerId"]) or {}
    voucher = company.next_voucher_number
    company.next_voucher_number += 1
    return {
        "Id": str(uuid.uuid4()),
        "InvoiceNumber": number,
        "CreatedFromDraftId": draft_id,
        "InvoiceDate": draft["InvoiceDate"],
        "DueDate": draft["DueDate"],
        "CurrencyCode": draft["InvoiceCurrencyCode"],
        "CurrencyRate": rate,
        "TotalAmount": draft["TotalAmountBaseCurrency"],
        "TotalVatAmount": draft["TotalVatAmountBaseCurrency"],
        "TotalRoundings": money(draft["TotalRoundings"] * rate),
        "TotalAmountInvoiceCurrency": total,
        "TotalVatAmountInvoiceCurrency": draft["TotalVatAmount"],
        "RemainingAmount": draft["TotalAmountBaseCurrency"],
        "RemainingAmountInvoiceCurrency": total,
        "SetOffAmountInvoiceCurrency": ZERO,
        "PaymentStatus": 1,
        "PaymentDate": None,
        "CreditedBy": [],
        "ReferringInvoiceId": draft.get("_ReferringInvoiceId"),
        "TermsOfPaymentId": draft.get("_TermsOfPaymentId") or _terms_of(company, customer)["Id"],
        "CustomerEmail": customer.get("EmailAddress"),
        "VoucherNumber": f"F {voucher}",
        "VoucherId": str(uuid.uuid4()),
        "PaymentReferenceNumber": _payment_reference(company, number),
        "ReversedConstructionVatInvoicing": any(
            r.get("_Situation") == "domestic_reverse" for r in draft["Rows"]
        ),
        "SendType": 0,
        "IsSold": False,
        "IsNotDelivered": False,
        "PaymentReminderIssued": False,
        "HasAutoInvoiceError": False,
        "CreatedUtc": utc_text(now),
        "ModifiedUtc": utc_text(now),
        "Rows": [_invoice_row(row, bool(draft["IncludesVat"])) for row in draft["Rows"]],
        "VatSpecification": [dict(group) for group in draft["_VatSpecification"]],
        "Notes": list(draft.get("Notes") or []),
        "MessageThreads": [],
        "SalesDocumentAttachments": [],
    }


def _payment_reference(company: Company, number: int) -> str | None:
    if not company.settings.get("UsesPaymentReferenceNumber"):
        return None
    digits = str(number)
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return digits + str((10 - total % 10) % 10)


def _invoice_row(row: Mapping[str, Any], includes_vat: bool) -> dict[str, Any]:
    invoice_row: dict[str, Any] = {key: row.get(key) for key in _COPIED_TO_INVOICE_ROW}
    invoice_row.update(
        Id=str(uuid.uuid4()),
        AmountNoVat=row_amount_no_vat(row, includes_vat),
        PercentVat=row.get("_Rate", ZERO),
        IsVatFree=row.get("_Rate", ZERO) == 0,
        _SalesAccount=row.get("_SalesAccount"),
        _Situation=row.get("_Situation"),
    )
    return invoice_row


def draft_body_from_invoice(clean: Mapping[str, Any]) -> dict[str, Any]:
    """A `CustomerInvoiceApi` body expressed as a draft, to reuse the draft's rules."""
    body = {k: v for k, v in clean.items() if k not in ("Rows", "CurrencyCode")}
    body["InvoiceCurrencyCode"] = clean.get("CurrencyCode")
    body["Rows"] = [
        {"IsTextRow": False, "ReversedConstructionServicesVatFree": False, **row}
        for row in clean.get("Rows") or []
    ]
    return body


def link_credit(company: Company, credit: dict[str, Any], original_id: str) -> None:
    original = company.find(company.invoices.values(), original_id)
    if original is None or original["IsCreditInvoice"]:
        raise invalid_field(
            "ReferringInvoiceId", f"No invoice '{original_id}' that can be credited."
        )
    if original["CustomerId"] != credit["CustomerId"]:
        raise invalid_field(
            "ReferringInvoiceId", "The credited invoice belongs to another customer."
        )
    credit["_ReferringInvoiceId"] = original["Id"]


def after_credit(company: Company, invoice: Mapping[str, Any]) -> None:
    original = company.find(company.invoices.values(), invoice.get("ReferringInvoiceId"))
    if original is not None:
        original["CreditedBy"].append({"CreditInvoiceId": invoice["Id"]})


# ---------------------------------------------------------------- payments


def register_payment(
    company: Company, invoice: dict[str, Any], body: Any, now: datetime
) -> dict[str, Any]:
    clean, problems = MODELS.check("InvoicePaymentApi", body)
    if problems:
        raise invalid(problems)
    _check_payment_references(company, invoice, clean, now)
    settled = _settled_amount(invoice, clean)
    remaining: Decimal = invoice["RemainingAmountInvoiceCurrency"] - settled
    invoice["RemainingAmountInvoiceCurrency"] = remaining
    invoice["RemainingAmount"] = money(remaining * invoice["CurrencyRate"])
    invoice["PaymentDate"] = clean["PaymentDate"]
    invoice["PaymentStatus"] = 0 if remaining == 0 else 1
    invoice["ModifiedUtc"] = utc_text(now)
    record = dict(clean, Id=str(uuid.uuid4()), _SettledAmount=settled, _RegisteredUtc=utc_text(now))
    company.payments.setdefault(invoice["Id"], []).append(record)
    return clean


def _check_payment_references(
    company: Company, invoice: Mapping[str, Any], clean: Mapping[str, Any], now: datetime
) -> None:
    bank = company.find(company.bank_accounts, clean["CompanyBankAccountId"])
    if bank is None or not bank.get("IsActive"):
        problem = gone_message("BankAccount", str(clean["CompanyBankAccountId"]))
        raise invalid_field("CompanyBankAccountId", problem if bank is None else "is inactive.")
    if clean["PaymentCurrency"] != invoice["CurrencyCode"]:
        raise invalid_field(
            "PaymentCurrency", f"Must be the invoice currency {invoice['CurrencyCode']}."
        )
    payment_date = parse_datetime(clean["PaymentDate"])
    if payment_date.date() > now.date():
        raise invalid_field("PaymentDate", "Future dates cannot be set.")
    if fiscal_year_for(company, payment_date) is None:
        raise invalid_field("PaymentDate", "The date is not in a fiscal year.")


def _settled_amount(invoice: Mapping[str, Any], clean: Mapping[str, Any]) -> Decimal:
    remaining: Decimal = invoice["RemainingAmountInvoiceCurrency"]
    amount: Decimal = clean["PaymentAmount"]
    kind = clean["PaymentType"]
    if remaining == 0:
        raise ApiError(400, 4000, "The invoice is already fully paid.", error="ValidationError")
    if amount == 0 or (amount > 0) != (remaining > 0):
        sign = "positive" if remaining > 0 else "negative (a refund of a credit invoice)"
        raise invalid_field("PaymentAmount", f"Must be {sign}.")
    if kind == 3:
        if abs(remaining - amount) > 1:
            raise invalid_field("PaymentAmount", "A rounding payment may differ by at most 1.")
        return remaining
    settled = amount + (clean.get("BankFeeAmount", ZERO) if kind == 4 else ZERO) * (
        1 if remaining > 0 else -1
    )
    if kind == 2 and settled != remaining:
        raise invalid_field(
            "PaymentAmount", f"A complete payment must equal the remaining amount {remaining}."
        )
    if abs(settled) > abs(remaining):
        raise invalid_field("PaymentAmount", f"Exceeds the remaining amount {remaining}.")
    return settled


def present_invoice(invoice: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The invoice as served: `PaymentStatus` 2 (overdue) once unpaid past its due date."""
    shown = dict(invoice)
    if shown["PaymentStatus"] == 1 and shown["DueDate"] < date_text(now):
        shown["PaymentStatus"] = 2
    return shown


__all__ = [
    "SaleContext",
    "after_credit",
    "book",
    "build_draft",
    "convert_draft",
    "draft_body_from_invoice",
    "due_date",
    "link_credit",
    "present_invoice",
    "register_payment",
]
