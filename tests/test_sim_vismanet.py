"""The Visma.net simulator over real HTTP, checked against `reference/vismanet`: the
DtoValue wrapper, line `operation`, Location ids, paging, both error shapes, the status
model, the background API, Visma Connect tokens, rate limits, faults and webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import REFERENCE as SHARED_REFERENCE
from tests.conftest import VN_APP, wait_for
from worker.simulators.common import SimulatorServer
from worker.simulators.vismanet import DEFAULT_COMPANIES, DEFAULT_CONTRACT_TENANTS, create_simulator
from worker.simulators.vismanet.api import HANDLERS
from worker.simulators.vismanet.contract import DATA_DIR, ENDPOINTS

REFERENCE = SHARED_REFERENCE / "vismanet"
TENANT = DEFAULT_COMPANIES[0][0]
ALL_SCOPES = " ".join(
    f"vismanet_erp_service_api:{s}" for s in ("read", "create", "update", "delete")
)
MESSAGE_FORM = re.compile(r"^VismaId: [0-9a-f-]{36}\. Error [a-z ]+\. Error: (?P<detail>.+)$")
READ_MODELS = json.loads((REFERENCE / "models.json").read_text(encoding="utf-8"))["models"]


def w(value: Any) -> dict[str, Any]:
    return {"value": value}


def token(
    url: str, tenant: str = TENANT, app: tuple[str, str] = VN_APP, scope: str = ALL_SCOPES
) -> httpx.Response:
    form = {"grant_type": "client_credentials", "client_id": app[0], "client_secret": app[1],
            "scope": scope, "tenant_id": tenant}  # fmt: skip
    return httpx.post(f"{url}/connect/token", data=form)


class Api:
    def __init__(self, url: str, tenant: str = TENANT) -> None:
        self.url = url
        answer = token(url, tenant)
        assert answer.status_code == 200, answer.text
        self.http = httpx.Client(
            base_url=url, timeout=10,
            headers={"Authorization": f"Bearer {answer.json()['access_token']}", "Accept": "application/json"},
        )  # fmt: skip

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, body: Any = None, **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers=headers)

    def put(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.put(path, json=body, headers=headers)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path)

    def create(self, path: str, body: Any) -> str:
        answer = self.post(path, body)
        assert answer.status_code == 201, answer.text
        return answer.headers["Location"].rsplit("/", 1)[1]

    def invoice(self, hold: bool = False, amount: str = "1000", **extra: Any) -> str:
        return self.create("/v2/customerinvoice", invoice_body(hold=hold, amount=amount, **extra))

    def released_invoice(self, amount: str = "1000") -> str:
        number = self.invoice(amount=amount)
        assert (
            self.post(f"/v1/customerinvoice/{number}/action/release").json()["actionResult"]
            == "Done"
        )
        return number


def invoice_body(
    hold: bool = False, amount: str = "1000", customer: str = "10000", **extra: Any
) -> dict[str, Any]:
    line = {"operation": "Insert", "description": w("Consulting"), "quantity": w(1),
            "unitPriceInCurrency": w(float(amount)), "vatCodeId": w("1"),
            "subaccount": [{"segmentId": 1, "segmentValue": "0"}]}  # fmt: skip
    body = {"customerNumber": w(customer), "documentDate": w("2026-11-20"), "hold": w(hold),
            "invoiceLines": [line]}  # fmt: skip
    body.update({k: w(v) for k, v in extra.items()})
    return body


def payment_body(amount: str, lines: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "type": w("Payment"), "customer": w("10000"), "paymentAmount": w(float(amount)),
        "paymentRef": w("BANK-REF-1"), "applicationDate": w("2026-11-25"),
        "paymentLines": [
            {"operation": "Insert", "documentType": w(kind), "refNbr": w(ref), "amountPaid": w(float(paid))}
            for kind, ref, paid in lines
        ],
    }  # fmt: skip


def detail(answer: httpx.Response) -> str:
    found = MESSAGE_FORM.match(answer.json()["message"])
    assert found, answer.text
    return found.group("detail")


@pytest.fixture
def api(vn_sim: Any, vn_server: tuple[Any, str]) -> Api:
    return Api(vn_server[1])


@pytest.fixture
def own_sim() -> Iterator[tuple[Any, str]]:
    """A simulator of its own, for tests that change what a shared one would keep."""
    simulator = create_simulator()
    server = SimulatorServer(simulator.app).start()
    yield simulator, server.url
    server.stop()


# ---------------------------------------------------------------- the reference


def test_the_simulator_reads_the_reference_contract() -> None:
    for name in ("models.json", "endpoints.json"):
        assert (DATA_DIR / f"vismanet_{name}").read_bytes() == (REFERENCE / name).read_bytes()
    templates = {(e.method, e.template) for e in ENDPOINTS}
    assert set(HANDLERS) <= templates


def conforms(payload: Any, model: str, path: str = "") -> list[str]:
    """Names in `payload` that the read model does not have (recursively)."""
    fields = READ_MODELS[model]
    problems = []
    for name, value in payload.items():
        spec = fields.get(name)
        if spec is None:
            problems.append(f"{path}{name}")
            continue
        kind = spec["type"].removesuffix("[]")
        items = value if spec["type"].endswith("[]") and isinstance(value, list) else [value]
        for item in items:
            if kind in READ_MODELS and isinstance(item, dict):
                problems += conforms(item, kind, f"{path}{name}.")
    return problems


def read_model_paths(api: Api) -> dict[str, str]:
    """A path of each kind of record the simulator answers, with its read model."""
    number = api.released_invoice()
    note = api.create("/v2/customerCreditNote", credit_note_body(number, "100"))
    payment = api.create("/v1/customerPayment", payment_body("100", [("Invoice", number, "100")]))
    return {
        f"/v1/customerinvoice/{number}": "CustomerInvoiceDto",
        f"/v1/customerCreditNote/{note}": "CustomerCreditNoteDto",
        f"/v1/customerPayment/{payment}": "PaymentDto",
        "/v1/customer/10000": "CustomerDto", "/v1/vat/3": "VatInformationDto",
        "/v1/vatCategory/1": "VatCategoryDto", "/v1/vatZone/01": "VatZoneDto",
        "/v1/account/3000": "AccountDto", "/v1/branch/1": "BranchDto",
        "/v1/financialPeriod/202611": "FinancialPeriodDto", "/v1/currency/NOK": "CurrencyDto",
        "/v1/paymentmethod/BANK": "PaymentMethodDto", "/v1/cashaccount/1920": "CashAccountDto",
        "/v1/inventory/KONSULENT": "InventoryDto", "/v1/organization/1": "ExtendedOrganizationDto",
        "/v1/numberSequence/ARINVOICE": "NumberingDto",
    }  # fmt: skip


def test_read_models_use_only_fields_of_the_reference(api: Api) -> None:
    checks = read_model_paths(api)
    strangers = {}
    for path, model in checks.items():
        answer = api.get(path)
        assert answer.status_code == 200, (path, answer.text)
        strangers[path] = conforms(answer.json(), model)
    for path, model in checks.items():
        list_path = path.rsplit("/", 1)[0]
        for item in api.get(list_path, pageSize=5).json():
            strangers[f"{list_path}[]"] = conforms(item, model)
    assert {path: names for path, names in strangers.items() if names} == {}
    assert "metadata" in api.get("/v1/customer").json()[0]
    assert "metadata" not in api.get("/v1/currency").json()[0]  # CurrencyDto has none
    full = {
        "name": w("Full AS"), "corporateId": w("998877665"), "vatZoneId": w("01"),
        "creditTermsId": w("30"), "currencyId": w("NOK"), "note": w("only written"),
        "mainAddress": w({"addressLine1": w("Storgata 1"), "postalCode": w("0155"),
                          "city": w("Oslo"), "countryId": w("NO")}),
        "mainContact": w({"name": w("Kari"), "email": w("ap@full.no")}),
    }  # fmt: skip
    customer = api.http.get(api.post("/v1/customer", full).headers["Location"]).json()
    assert conforms(customer, "CustomerDto") == []
    assert customer["mainAddress"]["country"] == {"id": "NO"}
    assert customer["creditTerms"]["id"] == "30"
    terms = api.get("/v1/creditTerm").json()
    assert conforms(terms, "BasePaginationDtoOfCreditTermDto") == []


def off_enum(payload: Any, model: str, path: str = "") -> list[str]:
    """Enum-typed fields in `payload` whose value is not one of the model's (recursively)."""
    fields = READ_MODELS[model]
    problems = []
    for name, value in payload.items():
        spec = fields.get(name) or {}
        kind = str(spec.get("type", "")).removesuffix("[]")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if "enum" in spec and item is not None and item not in spec["enum"]:
                problems.append(f"{path}{name}={item!r}")
            if kind in READ_MODELS and isinstance(item, dict):
                problems += off_enum(item, kind, f"{path}{name}.")
    return problems


