"""Customer invoice drafts: checked, priced and totalled.

The rules come from `models.json` (generic checks in `modelcheck`) and from its descriptions:
a non-text row needs an article; the row's VAT rate and sales account come from the article's
account coding and the sale's situation (domestic, EU with or without VAT, outside the EU,
third-party trade, reversed construction VAT); `UnitPrice` allows 2 decimals for domestic and
4 for foreign customers. Amounts are `Decimal`, rounded half away from zero to cents.

Totals: `TotalAmount` includes VAT and rounding; `TotalVatAmount` is computed per VAT rate on
the summed net amounts of that rate; `TotalRoundings` is the whole-unit rounding done when the
company rounds its domestic currency (Swedish companies by default). On drafts `TotalAmount`
is in the invoice currency (with `...BaseCurrency` twins). Credit invoices
(`IsCreditInvoice`) carry negative quantities or prices and negative totals.
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
from worker.simulators.eaccounting.errors import gone_message, invalid, invalid_field
from worker.simulators.eaccounting.profiles import PER_EUR, SITUATION_ACCOUNT, currency_rate
from worker.simulators.eaccounting.state import MODELS, Company, date_text, money
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
        due_date(parse_datetime(invoice_date), terms_of(context.company, customer))
    )
    draft["IncludesVat"] = context.includes_vat
    draft["IsCreditInvoice"] = bool(clean.get("IsCreditInvoice"))
    for name in ("Notes", "MessageThreads", "SalesDocumentAttachments", "Persons"):
        draft.setdefault(name, [])
    return draft


def terms_of(company: Company, customer: Mapping[str, Any]) -> dict[str, Any]:
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


__all__ = ["ZERO", "SaleContext", "build_draft", "due_date", "row_amount_no_vat", "terms_of"]
