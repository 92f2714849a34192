"""The eAccounting simulator, over real HTTP, checked against `reference/eaccounting`."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import REFERENCE as SHARED_REFERENCE
from tests.conftest import needs
from worker.simulators.common import Faults, SimulatorServer
from worker.simulators.eaccounting import DEFAULT_COMPANIES, EAccountingSimulator
from worker.simulators.eaccounting.api import ENDPOINTS, HANDLERS
from worker.simulators.eaccounting.filtering import FilterError, compile_filter
from worker.simulators.eaccounting.state import DATA_DIR, MODELS

REFERENCE = SHARED_REFERENCE / "eaccounting"
ALL_SCOPES = ["ea:sales", "ea:accounting", "ea:purchase"]
REDIRECT = "http://127.0.0.1:8000/connect/eaccounting/callback"


class FakeClock:
    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Api:
    """An httpx client for one company, with a bearer token."""

    def __init__(
        self, sim: EAccountingSimulator, url: str, company: str, scopes: list[str]
    ) -> None:
        self.sim = sim
        self.url = url
        self.company = company
        self.tokens = sim.issue_tokens(company, scopes)
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {self.tokens['access_token']}"},
            timeout=10,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return self.http.post(path, json=body, params=params)

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.http.put(path, json=body)

    def data(self, path: str, **params: Any) -> list[dict[str, Any]]:
        response = self.get(path, **params)
        assert response.status_code == 200, response.text
        return list(response.json()["Data"])

    def customer(self, filter_text: str) -> dict[str, Any]:
        return self.data("/v2/customers", **{"$filter": filter_text})[0]

    def article(self, rate: str, kind: str = "Goods") -> dict[str, Any]:
        codings = self.data(
            "/v2/articleaccountcodings",
            **{"$filter": f"VatRatePercent eq {rate} and Type eq '{kind}'"},
        )
        coding = codings[0]
        found = self.data("/v2/articles", **{"$filter": f"CodingId eq '{coding['Id']}'"})
        if found:
            return found[0]
        unit = self.data("/v2/units")[0]
        body = {
            "Number": f"T-{coding['Id'][:8]}",
            "Name": f"Test {rate}",
            "CodingId": coding["Id"],
            "UnitId": unit["Id"],
            "IsActive": True,
        }
        response = self.post("/v2/articles", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def close(self) -> None:
        self.http.close()


def row(
    article_id: str | None, quantity: Any = 10, price: Any = 1200.00, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"IsTextRow": False, "ReversedConstructionServicesVatFree": False}
    if article_id is not None:
        body["ArticleId"] = article_id
    body.update(Quantity=quantity, UnitPrice=price, **extra)
    return body


def draft(customer_id: str, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "CustomerId": customer_id,
        "RotReducedInvoicingType": 0,
        "EuThirdParty": False,
        "InvoiceDate": "2026-01-01",
        "Rows": rows,
    }
    body.update(extra)
    return body


def money(value: Any) -> Decimal:
    return Decimal(str(value))


def error_of(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert {"ErrorCode", "DeveloperErrorMessage", "ErrorId"} <= body.keys()
    assert isinstance(body["ErrorCode"], int)
    return str(body["DeveloperErrorMessage"])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def served(clock: FakeClock) -> Iterator[tuple[EAccountingSimulator, str]]:
    sim = EAccountingSimulator(clock=clock)
    for company_id, country in DEFAULT_COMPANIES:
        sim.add_company(company_id, country)
    server = SimulatorServer(sim.app).start()
    yield sim, server.url
    server.stop()


@pytest.fixture
def sim(served: tuple[EAccountingSimulator, str]) -> EAccountingSimulator:
    simulator = served[0]
    simulator.reset()
    simulator.faults.update(Faults().as_dict())
    simulator.update_config({"rate_limit_per_minute": 600, "token_lifetime_seconds": 3600})
    return simulator


@pytest.fixture
def url(served: tuple[EAccountingSimulator, str]) -> str:
    return served[1]


@pytest.fixture
def no(sim: EAccountingSimulator, url: str) -> Iterator[Api]:
    api = Api(sim, url, "demo-no", ALL_SCOPES)
    yield api
    api.close()


def own_server(**options: Any) -> tuple[EAccountingSimulator, SimulatorServer]:
    sim = EAccountingSimulator(**options)
    sim.add_company("acme", "NO")
    return sim, SimulatorServer(sim.app).start()


# ---------------------------------------------------------------- the reference itself


@needs(REFERENCE.exists(), f"the reference at {REFERENCE}")
def test_packaged_reference_files_are_the_reference() -> None:
    for name in ("models", "endpoints"):
        packaged = (DATA_DIR / f"eaccounting_{name}.json").read_bytes()
        assert packaged == (REFERENCE / f"{name}.json").read_bytes()


def test_every_simulated_route_is_a_reference_endpoint() -> None:
    templates = {(e.method, e.template) for e in ENDPOINTS}
    assert set(HANDLERS) <= templates
    for needed in [
        ("GET", "/v2/customers"),
        ("POST", "/v2/customerinvoicedrafts"),
        ("POST", "/v2/customerinvoicedrafts/{customerInvoiceDraftId}/convert"),
        ("POST", "/v2/customerinvoices/{invoiceId}/payments"),
        ("GET", "/v2/bankaccounts"),
    ]:
        assert needed in HANDLERS


# ---------------------------------------------------------------- validation from models.json


def _valid_draft(api: Api) -> dict[str, Any]:
    customer = api.customer("CustomerNumber eq '1001'")
    return draft(customer["Id"], [row(api.article("0.25")["Id"])])


def test_every_required_draft_field_is_enforced(no: Api) -> None:
    base = _valid_draft(no)
    assert no.post("/v2/customerinvoicedrafts", base).status_code == 201
    for name in MODELS.required("CustomerInvoiceDraftApi"):
        body = {k: v for k, v in base.items() if k != name}
        assert name in error_of(no.post("/v2/customerinvoicedrafts", body))
    for name in MODELS.required("CustomerInvoiceDraftRowApi"):
        body = dict(base, Rows=[{k: v for k, v in base["Rows"][0].items() if k != name}])
        assert f"Rows[0].{name}" in error_of(no.post("/v2/customerinvoicedrafts", body))


def _valid_customer(api: Api, **extra: Any) -> dict[str, Any]:
    terms = api.data("/v2/termsofpayments")[0]
    body = {
        "Name": "Ny Kunde AS",
        "InvoiceCity": "Oslo",
        "InvoicePostalCode": "0150",
        "IsActive": True,
        "IsPrivatePerson": False,
        "TermsOfPaymentId": terms["Id"],
    }
    body.update(extra)
    return body


def test_every_required_customer_field_is_enforced(no: Api) -> None:
    base = _valid_customer(no)
    for name in MODELS.required("CustomerApi"):
        body = {k: v for k, v in base.items() if k != name}
        assert name in error_of(no.post("/v2/customers", body))
    created = no.post("/v2/customers", base)
    assert created.status_code == 201, created.text
    assert created.json()["CustomerNumber"] and created.json()["CurrencyCode"] == "NOK"


def test_max_lengths_from_the_models(no: Api) -> None:
    name_max = MODELS.fields("CustomerApi")["Name"].max_length
    assert name_max is not None
    too_long = _valid_customer(no, Name="x" * (name_max + 1))
    assert "Name" in error_of(no.post("/v2/customers", too_long))
    assert no.post("/v2/customers", _valid_customer(no, Name="x" * name_max)).status_code == 201
    base = _valid_draft(no)
    text_max = MODELS.fields("CustomerInvoiceDraftRowApi")["Text"].max_length
    your_max = MODELS.fields("CustomerInvoiceDraftApi")["YourReference"].max_length
    assert text_max == 2000 and your_max is not None
    long_text = dict(base, Rows=[dict(base["Rows"][0], Text="t" * (text_max + 1))])
    assert "Rows[0].Text" in error_of(no.post("/v2/customerinvoicedrafts", long_text))
    long_ref = dict(base, YourReference="r" * (your_max + 1))
    assert "YourReference" in error_of(no.post("/v2/customerinvoicedrafts", long_ref))


def test_enum_range_type_and_decimal_rules(no: Api) -> None:
    base = _valid_draft(no)
    first = base["Rows"][0]
    cases = {
        "RotReducedInvoicingType": dict(base, RotReducedInvoicingType=3),
        "Rows[0].DiscountPercentage": dict(base, Rows=[dict(first, DiscountPercentage=1.5)]),
        "Rows[0].LineNumber": dict(base, Rows=[dict(first, LineNumber=1001)]),
        "Rows[0].Quantity": dict(base, Rows=[dict(first, Quantity=1.234)]),
        "EuThirdParty": dict(base, EuThirdParty="no"),
    }
    for field, body in cases.items():
        assert field in error_of(no.post("/v2/customerinvoicedrafts", body)), field
    four_decimals = dict(base, Rows=[dict(first, DiscountPercentage=0.1234)])
    assert no.post("/v2/customerinvoicedrafts", four_decimals).status_code == 201
    five_decimals = dict(base, Rows=[dict(first, DiscountPercentage=0.12345)])
    assert "DiscountPercentage" in error_of(no.post("/v2/customerinvoicedrafts", five_decimals))


def test_field_names_bind_case_insensitively(no: Api) -> None:
    base = _valid_draft(no)
    lowered = {k.lower(): v for k, v in base.items()}
    response = no.post("/v2/customerinvoicedrafts", lowered)
    assert response.status_code == 201, response.text
    assert response.json()["CustomerId"] == base["CustomerId"]


def test_non_text_row_needs_an_article(no: Api) -> None:
    base = _valid_draft(no)
    body = dict(base, Rows=[base["Rows"][0], row(None)])
    message = error_of(no.post("/v2/customerinvoicedrafts", body))
    assert "Rows[1].ArticleId" in message and "IsTextRow" in message
    text_only = dict(
        base,
        Rows=[
            base["Rows"][0],
            {"IsTextRow": True, "ReversedConstructionServicesVatFree": False, "Text": "Thanks!"},
        ],
    )
    assert no.post("/v2/customerinvoicedrafts", text_only).status_code == 201


def test_references_must_exist(no: Api) -> None:
    base = _valid_draft(no)
    missing = "00000000-0000-0000-0000-000000000000"
    assert "CustomerId" in error_of(
        no.post("/v2/customerinvoicedrafts", dict(base, CustomerId=missing))
    )
    bad_article = dict(base, Rows=[row(missing)])
    assert "Rows[0].ArticleId" in error_of(no.post("/v2/customerinvoicedrafts", bad_article))
    bad_terms = _valid_customer(no, TermsOfPaymentId=missing)
    assert "TermsOfPaymentId" in error_of(no.post("/v2/customers", bad_terms))
    unit = no.data("/v2/units")[0]
    article = {
        "Number": "X1",
        "Name": "X",
        "CodingId": missing,
        "UnitId": unit["Id"],
        "IsActive": True,
    }
    assert "CodingId" in error_of(no.post("/v2/articles", article))


def test_unit_price_decimals_domestic_and_foreign(no: Api) -> None:
    article = no.article("0.25")["Id"]
    domestic = no.customer("CustomerNumber eq '1001'")["Id"]
    foreign = no.customer("InvoiceCountryCode eq 'US'")["Id"]
    assert "Rows[0].UnitPrice" in error_of(
        no.post("/v2/customerinvoicedrafts", draft(domestic, [row(article, 1, 10.123)]))
    )
    assert (
        no.post("/v2/customerinvoicedrafts", draft(domestic, [row(article, 1, 10.12)])).status_code
        == 201
    )
    assert (
        no.post("/v2/customerinvoicedrafts", draft(foreign, [row(article, 1, 10.1234)])).status_code
        == 201
    )
    assert "Rows[0].UnitPrice" in error_of(
        no.post("/v2/customerinvoicedrafts", draft(foreign, [row(article, 1, 10.12345)]))
    )


def test_customer_numbers_are_unique(no: Api) -> None:
    duplicate = _valid_customer(no, CustomerNumber="1001")
    assert "CustomerNumber" in error_of(no.post("/v2/customers", duplicate))


# ---------------------------------------------------------------- VAT, accounts, totals


def test_domestic_totals_use_the_article_coding(no: Api, sim: EAccountingSimulator) -> None:
    customer = no.customer("CustomerNumber eq '1001'")
    body = draft(
        customer["Id"],
        [
            row(no.article("0.25")["Id"], 10, 1200.00),
            row(no.article("0.15")["Id"], 3, 99.99, DiscountPercentage=0.1),
        ],
    )
    created = no.post("/v2/customerinvoicedrafts", body).json()
    net = Decimal("12000.00") + Decimal("269.97")  # 3 * 99.99 * 0.9 = 269.973 -> 269.97
    vat = Decimal("3000.00") + Decimal("40.50")  # 269.97 * 0.15 = 40.4955 -> 40.50
    assert money(created["TotalVatAmount"]) == vat
    assert money(created["TotalAmount"]) == net + vat
    assert money(created["TotalRoundings"]) == 0
    assert created["InvoiceCurrencyCode"] == "NOK" and created["IncludesVat"] is False
    stored = sim.state_dump()["demo-no"]["drafts"][0]
    assert {r["_SalesAccount"] for r in stored["Rows"]} == {3000, 3010}


def test_swedish_invoices_round_to_whole_kronor(sim: EAccountingSimulator, url: str) -> None:
    se = Api(sim, url, "demo-se", ALL_SCOPES)
    customer = se.customer("CustomerNumber eq '1001'")
    created = se.post(
        "/v2/customerinvoicedrafts",
        draft(customer["Id"], [row(se.article("0.25")["Id"], 3, 1100.50)]),
    )
    body = created.json()
    assert money(body["TotalVatAmount"]) == Decimal("825.38")
    assert money(body["TotalAmount"]) == Decimal("4127")
    assert money(body["TotalRoundings"]) == Decimal("0.12")
    se.close()


def test_finnish_rate_and_vat_codes_per_country(sim: EAccountingSimulator, url: str) -> None:
    expected = {
        "demo-no": {"0.25", "0.15", "0.12", "0"},
        "demo-se": {"0.25", "0.12", "0.06", "0"},
        "demo-fi": {"0.255", "0.14", "0.1", "0"},
        "demo-nl": {"0.21", "0.09", "0"},
    }
    for company, rates in expected.items():
        api = Api(sim, url, company, ALL_SCOPES)
        vat_rates = {str(money(v["VatRate"]).normalize()) for v in api.data("/v2/vatcodes")}
        coding_rates = {
            str(money(c["VatRatePercent"]).normalize())
            for c in api.data("/v2/articleaccountcodings")
        }
        assert rates <= vat_rates and rates == coding_rates, company
        api.close()
    fi = Api(sim, url, "demo-fi", ALL_SCOPES)
    customer = fi.customer("CustomerNumber eq '1001'")
    body = fi.post(
        "/v2/customerinvoicedrafts", draft(customer["Id"], [row(fi.article("0.255")["Id"], 1, 100)])
    ).json()
    assert money(body["TotalVatAmount"]) == Decimal("25.50")
    fi.close()


def test_foreign_sales_are_vat_free_on_the_right_account(
    sim: EAccountingSimulator, url: str
) -> None:
    nl = Api(sim, url, "demo-nl", ALL_SCOPES)
    article = nl.article("0.21")["Id"]
    cases = {
        "InvoiceCountryCode eq 'DE' and IsPrivatePerson eq false": (Decimal(0), 8100),
        "InvoiceCountryCode eq 'DE' and IsPrivatePerson eq true": (Decimal("21.00"), 8300),
        "InvoiceCountryCode eq 'US'": (Decimal(0), 8200),
        "InvoiceCountryCode eq 'NL'": (Decimal("21.00"), 8000),
    }
    for filter_text, (vat, account) in cases.items():
        customer = nl.customer(filter_text)
        created = nl.post(
            "/v2/customerinvoicedrafts", draft(customer["Id"], [row(article, 1, 100)])
        )
        assert money(created.json()["TotalVatAmount"]) == vat, filter_text
        stored = next(
            d for d in sim.state_dump()["demo-nl"]["drafts"] if d["Id"] == created.json()["Id"]
        )
        assert stored["Rows"][0]["_SalesAccount"] == account, filter_text
    nl.close()


def test_only_dutch_accounts_carry_reference_code_and_type(
    sim: EAccountingSimulator, url: str
) -> None:
    for company in ("demo-no", "demo-se", "demo-fi", "demo-nl"):
        api = Api(sim, url, company, ALL_SCOPES)
        year = api.data("/v2/fiscalyears")[0]
        first = api.get(f"/v2/accounts/{year['Id']}").json()
        assert (
            first["Meta"]["TotalNumberOfResults"] > 50 and first["Meta"]["TotalNumberOfPages"] >= 2
        )
        accounts = first["Data"] + api.data(f"/v2/accounts/{year['Id']}", **{"$page": 2})
        dutch = company == "demo-nl"
        assert all(("ReferenceCode" in a and "Type" in a) == dutch for a in accounts), company
        assert all(a["FiscalYearId"] == year["Id"] for a in accounts)
        api.close()


def test_company_settings_and_reference_lists(sim: EAccountingSimulator, url: str) -> None:
    currencies = {"demo-no": "NOK", "demo-se": "SEK", "demo-fi": "EUR", "demo-nl": "EUR"}
    for company, currency in currencies.items():
        api = Api(sim, url, company, ALL_SCOPES)
        settings = api.get("/v2/companysettings").json()
        assert (
            settings["CurrencyCode"] == currency and settings["CountryCode"] == company[-2:].upper()
        )
        years = [y["StartDate"][:4] for y in api.data("/v2/fiscalyears")]
        assert years == ["2025", "2026", "2027"]
        assert (
            api.data("/v2/termsofpayments")
            and api.data("/v2/units")
            and api.data("/v2/bankaccounts")
        )
        assert all(a["CodingId"] for a in api.data("/v2/articles"))
        api.close()


# ---------------------------------------------------------------- lifecycle


def test_convert_books_an_invoice_and_deletes_the_draft(no: Api) -> None:
    base = _valid_draft(no)
    first = no.post("/v2/customerinvoicedrafts", base).json()
    second = no.post("/v2/customerinvoicedrafts", base).json()
    booked = no.post(
        f"/v2/customerinvoicedrafts/{first['Id']}/convert", keepOriginalDraftDate="true"
    )
    assert booked.status_code == 201, booked.text
    invoice = booked.json()
    assert invoice["CreatedFromDraftId"] == first["Id"]
    assert invoice["InvoiceDate"].startswith("2026-01-01")
    assert money(invoice["TotalAmountInvoiceCurrency"]) == money(first["TotalAmount"])
    assert money(invoice["RemainingAmount"]) == money(first["TotalAmount"])
    assert no.get(f"/v2/customerinvoicedrafts/{first['Id']}").status_code == 404
    assert no.post(f"/v2/customerinvoicedrafts/{first['Id']}/convert").status_code == 404
    next_one = no.post(f"/v2/customerinvoicedrafts/{second['Id']}/convert").json()
    assert next_one["InvoiceNumber"] == invoice["InvoiceNumber"] + 1
    found = no.data("/v2/customerinvoices", **{"$filter": f"CreatedFromDraftId eq '{first['Id']}'"})
    assert [i["Id"] for i in found] == [invoice["Id"]]


def test_convert_uses_today_unless_the_draft_date_is_kept(no: Api, clock: FakeClock) -> None:
    base = _valid_draft(no)
    created = no.post("/v2/customerinvoicedrafts", dict(base, InvoiceDate="2025-06-30")).json()
    invoice = no.post(f"/v2/customerinvoicedrafts/{created['Id']}/convert").json()
    assert invoice["InvoiceDate"].startswith("2026-01-01")  # the fake clock's today


def test_booking_needs_an_open_fiscal_year(no: Api) -> None:
    base = _valid_draft(no)
    created = no.post("/v2/customerinvoicedrafts", dict(base, InvoiceDate="2024-06-01")).json()
    path = f"/v2/customerinvoicedrafts/{created['Id']}/convert"
    assert "InvoiceDate" in error_of(no.post(path, keepOriginalDraftDate="true"))
    assert no.get(f"/v2/customerinvoicedrafts/{created['Id']}").status_code == 200


def test_unknown_paths_tokens_and_unsimulated_endpoints(no: Api, url: str) -> None:
    assert error_of(httpx.get(f"{url}/v2/customers"), 401)
    assert error_of(httpx.get(f"{url}/v2/customers", headers={"Authorization": "Bearer nope"}), 401)
    assert error_of(no.get("/v2/no-such-thing"), 404)
    assert error_of(no.get("/v2/customers/00000000-0000-0000-0000-000000000000"), 404)
    assert "not simulated" in error_of(no.get("/v2/quotes"), 501)
    assert error_of(no.http.patch("/v2/customers"), 405)


def test_convert_checks_the_callers_expected_totals(no: Api) -> None:
    created = no.post("/v2/customerinvoicedrafts", _valid_draft(no)).json()
    wrong = {"TotalAmountInvoiceCurrency": 1.0}
    assert "TotalAmountInvoiceCurrency" in error_of(
        no.post(f"/v2/customerinvoicedrafts/{created['Id']}/convert", wrong)
    )
    right = {
        "TotalAmountInvoiceCurrency": created["TotalAmount"],
        "TotalVatAmountInvoiceCurrency": created["TotalVatAmount"],
    }
    assert no.post(f"/v2/customerinvoicedrafts/{created['Id']}/convert", right).status_code == 201


def test_booked_invoices_are_immutable(no: Api) -> None:
    created = no.post("/v2/customerinvoicedrafts", _valid_draft(no)).json()
    invoice = no.post(f"/v2/customerinvoicedrafts/{created['Id']}/convert").json()
    assert no.put(f"/v2/customerinvoices/{invoice['Id']}", invoice).status_code == 405
    assert no.http.delete(f"/v2/customerinvoices/{invoice['Id']}").status_code == 405


def test_drafts_can_be_updated_and_deleted(no: Api) -> None:
    base = _valid_draft(no)
    created = no.post("/v2/customerinvoicedrafts", base).json()
    updated = no.put(
        f"/v2/customerinvoicedrafts/{created['Id']}",
        dict(base, Rows=[row(base["Rows"][0]["ArticleId"], 1, 100)]),
    )
    assert updated.status_code == 200 and money(updated.json()["TotalAmount"]) == Decimal("125")
    assert updated.json()["CreatedUtc"] == created["CreatedUtc"]
    assert no.http.delete(f"/v2/customerinvoicedrafts/{created['Id']}").status_code == 200
    assert no.get(f"/v2/customerinvoicedrafts/{created['Id']}").status_code == 404


def _booked(api: Api, quantity: int = 10, price: float = 1200.00, **extra: Any) -> dict[str, Any]:
    customer = api.customer("CustomerNumber eq '1001'")
    body = draft(customer["Id"], [row(api.article("0.25")["Id"], quantity, price)], **extra)
    created = api.post("/v2/customerinvoicedrafts", body)
    assert created.status_code == 201, created.text
    booked = api.post(f"/v2/customerinvoicedrafts/{created.json()['Id']}/convert")
    assert booked.status_code == 201, booked.text
    return dict(booked.json())


def _payment(api: Api, amount: Any, kind: int = 1, **extra: Any) -> dict[str, Any]:
    bank = api.data("/v2/bankaccounts", **{"$filter": "IsDefaultChequeAccount eq true"})[0]
    body = {
        "PaymentDate": "2026-01-01",
        "PaymentAmount": amount,
        "PaymentCurrency": "NOK",
        "PaymentType": kind,
        "CompanyBankAccountId": bank["Id"],
    }
    body.update(extra)
    return body


def test_payments_reduce_the_remaining_amount(no: Api, sim: EAccountingSimulator) -> None:
    invoice = _booked(no)  # 15000.00
    path = f"/v2/customerinvoices/{invoice['Id']}/payments"
    assert no.post(path, _payment(no, 5000)).status_code == 201
    after = no.get(f"/v2/customerinvoices/{invoice['Id']}").json()
    assert money(after["RemainingAmount"]) == Decimal("10000") and after["PaymentStatus"] != 0
    assert "PaymentAmount" in error_of(no.post(path, _payment(no, 10000.01)))
    assert "PaymentAmount" in error_of(no.post(path, _payment(no, 9000, kind=2)))
    assert "PaymentCurrency" in error_of(no.post(path, _payment(no, 1, PaymentCurrency="EUR")))
    assert "PaymentDate" in error_of(no.post(path, _payment(no, 1, PaymentDate="2026-01-02")))
    inactive = no.data("/v2/bankaccounts", **{"$filter": "IsActive eq false"})[0]
    assert "CompanyBankAccountId" in error_of(
        no.post(path, _payment(no, 1, CompanyBankAccountId=inactive["Id"]))
    )
    for name in MODELS.required("InvoicePaymentApi"):
        body = {k: v for k, v in _payment(no, 1).items() if k != name}
        assert name in error_of(no.post(path, body))
    assert no.post(path, _payment(no, 10000, kind=2)).status_code == 201
    paid = no.get(f"/v2/customerinvoices/{invoice['Id']}").json()
    assert money(paid["RemainingAmount"]) == 0 and paid["PaymentStatus"] == 0
    assert paid["PaymentDate"].startswith("2026-01-01")
    dumped = next(i for i in sim.state_dump()["demo-no"]["invoices"] if i["Id"] == invoice["Id"])
    assert [p["PaymentAmount"] for p in dumped["Payments"]] == [5000, 10000]


def test_credit_invoices_are_negative_and_link_to_the_original(no: Api) -> None:
    original = _booked(no)
    customer_id = original["CustomerId"]
    article = original["Rows"][0]["ArticleId"]
    positive = draft(customer_id, [row(article, 1, 100)], IsCreditInvoice=True)
    assert "IsCreditInvoice" in error_of(no.post("/v2/customerinvoicedrafts", positive))
    negative_normal = draft(customer_id, [row(article, -1, 100)])
    assert "credit" in error_of(no.post("/v2/customerinvoicedrafts", negative_normal))
    credit_draft = no.post(
        "/v2/customerinvoicedrafts",
        draft(customer_id, [row(article, -2, 1200)], IsCreditInvoice=True),
    )
    assert credit_draft.status_code == 201 and money(credit_draft.json()["TotalAmount"]) == Decimal(
        "-3000"
    )
    direct = {
        "CustomerId": customer_id,
        "EuThirdParty": False,
        "RotReducedInvoicingType": 0,
        "IsCreditInvoice": True,
        "ReferringInvoiceId": original["Id"],
        "InvoiceDate": "2026-01-01",
        "Rows": [{"ArticleId": article, "Quantity": -10, "UnitPrice": 1200}],
    }
    credit = no.post("/v2/customerinvoices", direct)
    assert credit.status_code == 201, credit.text
    assert (
        money(credit.json()["TotalAmount"]) == Decimal("-15000")
        and credit.json()["IsCreditInvoice"]
    )
    credited = no.get(f"/v2/customerinvoices/{original['Id']}").json()
    assert credited["CreditedBy"] == [{"CreditInvoiceId": credit.json()["Id"]}]
    refund = _payment(no, -15000, kind=2)
    assert (
        no.post(f"/v2/customerinvoices/{credit.json()['Id']}/payments", refund).status_code == 201
    )


# ---------------------------------------------------------------- lists: $filter and pages


def test_customer_filters(no: Api) -> None:
    def numbers(text: str) -> list[str]:
        return [
            c["CustomerNumber"]
            for c in no.data("/v2/customers", **{"$filter": text, "$pagesize": 100})
        ]

    assert numbers("CustomerNumber eq '1001'") == ["1001"]
    assert numbers("CustomerNumber eq '1001' or CustomerNumber eq '1003'") == ["1001", "1003"]
    assert "1001" not in numbers("CustomerNumber ne '1001'")
    first = no.customer("CustomerNumber eq '1001'")
    word = first["Name"].split()[0]
    assert "1001" in numbers(f"startswith(Name, '{word.lower()}')")
    assert "1001" in numbers(f"contains(Name,'{word[1:4]}') and IsActive eq true")
    assert numbers("Name eq 'Nobody at all'") == []
    assert numbers(
        "(InvoiceCountryCode eq 'DE' or InvoiceCountryCode eq 'US') and not IsPrivatePerson eq true"
    )
    for bad in ("Nope eq 1", "CustomerNumber eq", "CustomerNumber eq '1' and"):
        assert no.get("/v2/customers", **{"$filter": bad}).status_code == 400


def test_documents_can_be_found_by_fingerprint(no: Api, clock: FakeClock) -> None:
    base = _valid_draft(no)
    before = no.post("/v2/customerinvoicedrafts", dict(base, InvoiceDate="2026-01-01")).json()
    target = no.post(
        "/v2/customerinvoicedrafts", dict(base, InvoiceDate="2026-01-01", Rows=base["Rows"] * 2)
    ).json()
    customer, total = target["CustomerId"], target["TotalAmount"]
    fingerprint = (
        f"CustomerId eq {customer} and InvoiceDate eq 2026-01-01 and InvoiceCurrencyCode eq 'NOK' "
        f"and TotalAmount eq {total} and CreatedUtc ge {before['CreatedUtc']} and IsCreditInvoice eq false"
    )
    found = no.data("/v2/customerinvoicedrafts", **{"$filter": fingerprint})
    assert [(d["Id"], len(d["Rows"])) for d in found] == [(target["Id"], 2)]
    invoice = no.post(
        f"/v2/customerinvoicedrafts/{target['Id']}/convert", keepOriginalDraftDate="true"
    ).json()
    invoice_filter = (
        f"CustomerId eq guid'{customer}' and InvoiceDate eq datetime'2026-01-01T00:00:00' and "
        f"CurrencyCode eq 'NOK' and TotalAmount eq {total} and IsCreditInvoice eq false "
        f"and CreatedUtc ge {invoice['CreatedUtc']}"
    )
    assert [i["Id"] for i in no.data("/v2/customerinvoices", **{"$filter": invoice_filter})] == [
        invoice["Id"]
    ]
    later = no.data("/v2/customerinvoices", **{"$filter": "InvoiceDate gt 2026-01-01"})
    assert later == []


def test_pagination_edges(no: Api) -> None:
    def meta(**params: Any) -> tuple[int, dict[str, Any]]:
        body = no.get("/v2/customerinvoicedrafts", **params).json()
        return len(body["Data"]), body["Meta"]

    count, empty = meta()
    assert count == 0 and empty["TotalNumberOfResults"] == 0 and empty["TotalNumberOfPages"] == 0
    base = _valid_draft(no)
    for _ in range(50):
        assert no.post("/v2/customerinvoicedrafts", base).status_code == 201
    count, exact = meta()
    assert count == 50 and exact["TotalNumberOfPages"] == 1 and exact["PageSize"] == 50
    assert meta(**{"$page": 2})[0] == 0
    no.post("/v2/customerinvoicedrafts", base)
    count, over = meta()
    assert count == 50 and over["TotalNumberOfPages"] == 2 and over["TotalNumberOfResults"] == 51
    count, second = meta(**{"$page": 2})
    assert count == 1 and second["CurrentPage"] == 2
    assert meta(**{"$pagesize": 20, "$page": 3})[0] == 11
    assert meta(**{"$pagesize": 5000})[1]["PageSize"] == 1000
    assert set(exact) == set(MODELS.fields("PaginationMetadata"))
    for bad in ({"$page": 0}, {"$pagesize": "x"}):
        assert no.get("/v2/customerinvoicedrafts", **bad).status_code == 400
    customers = no.get("/v2/customers").json()["Meta"]
    assert customers["TotalNumberOfResults"] > 50 and customers["TotalNumberOfPages"] == 2


# ---------------------------------------------------------------- scopes


def test_missing_area_scope_is_an_authorization_error(sim: EAccountingSimulator, url: str) -> None:
    """A 403 in eAccounting's error shape; its wording (not the reference's) names no scope,
    so a client must tell from endpoints.json which scope the endpoint accepts."""
    accounting = Api(sim, url, "demo-no", ["ea:accounting"])
    error_of(accounting.get("/v2/customerinvoicedrafts"), 403)
    assert accounting.get("/v2/vatcodes").status_code == 200
    sales = Api(sim, url, "demo-no", ["ea:sales"])
    messages = {error_of(sales.get("/v2/bankaccounts"), 403) for _ in range(12)}
    assert not any("ea:" in m for m in messages) and len(messages) > 1  # worded at random
    error_of(sales.get("/v2/vatcodes"), 403)
    readonly = Api(sim, url, "demo-no", ["ea:sales_readonly", "ea:purchase_readonly"])
    assert readonly.get("/v2/bankaccounts").status_code == 200
    error_of(readonly.post("/v2/customerinvoicedrafts", {}), 403)
    for api in (accounting, sales, readonly):
        api.close()


def test_every_simulated_endpoint_enforces_its_reference_scopes(
    sim: EAccountingSimulator, url: str
) -> None:
    areas = [
        "ea:sales",
        "ea:sales_readonly",
        "ea:purchase",
        "ea:purchase_readonly",
        "ea:accounting",
        "ea:accounting_readonly",
    ]
    clients: dict[tuple[str, ...], Api] = {}
    for endpoint in ENDPOINTS:
        if (endpoint.method, endpoint.template) not in HANDLERS:
            continue
        others = tuple(a for a in areas if a not in endpoint.scopes)
        if not others:
            continue
        api = clients.setdefault(others, Api(sim, url, "demo-no", list(others)))
        path = endpoint.template.replace("{", "").replace("}", "")
        response = api.http.request(endpoint.method, path, json={})
        assert response.status_code == 403, (endpoint.method, endpoint.template)
    for api in clients.values():
        api.close()


# ---------------------------------------------------------------- OAuth


def test_authorization_code_flow_single_use_and_client_auth() -> None:
    sim, server = own_server()
    try:
        params = {
            "client_id": "ledgerpush",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "ea:api offline_access ea:sales",
            "state": "xyz",
            "prompt": "select_account",
            "acr_values": "service:44643EB1-3F76-4C1C-A672-402AE8085934",
            "login_hint": "acme",
        }
        with httpx.Client(base_url=server.url, follow_redirects=False) as http:
            answer = http.get("/connect/authorize", params=params)
            assert answer.status_code == 302
            location = urlsplit(answer.headers["location"])
            query = parse_qs(location.query)
            assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
            assert query["state"] == ["xyz"]
            form = {
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": REDIRECT,
            }
            wrong = http.post("/connect/token", data=form, auth=("ledgerpush", "wrong"))
            assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
            tokens = http.post("/connect/token", data=form, auth=("ledgerpush", "sim-secret"))
            assert tokens.status_code == 200, tokens.text
            assert {
                "access_token",
                "refresh_token",
                "expires_in",
                "token_type",
            } <= tokens.json().keys()
            again = http.post(
                "/connect/token",
                data={**form, "client_id": "ledgerpush", "client_secret": "sim-secret"},
            )
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
            api = http.get(
                "/v2/customers",
                headers={"Authorization": f"Bearer {tokens.json()['access_token']}"},
            )
            assert api.status_code == 200
            assert sim.token_calls_by_grant == {"authorization_code": 3}
    finally:
        server.stop()


def test_authorize_errors_and_consent_page() -> None:
    sim, server = own_server(auto_approve=False)
    sim.add_company("other", "SE")
    try:
        good = {
            "client_id": "ledgerpush",
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": "ea:api offline_access ea:sales",
            "state": "s1",
        }
        with httpx.Client(base_url=server.url, follow_redirects=False) as http:
            bad_client = http.get("/connect/authorize", params={**good, "client_id": "evil"})
            assert bad_client.status_code == 400 and "location" not in bad_client.headers
            for uri in ("ftp://x/cb", "http://attacker.example/cb", "/relative"):
                bad_redirect = http.get("/connect/authorize", params={**good, "redirect_uri": uri})
                assert bad_redirect.status_code == 400 and "location" not in bad_redirect.headers
            no_offline = http.get("/connect/authorize", params={**good, "scope": "ea:api ea:sales"})
            query = parse_qs(urlsplit(no_offline.headers["location"]).query)
            assert query["error"] == ["invalid_scope"] and query["state"] == ["s1"]
            page = http.get("/connect/authorize", params=good)
            assert page.status_code == 200 and "acme" in page.text and "other" in page.text
            allowed = http.post(
                "/connect/authorize", data={**good, "company_id": "other", "decision": "allow"}
            )
            code = parse_qs(urlsplit(allowed.headers["location"]).query)["code"][0]
            form = {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT + "x",
            }
            mismatch = http.post("/connect/token", data=form, auth=("ledgerpush", "sim-secret"))
            assert mismatch.json()["error"] == "invalid_grant"
            denied = http.post(
                "/connect/authorize", data={**good, "company_id": "other", "decision": "deny"}
            )
            assert parse_qs(urlsplit(denied.headers["location"]).query)["error"] == [
                "access_denied"
            ]
    finally:
        server.stop()


def _refresh(http: httpx.Client, token: str) -> httpx.Response:
    auth = base64.b64encode(b"ledgerpush:sim-secret").decode()
    return http.post(
        "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers={"Authorization": f"Basic {auth}"},
    )


def test_access_tokens_expire_and_refresh_reuses_the_token() -> None:
    clock = FakeClock()
    sim, server = own_server(clock=clock, token_lifetime_seconds=60)
    try:
        tokens = sim.issue_tokens("acme", ["ea:sales"])
        assert tokens["expires_in"] == 60
        with httpx.Client(base_url=server.url) as http:
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            assert http.get("/v2/customers", headers=bearer).status_code == 200
            clock.advance(61)
            assert error_of(http.get("/v2/customers", headers=bearer), 401)
            refreshed = _refresh(http, tokens["refresh_token"]).json()
            assert refreshed["refresh_token"] == tokens["refresh_token"]
            assert (
                http.get(
                    "/v2/customers",
                    headers={"Authorization": f"Bearer {refreshed['access_token']}"},
                ).status_code
                == 200
            )
            sim.expire_access_tokens("acme")
            assert (
                http.get(
                    "/v2/customers",
                    headers={"Authorization": f"Bearer {refreshed['access_token']}"},
                ).status_code
                == 401
            )
            sim.revoke_refresh_tokens("acme")
            revoked = _refresh(http, tokens["refresh_token"])
            assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"
    finally:
        server.stop()


def test_one_time_refresh_tokens_with_grace_period() -> None:
    clock = FakeClock()
    sim, server = own_server(clock=clock, refresh_mode="one_time", refresh_grace_seconds=10)
    try:
        first = sim.issue_tokens("acme", ["ea:sales"])["refresh_token"]
        with httpx.Client(base_url=server.url) as http:
            second = _refresh(http, first).json()["refresh_token"]
            assert second != first
            clock.advance(5)
            within_grace = _refresh(http, first)
            assert within_grace.status_code == 200
            clock.advance(6)
            late = _refresh(http, first)
            assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
            assert _refresh(http, second).status_code == 200
            sim.update_config({"refresh_grace_seconds": 0})
            third = _refresh(http, within_grace.json()["refresh_token"]).json()["refresh_token"]
            assert _refresh(http, third).status_code == 200
            assert _refresh(http, third).status_code == 400
    finally:
        server.stop()


# ---------------------------------------------------------------- rate limit and faults


def test_rate_limit_per_client_and_endpoint() -> None:
    clock = FakeClock()
    sim, server = own_server(clock=clock, rate_limit_per_minute=3)
    try:
        api = Api(sim, server.url, "acme", ALL_SCOPES)
        assert [api.get("/v2/units").status_code for _ in range(3)] == [200] * 3
        clock.advance(5)
        throttled = api.get("/v2/units")
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "55"
        body = throttled.json()
        assert (
            set(body) == {"ErrorCode", "DeveloperErrorMessage", "ErrorId"}
            and body["ErrorCode"] == 4010
        )
        assert body["DeveloperErrorMessage"] == (
            "API calls quota exceeded! maximum admitted 3 per Minute. Try again in 55 seconds."
        )
        assert api.get("/v2/customers").status_code == 200
        assert api.get(f"/v2/units/{api.data('/v2/customers')[0]['Id']}").status_code == 404
        clock.advance(56)
        assert api.get("/v2/units").status_code == 200
        api.close()
    finally:
        server.stop()


def test_product_variant_limits_the_endpoints(no: Api, sim: EAccountingSimulator) -> None:
    """endpoints.json lists the variants of each endpoint: Bookkeeping has no sales."""
    draft = _valid_draft(no)
    sim.companies[no.company].settings["ProductVariant"] = 3
    try:
        refused = no.post("/v2/customerinvoicedrafts", draft)
        assert refused.status_code == 403
        assert "Bookkeeping" in refused.json()["DeveloperErrorMessage"]
        assert no.get("/v2/bankaccounts").status_code == 200  # Bookkeeping has these
    finally:
        sim.companies[no.company].settings["ProductVariant"] = 1


@pytest.mark.parametrize("scope", ["company", "client"])
def test_rate_limit_scope_company_or_whole_client(scope: str) -> None:
    """Two companies of one client: separate budgets per company, or one shared budget
    when the simulator takes the strict reading of "per client"."""
    sim, server = own_server(clock=FakeClock(), rate_limit_per_minute=2)
    sim.add_company("acme-se", "SE")
    httpx.put(f"{server.url}/_control/config", json={"rate_limit_scope": scope}).raise_for_status()
    try:
        first, second = (Api(sim, server.url, c, ALL_SCOPES) for c in ("acme", "acme-se"))
        assert [first.get("/v2/units").status_code for _ in range(2)] == [200, 200]
        expected = 200 if scope == "company" else 429
        assert second.get("/v2/units").status_code == expected
        first.close()
        second.close()
    finally:
        server.stop()


def test_fault_injection_drop_after_write_5xx_and_seeds(no: Api, sim: EAccountingSimulator) -> None:
    base = _valid_draft(no)
    sim.faults.update({"drop_after_write_rate": 1.0})
    with pytest.raises(httpx.TransportError):
        no.post("/v2/customerinvoicedrafts", base)
    assert no.get("/v2/customerinvoicedrafts").json()["Meta"]["TotalNumberOfResults"] == 1
    sim.faults.update({"drop_after_write_rate": 0.0, "error_rate": 1.0})
    assert no.get("/v2/customers").status_code == 503
    assert httpx.get(f"{no.url}/_control/state").status_code == 200
    sim.faults.update({"error_rate": 0.5, "seed": 7})
    first = [no.get("/v2/units").status_code for _ in range(12)]
    sim.faults.update({"seed": 8})
    no.get("/v2/units")  # the injector re-seeds on its first roll after a change
    sim.faults.update({"seed": 7})
    assert [no.get("/v2/units").status_code for _ in range(12)] == first
    assert set(first) == {200, 503}
    sim.faults.update({"error_rate": 0.0, "throttle_rate": 1.0})
    sim.update_config({"rate_limit_per_minute": 250})
    injected = no.get("/v2/units")
    assert injected.status_code == 429 and injected.headers["Retry-After"] == "1"
    assert injected.json()["DeveloperErrorMessage"] == (
        "API calls quota exceeded! maximum admitted 250 per Minute. Try again in 1 seconds."
    )


# ---------------------------------------------------------------- control routes


def test_control_routes(sim: EAccountingSimulator, url: str) -> None:
    with httpx.Client(base_url=url) as http:
        assert (
            http.post(
                "/_control/companies", json={"company_id": "ctl-nl", "country": "NL"}
            ).status_code
            == 201
        )
        tokens = http.post(
            "/_control/companies/ctl-nl/tokens", json={"scopes": ["ea:sales"]}
        ).json()
        assert "ea:sales" in tokens["scope"].split()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert http.get("/v2/customers", headers=bearer).status_code == 200
        assert (
            http.post("/_control/expire-tokens", json={"company_id": "ctl-nl"}).status_code == 200
        )
        assert http.get("/v2/customers", headers=bearer).status_code == 401
        assert http.post("/_control/companies/ctl-nl/revoke").status_code == 200
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        assert (
            http.post("/connect/token", data=refresh, auth=("ledgerpush", "sim-secret")).status_code
            == 400
        )
        config = http.put("/_control/config", json={"refresh_mode": "one_time"}).json()
        assert config["refresh_mode"] == "one_time"
        assert http.put("/_control/config", json={"refresh_mode": "sometimes"}).status_code == 400
        http.put("/_control/config", json={"refresh_mode": "reuse"})
        assert http.put("/_control/faults", json={"latency_ms": 1}).json()["latency_ms"] == 1
        http.put("/_control/faults", json={"latency_ms": 0})
        stats = http.get("/_control/stats").json()
        assert stats["token_calls"] >= 1 and stats["requests"]["total"] >= 2
        assert http.post("/_control/stats/reset").status_code == 200
        assert http.get("/_control/stats").json()["requests"]["total"] == 0
        state = http.get("/_control/state").json()
        assert {"customers", "articles", "drafts", "invoices"} <= state["ctl-nl"].keys()
        assert http.post("/_control/reset").status_code == 200


def test_reset_keeps_companies_and_reference_data(no: Api, sim: EAccountingSimulator) -> None:
    customers_before = len(sim.state_dump()["demo-no"]["customers"])
    no.post("/v2/customers", _valid_customer(no))
    _booked(no)
    dumped = sim.state_dump()["demo-no"]
    assert len(dumped["customers"]) == customers_before + 1 and len(dumped["invoices"]) == 1
    json.dumps(dumped)  # the dump is plain JSON
    sim.reset()
    dumped = sim.state_dump()["demo-no"]
    assert len(dumped["customers"]) == customers_before and dumped["invoices"] == []
    assert _booked(no)["InvoiceNumber"] == 10001


# ---------------------------------------------------------------- OData unit checks


def test_filter_literals() -> None:
    types = {"When": "datetime", "Amount": "double", "Name": "string", "Flag": "bool"}
    row_ = {
        "When": "2026-01-01T10:00:00",
        "Amount": Decimal("12.50"),
        "Name": "O'Brien AS",
        "Flag": True,
    }
    for text in (
        "When ge 2026-01-01",
        "When lt datetime'2026-01-02T00:00:00'",
        "When eq 2026-01-01T10:00:00Z",
        "Amount eq 12.5 and Amount gt 12",
        "Name eq 'o''brien as'",
        "substringof('brien', Name)",
        "endswith(Name, 'AS') and Flag eq true",
        "not (Amount lt 0)",
    ):
        assert compile_filter(text, types)(row_), text
    with pytest.raises(FilterError):
        compile_filter("When eq 'not a date'", types)


def test_prices_include_vat_for_private_people_when_the_company_says_so(
    no: Api, sim: EAccountingSimulator
) -> None:
    settings = sim.companies["demo-no"].settings
    settings["ShowPricesExclVatPC"] = False
    try:
        person = no.customer("IsPrivatePerson eq true and InvoiceCountryCode eq 'NO'")
        body = draft(person["Id"], [row(no.article("0.25")["Id"], 2, 125.00)])
        created = no.post("/v2/customerinvoicedrafts", body).json()
        assert created["IncludesVat"] is True
        assert money(created["TotalAmount"]) == Decimal("250")
        assert money(created["TotalVatAmount"]) == Decimal("50")
        invoice = no.post(f"/v2/customerinvoicedrafts/{created['Id']}/convert").json()
        assert money(invoice["Rows"][0]["AmountNoVat"]) == Decimal("200")
    finally:
        settings["ShowPricesExclVatPC"] = True


def test_responses_only_use_fields_of_their_models(
    no: Api, sim: EAccountingSimulator, url: str
) -> None:
    invoice = _booked(no)
    no.post(f"/v2/customerinvoices/{invoice['Id']}/payments", _payment(no, 100))
    no.post("/v2/customerinvoicedrafts", _valid_draft(no))
    year = no.data("/v2/fiscalyears")[0]["Id"]
    lists = {
        "/v2/customers": "CustomerApi",
        "/v2/articles": "ArticleApi",
        "/v2/articleaccountcodings": "ArticleAccountCodingAPI",
        "/v2/vatcodes": "VatCodeApi",
        "/v2/termsofpayments": "TermsOfPaymentApi",
        "/v2/units": "UnitApi",
        "/v2/bankaccounts": "BankAccountApi",
        "/v2/fiscalyears": "FiscalYearApi",
        f"/v2/accounts/{year}": "AccountApi",
        "/v2/customerinvoicedrafts": "CustomerInvoiceDraftApi",
        "/v2/customerinvoices": "CustomerInvoiceApi",
    }
    nested = {
        ("CustomerInvoiceDraftApi", "Rows"): "CustomerInvoiceDraftRowApi",
        ("CustomerInvoiceApi", "Rows"): "CustomerInvoiceRowApi",
        ("CustomerInvoiceApi", "VatSpecification"): "CustomerInvoiceVatApi",
    }
    for path, model in lists.items():
        for item in no.data(path, **{"$pagesize": 1000}):
            assert set(item) <= set(MODELS.fields(model)), (
                path,
                set(item) - set(MODELS.fields(model)),
            )
            for (owner, field), inner in nested.items():
                for entry in item.get(field) or [] if owner == model else []:
                    assert set(entry) <= set(MODELS.fields(inner)), (path, field)
    settings = no.get("/v2/companysettings").json()
    assert set(settings) <= set(MODELS.fields("CompanySettingsApi"))
    paid = no.post(f"/v2/customerinvoices/{invoice['Id']}/payments", _payment(no, 100)).json()
    assert set(paid) <= set(MODELS.fields("InvoicePaymentApi"))