def test_every_enum_field_holds_a_value_of_its_enum(api: Api) -> None:
    problems = {}
    for path, model in read_model_paths(api).items():
        problems[path] = off_enum(api.get(path).json(), model)
        list_path = path.rsplit("/", 1)[0]
        rows = api.get(list_path, pageNumber=1, pageSize=500).json()
        problems[f"{list_path}[]"] = [p for item in rows for p in off_enum(item, model)]
    assert {path: found for path, found in problems.items() if found} == {}


# ---------------------------------------------------------------- tokens


def test_client_credentials_token(vn_sim: Any, vn_server: tuple[Any, str]) -> None:
    url = vn_server[1]
    answer = token(url)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body["scope"].split()) == set(ALL_SCOPES.split())
    assert token(url, app=(VN_APP[0], "wrong")).json()["error"] == "invalid_client"
    assert token(url, scope="vismanet_erp_service_api:write").json()["error"] == "invalid_scope"
    assert token(url, tenant="").status_code == 400


def test_token_lifetime_is_configurable_and_tokens_can_be_expired(own_sim: tuple[Any, str]) -> None:
    sim, url = own_sim
    sim.update_config({"token_lifetime_seconds": 120})
    assert token(url).json()["expires_in"] == 120
    api = Api(url)
    assert api.get("/v1/customer").status_code == 200
    httpx.post(f"{url}/_control/expire-tokens", json={"tenant_id": TENANT})
    answer = api.get("/v1/customer")
    assert answer.status_code == 401 and "message" in answer.json()


