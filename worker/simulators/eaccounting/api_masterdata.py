"""`/v2` reference data (company settings, fiscal years, accounts, VAT codes, codings,
terms, units, bank accounts, currencies), customers and articles."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from worker.simulators.eaccounting.api import ApiCall, Result, one, paginate, route
from worker.simulators.eaccounting.errors import invalid, invalid_field, not_found
from worker.simulators.eaccounting.profiles import ACCOUNT_TYPES, PER_EUR
from worker.simulators.eaccounting.seed import fiscal_year_for
from worker.simulators.eaccounting.state import MODELS, Company, public, utc_text
from worker.simulators.modelcheck import Violation

_VAT_NUMBER = re.compile(r"^[A-Z]{2}[0-9A-Z]{8,12}$")


# ---------------------------------------------------------------- reference data


def _collection(path: str, item: str, attribute: str, model: str, label: str) -> None:
    """GET `path` (every row of the company's `attribute`, paged) and GET `path/{item}`
    (one row, or 404 naming the `label`)."""

    def list_rows(call: ApiCall) -> Result:
        return paginate(call, getattr(call.company, attribute), model)

    def get_row(call: ApiCall) -> Result:
        return 200, one(getattr(call.company, attribute), call.company, call.ident, label)

    route("GET", path)(list_rows)
    route("GET", f"{path}/{{{item}}}")(get_row)


for _path, _item, _attribute, _model, _label in (
    ("/v2/fiscalyears", "id", "fiscal_years", "FiscalYearApi", "Fiscal year"),
    ("/v2/articleaccountcodings", "articleAccountCodingId", "codings",
     "ArticleAccountCodingAPI", "Article account coding"),
    ("/v2/termsofpayments", "id", "terms", "TermsOfPaymentApi", "Terms of payment"),
    ("/v2/units", "id", "units", "UnitApi", "Unit"),
    ("/v2/bankaccounts", "bankAccountId", "bank_accounts", "BankAccountApi", "Bank account"),
):  # fmt: skip
    _collection(_path, _item, _attribute, _model, _label)


@route("GET", "/v2/companysettings")
def get_company_settings(call: ApiCall) -> Result:
    company = call.company
    settings = dict(company.settings)
    settings.update(
        NextCustomerInvoiceNumber=company.next_invoice_number,
        NextCustomerNumber=company.next_customer_number,
        NextArticleNumber=company.next_article_number,
    )
    return 200, settings


@route("GET", "/v2/accounts")
def list_current_accounts(call: ApiCall) -> Result:
    fiscal_year = fiscal_year_for(call.company, call.now) or call.company.fiscal_years[-1]
    return paginate(call, call.company.accounts[fiscal_year["Id"]], "AccountApi")


def _accounts_of(call: ApiCall) -> list[dict[str, Any]]:
    fiscal_year = one(
        call.company.fiscal_years, call.company, call.params["fiscalyearId"], "Fiscal year"
    )
    return call.company.accounts[fiscal_year["Id"]]


@route("GET", "/v2/accounts/{fiscalyearId}")
def list_accounts(call: ApiCall) -> Result:
    return paginate(call, _accounts_of(call), "AccountApi")


@route("GET", "/v2/accounts/{fiscalyearId}/{accountNumber}")
def get_account(call: ApiCall) -> Result:
    number = call.params["accountNumber"]
    found = next((a for a in _accounts_of(call) if a["Number"] == number), None)
    if found is None:
        raise not_found("Account", number)
    return 200, found


@route("GET", "/v2/accountTypes")
def list_account_types(call: ApiCall) -> Result:
    rows = [{"Type": k, "TypeDescription": v} for k, v in ACCOUNT_TYPES.items()]
    return paginate(call, rows, "AccountTypesAPI")


@route("GET", "/v2/vatcodes")
def list_vat_codes(call: ApiCall) -> Result:
    return paginate(call, call.company.vat_codes, "VatCodeApi")


@route("GET", "/v2/vatcodes/{id}")
def get_vat_code(call: ApiCall) -> Result:
    # The reference says this returns a paginated response, so it does.
    return paginate(
        call, [one(call.company.vat_codes, call.company, call.ident, "VAT code")], "VatCodeApi"
    )


@route("GET", "/v2/currencies")
def list_currencies(call: ApiCall) -> Result:
    return paginate(call, [{"Code": code} for code in sorted(PER_EUR)], "CurrencyApi")


# ---------------------------------------------------------------- customers


def _unpaid_by_customer(company: Company) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for invoice in company.invoices.values():
        key = invoice["CustomerId"]
        totals[key] = totals.get(key, Decimal(0)) + invoice["RemainingAmount"]
    return totals


def _present_customers(
    company: Company, customers: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    unpaid = _unpaid_by_customer(company)
    return [dict(c, UnpaidInvoicesAmount=unpaid.get(c["Id"], Decimal(0))) for c in customers]


@route("GET", "/v2/customers")
def list_customers(call: ApiCall) -> Result:
    return paginate(
        call, _present_customers(call.company, call.company.customers.values()), "CustomerApi"
    )


@route("GET", "/v2/customers/{customerId}")
def get_customer(call: ApiCall) -> Result:
    customer = one(call.company.customers.values(), call.company, call.ident, "Customer")
    return 200, public(_present_customers(call.company, [customer])[0])


@route("POST", "/v2/customers")
def create_customer(call: ApiCall) -> Result:
    customer = _customer_from_body(call, existing=None)
    call.company.customers[customer["Id"]] = customer
    call.company.next_customer_number = max(
        call.company.next_customer_number, _numeric(customer["CustomerNumber"]) + 1
    )
    return 201, public(customer)


@route("PUT", "/v2/customers/{customerId}")
def update_customer(call: ApiCall) -> Result:
    existing = one(call.company.customers.values(), call.company, call.ident, "Customer")
    customer = _customer_from_body(call, existing=existing)
    call.company.customers[customer["Id"]] = customer
    return 200, public(customer)


@route("DELETE", "/v2/customers/{customerId}")
def delete_customer(call: ApiCall) -> Result:
    customer = one(call.company.customers.values(), call.company, call.ident, "Customer")
    documents_of = [
        d
        for d in (*call.company.drafts.values(), *call.company.invoices.values())
        if d["CustomerId"] == customer["Id"]
    ]
    if documents_of:
        raise invalid_field(
            "customerId", "The customer has invoices or drafts and cannot be deleted."
        )
    del call.company.customers[customer["Id"]]
    return 200, None


def _numeric(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _customer_from_body(call: ApiCall, existing: dict[str, Any] | None) -> dict[str, Any]:
    company = call.company
    clean, problems = MODELS.check("CustomerApi", call.body)
    problems.extend(_customer_rules(company, clean, existing))
    if problems:
        raise invalid(problems)
    terms = company.find(company.terms, clean["TermsOfPaymentId"]) or {}
    customer = {**clean}
    customer.update(
        Id=existing["Id"] if existing else str(uuid.uuid4()),
        CustomerNumber=clean.get("CustomerNumber")
        or (existing["CustomerNumber"] if existing else str(company.next_customer_number)),
        CurrencyCode=clean.get("CurrencyCode") or company.currency,
        InvoiceCountryCode=clean.get("InvoiceCountryCode") or company.country,
        TermsOfPaymentId=terms.get("Id"),
        TermsOfPayment=dict(terms),
        ChangedUtc=utc_text(call.now),
        LastInvoiceDate=existing.get("LastInvoiceDate") if existing else None,
    )
    return customer


def _customer_rules(
    company: Company, clean: Mapping[str, Any], existing: Mapping[str, Any] | None
) -> list[Violation]:
    problems: list[Violation] = []

    def fail(name: str, message: str) -> None:
        problems.append(Violation(name, f"{name}: {message}"))

    terms_id = clean.get("TermsOfPaymentId")
    if terms_id and company.find(company.terms, terms_id) is None:
        fail("TermsOfPaymentId", f"No terms of payment '{terms_id}'.")
    number = clean.get("CustomerNumber")
    taken = {
        c["CustomerNumber"].lower()
        for c in company.customers.values()
        if existing is None or c["Id"] != existing["Id"]
    }
    if number and number.lower() in taken:
        fail("CustomerNumber", f"A customer with number '{number}' already exists.")
    currency = clean.get("CurrencyCode")
    if currency and currency not in PER_EUR:
        fail("CurrencyCode", f"Unknown currency '{currency}'.")
    vat_number = clean.get("VatNumber")
    if vat_number and not _VAT_NUMBER.match(vat_number):
        fail("VatNumber", "Format: 2 character country code followed by 8-12 characters.")
    if clean.get("ReverseChargeOnConstructionServices") and not vat_number:
        fail("VatNumber", "Must be set when ReverseChargeOnConstructionServices is true.")
    return problems


# ---------------------------------------------------------------- articles


@route("GET", "/v2/articles")
def list_articles(call: ApiCall) -> Result:
    return paginate(call, call.company.articles.values(), "ArticleApi")


@route("GET", "/v2/articles/{articleId}")
def get_article(call: ApiCall) -> Result:
    return 200, one(call.company.articles.values(), call.company, call.ident, "Article")


@route("POST", "/v2/articles")
def create_article(call: ApiCall) -> Result:
    article = _article_from_body(call, existing=None)
    call.company.articles[article["Id"]] = article
    call.company.next_article_number = max(
        call.company.next_article_number, _numeric(article["Number"]) + 1
    )
    return 201, public(article)


@route("PUT", "/v2/articles/{articleId}")
def update_article(call: ApiCall) -> Result:
    existing = one(call.company.articles.values(), call.company, call.ident, "Article")
    article = _article_from_body(call, existing=existing)
    call.company.articles[article["Id"]] = article
    return 200, public(article)


def _article_from_body(call: ApiCall, existing: dict[str, Any] | None) -> dict[str, Any]:
    company = call.company
    clean, problems = MODELS.check("ArticleApi", call.body)
    coding = company.find(company.codings, clean.get("CodingId", ""))
    unit = company.find(company.units, clean.get("UnitId", ""))
    if clean.get("CodingId") and coding is None:
        problems.append(
            Violation("CodingId", f"CodingId: No article account coding '{clean['CodingId']}'.")
        )
    if clean.get("UnitId") and unit is None:
        problems.append(Violation("UnitId", f"UnitId: No unit '{clean['UnitId']}'."))
    number = str(clean.get("Number") or "")
    if any(
        a["Number"].lower() == number.lower() and (existing is None or a["Id"] != existing["Id"])
        for a in company.articles.values()
    ):
        problems.append(
            Violation("Number", f"Number: An article with number '{number}' already exists.")
        )
    if problems or coding is None or unit is None:
        raise invalid(problems)
    article = {**clean}
    article.update(
        Id=existing["Id"] if existing else str(uuid.uuid4()),
        CodingName=coding["Name"],
        UnitName=unit["Name"],
        UnitAbbreviation=unit["Abbreviation"],
        IsServiceArticle=coding["Type"] == "Service",
        CreatedUtc=existing["CreatedUtc"] if existing else utc_text(call.now),
        ChangedUtc=utc_text(call.now),
    )
    return article