def test_each_method_needs_its_scope(vn_sim: Any, vn_server: tuple[Any, str]) -> None:
    url = vn_server[1]
    answer = token(url, scope="vismanet_erp_service_api:read")
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    assert httpx.get(f"{url}/v1/customer", headers=headers).status_code == 200
    refused = httpx.post(f"{url}/v2/customerinvoice", json=invoice_body(), headers=headers)
    assert refused.status_code == 403 and "message" in refused.json()


def test_customer_tenant_id_gets_a_token_but_every_call_answers_401(
    vn_sim: Any, vn_server: tuple[Any, str]
) -> None:
    url = vn_server[1]
    answer = token(url, tenant=DEFAULT_CONTRACT_TENANTS[0])
    assert answer.status_code == 200
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    for path in ("/v1/customer", "/v1/vat", "/v1/customerinvoice/100001"):
        refused = httpx.get(f"{url}{path}", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["ExceptionFaultCode"] == "12027"
    assert (
        httpx.post(f"{url}/v2/customerinvoice", json=invoice_body(), headers=headers).status_code
        == 401
    )


def test_withdrawn_approval_is_refused_at_the_token_endpoint(
    vn_sim: Any, vn_server: tuple[Any, str]
) -> None:
    url = vn_server[1]
    change = {"client_id": VN_APP[0], "tenant_id": TENANT, "approved": False}
    assert httpx.put(f"{url}/_control/approval", json=change).status_code == 200
    refused = token(url)
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    httpx.put(f"{url}/_control/approval", json={**change, "approved": True})
    assert token(url).status_code == 200


def test_no_license_answers_the_ipp_exception_shape(api: Api) -> None:
    httpx.put(f"{api.url}/_control/license", json={"tenant_id": TENANT, "licensed": False})
    answer = api.get("/v1/customer")
    assert answer.status_code == 401
    body = answer.json()
    assert set(body) == {
        "ExceptionType",
        "ExceptionMessage",
        "ExceptionFaultCode",
        "ExceptionMessageID",
        "ExceptionDetails",
    }
    assert body["ExceptionType"] == "IPPException" and body["ExceptionFaultCode"] == "12027"
    assert body["ExceptionMessage"] == "No license for this company."
    assert body["ExceptionMessageID"].startswith("12027_")


# ---------------------------------------------------------------- write bodies


def test_scalars_must_be_wrapped(api: Api) -> None:
    body = invoice_body()
    body["customerNumber"] = "10000"
    answer = api.post("/v2/customerinvoice", body)
    assert answer.status_code == 400
    assert "customerNumber" in detail(answer)
    bad_enum = invoice_body()
    bad_enum["invoiceLines"][0]["operation"] = "Upsert"
    assert api.post("/v2/customerinvoice", bad_enum).status_code == 400


def test_a_line_without_operation_is_dropped(api: Api) -> None:
    body = invoice_body()
    body["invoiceLines"].append(
        {"description": w("No operation"), "quantity": w(1), "unitPriceInCurrency": w(500)}
    )
    number = api.create("/v2/customerinvoice", body)
    invoice = api.get(f"/v1/customerinvoice/{number}").json()
    assert [line["description"] for line in invoice["invoiceLines"]] == ["Consulting"]
    assert invoice["amount"] == 1250


def test_create_answers_201_with_location_and_etag(api: Api) -> None:
    answer = api.post("/v2/customerinvoice", invoice_body(externalReference="EXT-1"))
    assert answer.status_code == 201 and answer.content == b""
    location = answer.headers["Location"]
    assert location.startswith(api.url) and answer.headers["ETag"]
    number = location.rsplit("/", 1)[1]
    read = api.http.get(location)
    assert read.status_code == 200 and read.json()["referenceNumber"] == number
    assert read.json()["status"] == "Balanced" and read.headers["ETag"]
    customer = api.post("/v1/customer", {"name": w("Ny Kunde AS"), "vatZoneId": w("01")})
    assert customer.status_code == 201
    assert api.http.get(customer.headers["Location"]).json()["name"] == "Ny Kunde AS"


def test_location_names_the_configured_host(api: Api) -> None:
    httpx.put(
        f"{api.url}/_control/config", json={"public_base_url": "https://api.finance.visma.net"}
    )
    answer = api.post("/v2/customerinvoice", invoice_body())
    assert re.fullmatch(
        r"https://api\.finance\.visma\.net/v1/customerinvoice/\d+", answer.headers["Location"]
    )


def test_mandatory_fields_and_reference_data(api: Api) -> None:
    missing = invoice_body()
    del missing["customerNumber"]
    assert detail(api.post("/v2/customerinvoice", missing)) == "'Customer' cannot be empty."
    unknown = invoice_body(customer="99999")
    assert (
        detail(api.post("/v2/customerinvoice", unknown))
        == "Customer '99999' cannot be found in the system."
    )
    no_text = invoice_body()
    del no_text["invoiceLines"][0]["description"]
    assert api.post("/v2/customerinvoice", no_text).status_code == 400
    assert api.post("/v1/customer", {"vatZoneId": w("01")}).status_code == 400


def test_vat_category_must_fit_the_customers_vat_zone(api: Api) -> None:
    domestic_exempt = invoice_body()
    domestic_exempt["invoiceLines"][0]["vatCodeId"] = w("5")  # export category, domestic customer
    answer = api.post("/v2/customerinvoice", domestic_exempt)
    assert answer.status_code == 400
    assert detail(answer) == "TaxCategoryID '5' cannot be found in the system."
    abroad = invoice_body(customer="10001")
    abroad["invoiceLines"][0]["vatCodeId"] = w("5")
    assert api.post("/v2/customerinvoice", abroad).status_code == 201


def test_closed_period_refuses_documents(api: Api) -> None:
    closed = next(
        p
        for p in api.get("/v1/financialPeriod", pageSize=100).json()
        if p["closedInCustomerLedger"]
    )
    body = invoice_body(financialPeriod=closed["period"])
    answer = api.post("/v2/customerinvoice", body)
    assert answer.status_code == 400 and "closed" in detail(answer)


def test_amounts_round_to_the_currency_precision(api: Api) -> None:
    body = invoice_body(amount="1000.4", currencyId="JPY")
    number = api.create("/v2/customerinvoice", body)
    invoice = api.get(f"/v1/customerinvoice/{number}").json()
    assert invoice["currencyId"] == "JPY" and invoice["amount"] == 1250  # 1000 + 250 VAT


# ---------------------------------------------------------------- status model


def test_status_transitions_and_immutability(api: Api) -> None:
    held = api.invoice(hold=True)
    assert api.get(f"/v1/customerinvoice/{held}").json()["status"] == "Hold"
    assert api.post(f"/v1/customerinvoice/{held}/action/release").status_code == 400
    assert api.put(f"/v1/customerinvoice/{held}", {"hold": w(False)}).status_code == 204
    assert api.get(f"/v1/customerinvoice/{held}").json()["status"] == "Balanced"
    released = api.post(f"/v1/customerinvoice/{held}/action/release")
    assert released.status_code == 200 and released.json()["actionResult"] == "Done"
    assert api.get(f"/v1/customerinvoice/{held}").json()["status"] == "Open"
    assert api.post(f"/v1/customerinvoice/{held}/action/release").status_code == 400
    assert api.put(f"/v1/customerinvoice/{held}", {"invoiceText": w("x")}).status_code == 400
    assert api.delete(f"/v1/customerinvoice/{held}").status_code == 400
    draft = api.invoice()
    assert api.delete(f"/v1/customerinvoice/{draft}").status_code == 204
    assert api.get(f"/v1/customerinvoice/{draft}").status_code == 404


def test_stale_if_match_answers_412(api: Api) -> None:
    number = api.invoice()
    etag = api.get(f"/v1/customerinvoice/{number}").headers["ETag"]
    assert (
        api.put(
            f"/v1/customerinvoice/{number}", {"invoiceText": w("a")}, **{"If-Match": etag}
        ).status_code
        == 204
    )
    stale = api.put(f"/v1/customerinvoice/{number}", {"invoiceText": w("b")}, **{"If-Match": etag})
    assert stale.status_code == 412


def test_queued_release_opens_the_document_later(own_sim: tuple[Any, str]) -> None:
    sim, url = own_sim
    sim.update_config({"release_queued_rate": 1.0, "release_queued_seconds": 0.3})
    api = Api(url)
    number = api.invoice()
    answer = api.post(f"/v1/customerinvoice/{number}/action/release")
    assert answer.json()["actionResult"] == "Queued"
    assert api.get(f"/v1/customerinvoice/{number}").json()["status"] == "Balanced"
    wait_for(lambda: api.get(f"/v1/customerinvoice/{number}").json()["status"] == "Open", 5)


def credit_note_body(invoice: str, amount: str) -> dict[str, Any]:
    body = invoice_body(amount="80")
    body["lines"] = body.pop("invoiceLines")
    body["applicationLines"] = [{"operation": "Insert", "documentType": w("Invoice"), "refNbr": w(invoice),
                                 "amountPaid": w(float(amount))}]  # fmt: skip
    return body


def test_payments_and_credit_notes_reduce_the_balance_until_closed(api: Api) -> None:
    number = api.released_invoice("1000")  # 1250 gross
    note = api.create("/v2/customerCreditNote", credit_note_body(number, "100"))  # gross
    assert (
        api.post(f"/v1/customerCreditNote/{note}/action/release").json()["actionResult"] == "Done"
    )
    assert api.get(f"/v1/customerinvoice/{number}").json()["balance"] == 1150
    payment = api.create("/v1/customerPayment", payment_body("1150", [("Invoice", number, "1150")]))
    release = api.post(f"/v1/customerPayment/{payment}/action/release", {"type": w("Payment")})
    assert release.status_code == 202
    wait_for(lambda: api.get(f"/v1/customerinvoice/{number}").json()["status"] == "Closed", 5)
    assert api.get(f"/v1/customerinvoice/{number}").json()["balance"] == 0
    paid = api.get("/v1/customerPayment", invoiceRefNbr=number).json()
    assert [p["refNbr"] for p in paid] == [payment] and paid[0]["paymentRef"] == "BANK-REF-1"
    assert api.get("/v1/customerPayment", customer="10001").json() == []


def test_payment_rules(api: Api) -> None:
    draft = api.invoice()
    answer = api.post("/v1/customerPayment", payment_body("1250", [("Invoice", draft, "1250")]))
    assert detail(answer) == f"AdjdRefNbr '{draft}' cannot be found in the system."
    released = api.released_invoice()
    wrong_type = api.post(
        "/v1/customerPayment", payment_body("1250", [("CreditNote", released, "1250")])
    )
    assert detail(wrong_type) == f"AdjdRefNbr '{released}' cannot be found in the system."
    mismatch = api.post("/v1/customerPayment", payment_body("1000", [("Invoice", released, "900")]))
    assert mismatch.status_code == 400 and "AdjdRefNbr" not in detail(mismatch)


# ---------------------------------------------------------------- background API


def test_payment_release_runs_in_the_background(api: Api) -> None:
    number = api.released_invoice()
    payment = api.create("/v1/customerPayment", payment_body("1250", [("Invoice", number, "1250")]))
    accepted = api.post(f"/v1/customerPayment/{payment}/action/release", {"type": w("Payment")})
    assert accepted.status_code == 202
    job = accepted.json()
    assert set(job) == {"id", "stateLocation"}
    first = api.http.get(job["stateLocation"]).json()
    assert first["status"] in ("Started", "Finished")
    state = wait_for(
        lambda: (s := api.get(f"/v1/background/{job['id']}").json())["status"] == "Finished" and s,
        5,
    )
    assert state["statusCode"] == 204 and state["originalUri"].endswith("/action/release")
    assert api.get(f"/v1/customerPayment/{payment}").json()["status"] == "Closed"
    assert api.get(f"/v1/background/{job['id']}/content").status_code == 204


def test_any_call_in_background_mode_and_its_content(api: Api) -> None:
    answer = api.http.get("/v1/customer/10000", headers={"erp-api-background": "none"})
    assert answer.status_code == 202
    job = answer.json()["id"]
    wait_for(lambda: api.get(f"/v1/background/{job}").json()["status"] == "Finished", 5)
    content = api.get(f"/v1/background/{job}/content")
    assert content.status_code == 200 and content.json()["number"] == "10000"
    failing = api.http.post("/v2/customerinvoice", json=invoice_body(customer="nobody"),
                            headers={"erp-api-background": "none"})  # fmt: skip
    job = failing.json()["id"]
    wait_for(lambda: api.get(f"/v1/background/{job}").json()["statusCode"] == 400, 5)
    assert "nobody" in detail(api.get(f"/v1/background/{job}/content"))


def test_failed_background_request_is_not_performed(api: Api, vn_sim: Any) -> None:
    number = api.released_invoice()
    payment = api.create("/v1/customerPayment", payment_body("1250", [("Invoice", number, "1250")]))
    vn_sim.update_config({"background_fail_rate": 1.0})
    job = api.post(f"/v1/customerPayment/{payment}/action/release", {"type": w("Payment")}).json()[
        "id"
    ]
    state = wait_for(
        lambda: (s := api.get(f"/v1/background/{job}").json())["status"] != "Started" and s, 5
    )
    assert state["status"] == "Failed" and state["errorMessage"]
    assert api.get(f"/v1/customerinvoice/{number}").json()["status"] == "Open"


# ---------------------------------------------------------------- lists


def test_lists_are_bare_arrays_with_metadata_and_silent_truncation(api: Api, vn_sim: Any) -> None:
    for index in range(6):
        api.create("/v1/customer", {"name": w(f"Kunde {index}")})
    httpx.put(
        f"{api.url}/_control/config",
        json={"default_page_size": 3, "max_page_sizes": {"customer": 4}},
    )
    default = api.get("/v1/customer").json()
    assert isinstance(default, list) and len(default) == 3
    assert default[0]["metadata"] == {"totalCount": 8, "maxPageSize": 4}
    cut = api.get("/v1/customer", pageNumber=1, pageSize=1000).json()
    assert len(cut) == 4
    numbers: list[str] = []
    page = 1
    while rows := api.get("/v1/customer", pageNumber=page, pageSize=1000).json():
        numbers += [r["number"] for r in rows]
        page += 1
    assert len(numbers) == len(set(numbers)) == 8
    assert api.get("/v1/customer", pageNumber=99, pageSize=4).json() == []


def test_lists_without_paging_parameters_are_answered_whole(api: Api, vn_sim: Any) -> None:
    httpx.put(f"{api.url}/_control/config", json={"default_page_size": 1})
    assert len(api.get("/v1/customer").json()) == 1  # takes pageNumber: cut
    for path in ("/v1/vat", "/v1/vatCategory", "/v1/account", "/v1/financialPeriod"):
        rows = api.get(path).json()
        assert len(rows) > 1, path
        if "metadata" in rows[0]:
            assert rows[0]["metadata"]["totalCount"] == len(rows), path


def test_last_modified_only_with_its_condition(api: Api) -> None:
    api.put("/v1/customer/10001", {"name": w("Hamburg Import GmbH & Co")})
    changed = api.get("/v1/customer/10001").json()["lastModifiedDateTime"]
    since = {
        "lastModifiedDateTime": changed.replace("T", " "),
        "lastModifiedDateTimeCondition": ">=",
    }
    assert [c["number"] for c in api.get("/v1/customer", **since).json()] == ["10001"]
    alone = api.get("/v1/customer", lastModifiedDateTime="2999-01-01").json()
    assert len(alone) == 2


def test_invoice_list_filters_by_lookup_keys(api: Api) -> None:
    number = api.invoice(externalReference="order-77", customerRefNumber="PO-7781")
    api.invoice(externalReference="order-78")
    assert [
        i["referenceNumber"]
        for i in api.get("/v1/customerinvoice", externalReference="order-77").json()
    ] == [number]
    assert [
        i["referenceNumber"]
        for i in api.get("/v1/customerinvoice", customerRefNumber="PO-7781").json()
    ] == [number]
    assert (
        len(api.get("/v1/customerinvoice", externalRefernce="order-77").json()) == 2
    )  # misspelt: ignored


def test_b64_path_ids(api: Api) -> None:
    encoded = base64.urlsafe_b64encode(b"KONSULENT").decode().rstrip("=")
    assert api.get(f"/v1/inventory/b64({encoded})").json()["inventoryNumber"] == "KONSULENT"


# ---------------------------------------------------------------- rate limits, faults


def test_rate_limit_headers_and_429_per_company_and_client(own_sim: tuple[Any, str]) -> None:
    sim, url = own_sim
    sim.update_config({"rate_limit": 3})
    sim.add_company("second-company", "Andre AS")
    api = Api(url)
    remaining = []
    for _ in range(3):
        answer = api.get("/v1/vatZone")
        assert answer.status_code == 200
        assert answer.headers["X-RateLimit-Limit"] == "3" and answer.headers["X-RateLimit-Policy"]
        assert int(answer.headers["X-RateLimit-Reset"]) > 0
        remaining.append(int(answer.headers["X-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    throttled = api.get("/v1/vatZone")
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    assert throttled.headers["X-RateLimit-Remaining"] == "0"
    assert Api(url, "second-company").get("/v1/vatZone").status_code == 200


def test_injected_faults(api: Api, vn_sim: Any) -> None:
    httpx.put(f"{api.url}/_control/faults", json={"error_rate": 1.0})
    assert api.get("/v1/customer").status_code == 503
    httpx.put(f"{api.url}/_control/faults", json={"error_rate": 0.0, "drop_after_write_rate": 1.0})
    with pytest.raises(httpx.HTTPError):
        api.post("/v2/customerinvoice", invoice_body(externalReference="lost-answer"))
    httpx.put(f"{api.url}/_control/faults", json={"drop_after_write_rate": 0.0})
    assert len(api.get("/v1/customerinvoice", externalReference="lost-answer").json()) == 1


# ---------------------------------------------------------------- webhooks


class Receiver:
    """An HTTP endpoint that records notifications; answers `statuses` in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, raw))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_webhooks_are_signed_and_retried(api: Api, vn_sim: Any) -> None:
    receiver = Receiver(statuses=[500])
    vn_sim.webhooks.retry_interval_seconds = 0.05
    try:
        secret = "hook-secret"
        httpx.post(f"{api.url}/_control/webhooks", json={"url": receiver.url, "secret": secret})
        number = api.released_invoice()
        wait_for(lambda: len(receiver.received) >= 2, 5)
        (first_headers, first_raw), (headers, raw) = receiver.received[:2]
        assert first_raw == raw  # a retry sends the same body
        expected = base64.b64encode(
            hmac.new(secret.encode(), raw, hashlib.sha256).digest()
        ).decode()
        assert headers["x-vwd-signature-v1"] == expected
        assert headers["x-vwd-tenant-id"] == TENANT
        assert headers["x-vwd-notification-id"] == first_headers["x-vwd-notification-id"]
        assert headers["x-vwd-event-id"] and headers["x-vwd-webhook-timestamp"]
        body = json.loads(raw)
        assert body["number"] == number and body["event"] == "ArInvoice.StatusChanged"
        api.put("/v1/customer/10000", {"note": w("changed")})
        wait_for(
            lambda: any(json.loads(r)["event"] == "Customer.Changed" for _, r in receiver.received),
            5,
        )
        deliveries = httpx.get(f"{api.url}/_control/webhooks/deliveries").json()
        assert deliveries[0]["attempts"] == [500, 200]
    finally:
        receiver.close()
