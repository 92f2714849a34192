"""The e-conomic simulator over real HTTP, checked against e-conomic's documentation
(shared/reference/economic/*.md) where the rules can be read from it cheaply."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import REFERENCE, needs
from worker.simulators.common import Faults, SimulatorServer
from worker.simulators.economic import DRAFT_POST_REQUIRED, EconomicSimulator

SECRET = "sim-app-secret"
DOCS = REFERENCE / "economic"


@pytest.fixture(scope="module")
def sim() -> Iterator[EconomicSimulator]:
    simulator = EconomicSimulator(app_secret_token=SECRET)
    for country in ("DK", "NO", "SE"):
        simulator.add_agreement(country, grant_token=f"demo-{country.lower()}")
    yield simulator


@pytest.fixture(scope="module")
def server(sim: EconomicSimulator) -> Iterator[SimulatorServer]:
    running = SimulatorServer(sim.app).start()
    yield running
    running.stop()


@pytest.fixture
def client(sim: EconomicSimulator, server: SimulatorServer) -> Iterator[httpx.Client]:
    sim.reset()
    sim.faults.update(Faults().as_dict())
    for grant in ("demo-dk", "demo-no", "demo-se"):
        sim.set_modules(grant, [])
    with make_client(server, "demo-dk") as http:
        yield http


def make_client(server: SimulatorServer, grant: str) -> httpx.Client:
    headers = {
        "X-AppSecretToken": SECRET,
        "X-AgreementGrantToken": grant,
        "Content-Type": "application/json",
    }
    return httpx.Client(base_url=server.url, headers=headers, timeout=10)


def draft(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "date": "2025-03-01",
        "currency": "DKK",
        "customer": {"customerNumber": 1},
        "layout": {"layoutNumber": 19},
        "paymentTerms": {"paymentTermsNumber": 2},
        "recipient": {"name": "Havbryggen ApS", "vatZone": {"vatZoneNumber": 1}},
        "references": {"other": "job-1"},
        "lines": [
            {
                "product": {"productNumber": "2001"},
                "description": "Konsulenttime",
                "quantity": 10,
                "unitNetPrice": 1200.00,
            }
        ],
    }
    body.update(overrides)
    return body


def base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def errors_at(body: dict[str, Any], *path: str | int) -> list[dict[str, Any]]:
    """The errors of an annotated 400 at a payload path (ints are array indexes)."""
    node: Any = body["errors"]
    for segment in path:
        if isinstance(segment, int):
            node = next(item for item in node if item["arrayIndex"] == segment)
        else:
            node = node[segment]
    errors: list[dict[str, Any]] = node["errors"]
    return errors


def assert_error_shape(body: dict[str, Any], status: int) -> None:
    assert {"message", "errorCode", "developerHint", "logId", "logTime"} <= set(body)
    assert body["httpStatusCode"] == status


def doc_section(page: str, heading: str) -> str:
    text = (DOCS / page).read_text()
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    return text[start : end if end > 0 else None]


def required_properties(page: str, heading: str) -> list[str]:
    section = doc_section(page, heading)
    match = re.search(r"#### Required propert(?:y|ies)\s*\n\s*\n(.+)\n", section)
    assert match, f"no required properties under {heading}"
    return [p.strip() for p in match.group(1).split(",")]


def max_lengths(page: str, heading: str) -> dict[str, int]:
    rows = [r for r in doc_section(page, heading).splitlines() if r.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    result = {}
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        record = dict(zip(header, cells, strict=False))
        writable = record.get("Type") == "string" and record.get("Read-only") != "True"
        if record.get("Max length") and writable:
            result[record["Name"].replace("<wbr>", "")] = int(record["Max length"])
    return result


needs_docs = needs(DOCS.exists(), f"e-conomic's docs at {DOCS}")


def put_path(doc: dict[str, Any], dotted: str, value: Any) -> list[str | int]:
    """Set a dotted property (lines.x goes to the first line); return its error path."""
    parts: list[str | int] = list(dotted.split("."))
    if parts[0] == "lines":
        parts.insert(1, 0)
    node: Any = doc
    for part in parts[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[parts[-1]] = value
    return parts


def remove_path(doc: dict[str, Any], dotted: str) -> None:
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]


# --- auth, media type, methods ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-AppSecretToken": SECRET},
        {"X-AgreementGrantToken": "demo-dk"},
        {"X-AppSecretToken": "wrong", "X-AgreementGrantToken": "demo-dk"},
        {"X-AppSecretToken": SECRET, "X-AgreementGrantToken": "no-such-grant"},
    ],
)
def test_missing_or_invalid_tokens_are_401(
    server: SimulatorServer, headers: dict[str, str]
) -> None:
    response = httpx.get(f"{server.url}/customers", headers=headers)
    assert response.status_code == 401
    assert_error_shape(response.json(), 401)


def test_revoked_grant_is_401(client: httpx.Client, server: SimulatorServer) -> None:
    created = client.post("/_control/agreements", json={"country": "SE"})
    grant = created.json()["grant_token"]
    with make_client(server, grant) as customer_app:
        assert customer_app.get("/self").status_code == 200
        assert client.post(f"/_control/agreements/{grant}/revoke").status_code == 200
        response = customer_app.get("/self")
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]


def test_write_without_json_content_type_is_415(client: httpx.Client) -> None:
    response = client.post(
        "/invoices/drafts", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    assert_error_shape(response.json(), 415)


def test_there_is_no_patch(client: httpx.Client) -> None:
    response = client.patch("/customers/1", json={"name": "x"})
    assert response.status_code == 405
    assert_error_shape(response.json(), 405)


def test_self_shows_country_currency_and_modules(
    client: httpx.Client, server: SimulatorServer, sim: EconomicSimulator
) -> None:
    sim.set_modules("demo-no", ["projects", "Departments"])
    for grant, currency, agreement_type in (
        ("demo-dk", "DKK", "denmark"),
        ("demo-no", "NOK", "norway"),
        ("demo-se", "SEK", "sweden"),
    ):
        with make_client(server, grant) as http:
            body = http.get("/self").json()
        assert body["settings"]["baseCurrency"] == currency
        assert body["agreementType"]["name"] == agreement_type
        assert body["company"]["name"]
    with make_client(server, "demo-no") as http:
        modules = http.get("/self").json()["modules"]
    assert [m["name"] for m in modules] == ["Projects", "Departments"]


# --- annotated errors and required properties -------------------------------------------------


@needs_docs
def test_draft_post_required_properties_are_the_documented_ones(client: httpx.Client) -> None:
    documented = required_properties("invoices.md", "POST</span> /invoices/drafts")
    assert tuple(documented) == DRAFT_POST_REQUIRED
    for prop in documented:
        body = draft()
        remove_path(body, prop)
        response = client.post("/invoices/drafts", json=body)
        assert response.status_code == 400, prop
        assert errors_at(response.json(), *prop.split("."))[0]["errorCode"] == "E00200"


@needs_docs
def test_documented_max_lengths_of_drafts_are_enforced(client: httpx.Client) -> None:
    lengths = max_lengths("invoices.md", "POST</span> /invoices/drafts")
    assert lengths["references.other"] == 250
    for prop, limit in lengths.items():
        body = draft()
        path = put_path(body, prop, "x" * (limit + 1))
        response = client.post("/invoices/drafts", json=body)
        assert response.status_code == 400, prop
        codes = [e["errorCode"] for e in errors_at(response.json(), *path)]
        assert "E00300" in codes, prop
    ok = client.post("/invoices/drafts", json=draft(references={"other": "x" * 250}))
    assert ok.status_code == 201


@needs_docs
def test_customer_required_properties_are_the_documented_ones(client: httpx.Client) -> None:
    customer = client.get("/customers/2").json()
    for prop in required_properties("customers.md", "POST</span> /customers"):
        body = {k: v for k, v in customer.items() if k not in (prop, "customerNumber")}
        response = client.post("/customers", json=body)
        assert response.status_code == 400, prop
        assert errors_at(response.json(), prop)[0]["errorCode"] == "E00200"


def test_bad_line_gets_an_annotated_error_with_its_array_index(client: httpx.Client) -> None:
    good = draft()["lines"][0]
    bad = {"product": {}, "unit": {"unitNumber": 10}, "quantity": 1, "unitNetPrice": 10.12345}
    response = client.post("/invoices/drafts", json=draft(currency="ZUL", lines=[good, bad]))
    body = response.json()
    assert response.status_code == 400
    assert_error_shape(body, 400)
    assert body["message"] == "Validation error."
    assert errors_at(body, "currency")[0] == {
        "errorCode": "E06000",
        "message": "currency does not exist.",
        "value": "ZUL",
        "developerHint": f"Find a list of resources at {base(client)}/currencies.",
    }
    assert [line["arrayIndex"] for line in body["errors"]["lines"]] == [1]
    assert errors_at(body, "lines", 1, "product")[0]["errorCode"] == "E04500"
    assert errors_at(body, "lines", 1, "unit")[0]["value"] == 10
    assert errors_at(body, "lines", 1, "unitNetPrice")[0]["errorCode"] == "E04740"


def test_foreign_currency_four_decimal_prices_quantities_and_discounts_are_refused(
    client: httpx.Client,
) -> None:
    """introduction.md: E04740 "scale cannot be greater then two decimal places", nested
    under errors.lines[arrayIndex].<property>.errors; nothing is created."""
    good = draft()["lines"][0]
    line = {**good, "quantity": 1.125, "unitNetPrice": 49.0719, "discountPercentage": 2.505}
    response = client.post("/invoices/drafts", json=draft(currency="EUR", lines=[good, line]))
    assert response.status_code == 400
    body = response.json()
    assert_error_shape(body, 400)
    for prop, value in (("unitNetPrice", 49.0719), ("quantity", 1.125),
                        ("discountPercentage", 2.505)):  # fmt: skip
        error = errors_at(body, "lines", 1, prop)[0]
        assert (error["errorCode"], error["value"]) == ("E04740", value)
    assert client.get("/invoices/drafts").json()["collection"] == []
    rounded = {**good, "unitNetPrice": 49.07}
    assert client.post("/invoices/drafts", json=draft(currency="EUR", lines=[rounded])).is_success


def test_null_values_are_rejected(client: httpx.Client) -> None:
    response = client.post("/invoices/drafts", json=draft(notes={"heading": None}))
    assert response.status_code == 400
    assert errors_at(response.json(), "notes", "heading")[0]["errorCode"] == "E00210"


def test_put_needs_the_whole_document(client: httpx.Client) -> None:
    number = client.post("/invoices/drafts", json=draft()).json()["draftInvoiceNumber"]
    partial = client.put(f"/invoices/drafts/{number}", json={"notes": {"heading": "Hi"}})
    assert partial.status_code == 400
    assert errors_at(partial.json(), "layout")[0]["errorCode"] == "E00200"
    document = client.get(f"/invoices/drafts/{number}").json()
    document["notes"] = {"heading": "Hi"}
    document["lines"].append({"description": "Text only"})
    updated = client.put(f"/invoices/drafts/{number}", json=document)
    assert updated.status_code == 200
    assert updated.json()["notes"]["heading"] == "Hi"
    assert len(updated.json()["lines"]) == 2
    assert updated.json()["grossAmount"] == 15000.0


def test_due_date_terms_require_a_due_date(client: httpx.Client) -> None:
    response = client.post("/invoices/drafts", json=draft(paymentTerms={"paymentTermsNumber": 5}))
    assert errors_at(response.json(), "dueDate")[0]["errorCode"] == "E00200"
    body = draft(paymentTerms={"paymentTermsNumber": 5}, dueDate="2025-04-30")
    assert client.post("/invoices/drafts", json=body).json()["dueDate"] == "2025-04-30"


# --- invoices ---------------------------------------------------------------------------------


def test_draft_totals_follow_the_vat_zone_and_product_group(
    client: httpx.Client, server: SimulatorServer
) -> None:
    domestic = client.post("/invoices/drafts", json=draft()).json()
    assert (domestic["netAmount"], domestic["vatAmount"], domestic["grossAmount"]) == (
        12000.0,
        3000.0,
        15000.0,
    )
    assert domestic["lines"][0]["totalNetAmount"] == 12000.0
    assert domestic["dueDate"] == "2025-03-15"
    eu = draft(recipient={"name": "Berlin GmbH", "vatZone": {"vatZoneNumber": 2}})
    assert client.post("/invoices/drafts", json=eu).json()["vatAmount"] == 0.0
    food = {"product": {"productNumber": "4001"}, "description": "Mat", "quantity": 3}
    with make_client(server, "demo-no") as norway:
        body = norway.post("/invoices/drafts", json=draft(currency="NOK", lines=[food])).json()
    assert (body["netAmount"], body["vatAmount"]) == (747.0, 112.05)


def test_draft_is_booked_with_numbers_and_then_immutable(client: httpx.Client) -> None:
    first = client.post("/invoices/drafts", json=draft()).json()
    second = client.post("/invoices/drafts", json=draft(references={"other": "job-2"})).json()
    booking = {"draftInvoice": {"self": first["self"]}, "bookWithNumber": 1001}
    booked = client.post("/invoices/booked", json=booking)
    assert booked.status_code == 201
    assert booked.headers["location"].endswith("/invoices/booked/1001")
    invoice = booked.json()
    assert invoice["bookedInvoiceNumber"] == 1001
    assert invoice["references"]["other"] == "job-1"
    assert invoice["remainder"] == invoice["grossAmount"] == 15000.0
    assert invoice["lines"][0]["vatRate"] == 25.0
    assert client.get(f"/invoices/drafts/{first['draftInvoiceNumber']}").status_code == 404
    auto = client.post("/invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": 2}})
    assert auto.json()["bookedInvoiceNumber"] == 1002 and second["draftInvoiceNumber"] == 2

    again = client.post("/invoices/booked", json=booking)
    assert errors_at(again.json(), "draftInvoice")[0]["errorCode"] == "E06000"
    third = client.post("/invoices/drafts", json=draft()).json()
    overwrite = client.put(
        "/invoices/booked/1001",
        json={"draftInvoice": {"draftInvoiceNumber": third["draftInvoiceNumber"]}},
    )
    assert overwrite.status_code == 400
    assert errors_at(overwrite.json(), "bookWithNumber")[0]["errorCode"] == "E06010"
    assert client.delete("/invoices/booked/1001").status_code == 405
    assert client.patch("/invoices/booked/1001", json={}).status_code == 405
    assert client.get("/invoices/booked/1001").json()["grossAmount"] == 15000.0


def test_credit_note_has_negative_amounts(client: httpx.Client) -> None:
    line = {**draft()["lines"][0], "quantity": -2}
    number = client.post("/invoices/drafts", json=draft(lines=[line])).json()["draftInvoiceNumber"]
    booked = client.post("/invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": number}})
    assert (booked.json()["grossAmount"], booked.json()["remainder"]) == (-3000.0, -3000.0)


def test_booking_outside_the_accounting_years_fails(client: httpx.Client) -> None:
    number = client.post("/invoices/drafts", json=draft(date="2031-01-05")).json()[
        "draftInvoiceNumber"
    ]
    response = client.post(
        "/invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": number}}
    )
    assert response.status_code == 400
    assert "accounting year" in errors_at(response.json(), "draftInvoice")[0]["message"]


def test_drafts_and_booked_invoices_are_found_by_references_other(client: httpx.Client) -> None:
    for other in ("job-a", "JOB-B", "job-a2", "odd $(1)*"):
        client.post("/invoices/drafts", json=draft(references={"other": other}))

    def others(path: str, query: str) -> list[str]:
        found = client.get(path, params={"filter": query}).json()["collection"]
        return [d["references"]["other"] for d in found]

    assert others("/invoices/drafts", "references.other$eq:job-a") == ["job-a"]
    assert others("/invoices/drafts", "references.other$eq:job-b") == ["JOB-B"]
    assert others("/invoices/drafts", "references.other$like:job-a") == ["job-a", "job-a2"]
    assert others("/invoices/drafts", "references.other$like:*b") == ["JOB-B"]
    assert others("/invoices/drafts", "references.other$eq:odd $$$(1$)$*") == ["odd $(1)*"]
    client.post("/invoices/booked", json={"draftInvoice": {"draftInvoiceNumber": 1}})
    assert others("/invoices/booked", "references.other$eq:job-a") == ["job-a"]
    assert others("/invoices/drafts", "references.other$eq:job-a") == []


def test_customer_filters_in_like_and_combinations(client: httpx.Client) -> None:
    def numbers(query: str) -> list[int]:
        response = client.get("/customers", params={"filter": query, "pagesize": 100})
        assert response.status_code == 200, response.text
        return [c["customerNumber"] for c in response.json()["collection"]]

    assert numbers("customerNumber$in:[2,5,7,99]") == [2, 5, 7]
    assert len(numbers("customerNumber$nin:[2,5,7]")) == 22
    assert numbers("customerNumber$gte:3$and:customerNumber$lt:5") == [3, 4]
    assert numbers("customerNumber$eq:1$or:(customerNumber$gt:23$and:currency$ne:DKK)") == [1, 24]
    email = client.get("/customers/7").json()["email"]
    assert numbers(f"email$eq:{email.upper()}") == [7]
    assert 7 in numbers(f"name$like:{client.get('/customers/7').json()['name'][2:6]}")
    assert numbers("vatNumber$eq:$null:")[:2] == [1, 2]
    for bad in ("name$in:[a,b]", "balanceX$eq:1", "customerNumber$eq:abc", "name$xx:1"):
        assert client.get("/customers", params={"filter": bad}).status_code == 400, bad


def test_pagination_edges(client: httpx.Client) -> None:
    def page(**params: Any) -> dict[str, Any]:
        response = client.get("/customers", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = page()
    assert len(first["collection"]) == 20
    assert first["pagination"]["results"] == 25
    assert first["collection"][0]["self"] == f"{base(client)}/customers/1"
    seen = [c["customerNumber"] for c in first["collection"]]
    next_page = first["pagination"]["nextPage"]
    assert next_page.startswith(f"{base(client)}/customers?")
    rest = client.get(next_page).json()
    seen += [c["customerNumber"] for c in rest["collection"]]
    assert seen == list(range(1, 26)) and "nextPage" not in rest["pagination"]

    exactly = page(filter="customerNumber$lte:20")
    assert len(exactly["collection"]) == 20 and "nextPage" not in exactly["pagination"]
    assert exactly["pagination"]["resultsWithoutFilter"] == 25
    one_more = page(filter="customerNumber$lte:21")
    assert "filter=" in one_more["pagination"]["nextPage"]
    assert len(client.get(one_more["pagination"]["nextPage"]).json()["collection"]) == 1
    empty = page(filter="customerNumber$gt:1000")
    assert empty["collection"] == [] and empty["pagination"]["results"] == 0
    assert len(page(pagesize=1000)["collection"]) == 25
    too_big = client.get("/customers", params={"pagesize": 1001})
    assert too_big.status_code == 400
    assert_error_shape(too_big.json(), 400)
    assert page(sort="-customerNumber")["collection"][0]["customerNumber"] == 25
    assert client.get("/accounts").json()["pagination"]["results"] > 20


# --- journals ---------------------------------------------------------------------------------


def payment(**overrides: Any) -> dict[str, Any]:
    entry = {
        "customer": {"customerNumber": 1},
        "amount": 15000.00,
        "date": "2025-03-20",
        "text": "ledgerpush job-77",
        "customerInvoice": 1001,
        "currency": {"code": "DKK"},
    }
    entry.update(overrides)
    return {"accountingYear": {"year": "2025"}, "entries": {"customerPayments": [entry]}}


def test_payment_voucher_is_posted_and_found_again(client: httpx.Client) -> None:
    journals = client.get("/journals").json()["collection"]
    assert journals[0]["settings"]["contraAccounts"]["customerPayments"]["accountNumber"] == 5820
    posted = client.post("/journals/1/vouchers", json=payment())
    assert posted.status_code == 201, posted.text
    voucher = posted.json()
    entry = voucher["entries"]["customerPayments"][0]
    assert entry["contraAccount"]["accountNumber"] == 5820
    assert voucher["self"] == posted.headers["location"]

    found = client.get("/journals/1/entries", params={"filter": "text$eq:ledgerpush job-77"})
    rows = found.json()["collection"]
    assert [r["journalEntryNumber"] for r in rows] == [entry["journalEntryNumber"]]
    again = client.get(rows[0]["voucher"]["self"]).json()
    assert again["voucherNumber"] == voucher["voucherNumber"]
    assert again["entries"]["customerPayments"][0]["amount"] == 15000.0
    listed = client.get("/journals/1/vouchers").json()["collection"]
    assert [v["voucherNumber"] for v in listed] == [voucher["voucherNumber"]]

    numbered = client.post("/journals/1/vouchers", json={**payment(), "voucherNumber": 500})
    assert numbered.json()["self"].endswith("/journals/1/vouchers/2025-500")
    entry_number = numbered.json()["entries"]["customerPayments"][0]["journalEntryNumber"]
    assert client.delete(f"/journals/1/entries/{entry_number}").status_code == 204
    assert client.get("/journals/1/vouchers/2025-500").status_code == 404


def test_voucher_bulk_posting_returns_an_array(client: httpx.Client) -> None:
    response = client.post("/journals/1/vouchers", json=[payment(), payment(text="second")])
    assert response.status_code == 201
    assert [v["voucherNumber"] for v in response.json()] == [1, 2]


def test_voucher_validation_errors_are_annotated(client: httpx.Client) -> None:
    bad = payment(date="2026-01-02", customer={"customerNumber": 999}, amount=1.234)
    del bad["entries"]["customerPayments"][0]["text"]
    body = client.post("/journals/1/vouchers", json=bad).json()
    entry = ("entries", "customerPayments", 0)
    assert errors_at(body, *entry, "customer")[0]["errorCode"] == "E06000"
    assert errors_at(body, *entry, "amount")[0]["errorCode"] == "E04740"
    assert "accounting year" in errors_at(body, *entry, "date")[0]["message"]
    missing = payment()
    del missing["entries"]["customerPayments"][0]["amount"]
    del missing["accountingYear"]
    body = client.post("/journals/1/vouchers", json=missing).json()
    assert errors_at(body, *entry, "amount")[0]["errorCode"] == "E00200"
    assert errors_at(body, "accountingYear")[0]["errorCode"] == "E00200"
    finance = {"accountingYear": {"year": "2025"}, "entries": {"financeVouchers": [
        {"account": {"accountNumber": 5820}, "amount": 10, "date": "2025-02-01"}]}}  # fmt: skip
    restricted = client.post("/journals/2/vouchers", json=finance)
    assert restricted.status_code == 400
    assert client.post("/journals/1/vouchers", json=finance).status_code == 201


# --- modules, fair use, faults, control ------------------------------------------------------


def test_module_endpoints_answer_with_an_error_until_the_module_is_on(
    client: httpx.Client, sim: EconomicSimulator
) -> None:
    for path in ("/projects", "/departmental-distributions"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert_error_shape(response.json(), 403)
    line = {
        **draft()["lines"][0],
        "departmentalDistribution": {"departmentalDistributionNumber": 1},
    }
    refused = client.post("/invoices/drafts", json=draft(lines=[line]))
    assert errors_at(refused.json(), "lines", 0, "departmentalDistribution")
    client.put(
        "/_control/agreements/demo-dk/modules", json={"modules": ["Projects", "Departments"]}
    )
    assert len(client.get("/projects").json()["collection"]) == 2
    assert client.get("/departmental-distributions").json()["pagination"]["results"] == 3
    assert client.post("/invoices/drafts", json=draft(lines=[line])).status_code == 201


def test_fair_use_budget_answers_429_per_agreement() -> None:
    simulator = EconomicSimulator(app_secret_token=SECRET, rate_limit_per_day=3)
    simulator.add_agreement("DK", grant_token="a")
    simulator.add_agreement("DK", grant_token="b")
    server = SimulatorServer(simulator.app).start()
    try:
        with make_client(server, "a") as first, make_client(server, "b") as second:
            assert [first.get("/self").status_code for _ in range(3)] == [200, 200, 200]
            refused = first.get("/self")
            assert second.get("/self").status_code == 200
    finally:
        server.stop()
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0
    assert_error_shape(refused.json(), 429)


def test_drop_after_write_still_applies_the_write(client: httpx.Client) -> None:
    client.put("/_control/faults", json={"drop_after_write_rate": 1.0, "seed": 3})
    with pytest.raises(httpx.TransportError):
        client.post("/invoices/drafts", json=draft(references={"other": "job-dropped"}))
    client.put("/_control/faults", json={"drop_after_write_rate": 0.0})
    found = client.get("/invoices/drafts", params={"filter": "references.other$eq:job-dropped"})
    assert found.json()["pagination"]["results"] == 1
    assert client.get("/_control/stats").json()["faults"]["drop_after_write"] >= 1


def test_seeded_faults_and_seed_data_are_deterministic() -> None:
    def run() -> tuple[list[int], dict[str, Any]]:
        simulator = EconomicSimulator(
            app_secret_token=SECRET, faults=Faults(error_rate=0.5, seed=42)
        )
        simulator.add_agreement("NO", grant_token="x")
        server = SimulatorServer(simulator.app).start()
        try:
            with make_client(server, "x") as http:
                statuses = [http.get("/customers/1").status_code for _ in range(24)]
        finally:
            server.stop()
        state = simulator.state_dump()["x"]
        state.pop("agreementNumber")  # unique across every simulator, like e-conomic's
        return statuses, state

    first, second = run(), run()
    assert first == second
    assert {200, 503} == set(first[0])


def test_control_routes(client: httpx.Client) -> None:
    client.post("/invoices/drafts", json=draft())
    state = client.get("/_control/state").json()
    assert len(state["demo-dk"]["drafts"]) == 1 and len(state["demo-dk"]["customers"]) == 25
    assert client.post("/_control/reset").status_code == 200
    assert client.get("/_control/state").json()["demo-dk"]["drafts"] == []
    faults = client.put("/_control/faults", json={"latency_ms": 1}).json()
    assert faults["latency_ms"] == 1.0
    assert client.put("/_control/faults", json={"nope": 1}).status_code == 400
    assert client.get("/_control/stats").json()["total"] >= 1
    assert client.post("/_control/stats/reset").status_code == 200
    assert client.post("/_control/agreements", json={"country": "XX"}).status_code == 400


def test_installation_flow_redirects_with_a_grant_token(
    client: httpx.Client, server: SimulatorServer, sim: EconomicSimulator
) -> None:
    url = sim.installation_url("http://app.example/callback?state=s1", base_url=server.url)
    response = client.get(url + "&agreement=NO", follow_redirects=False)
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert location.params["state"] == "s1"
    with make_client(server, location.params["token"]) as http:
        assert http.get("/self").json()["settings"]["baseCurrency"] == "NOK"
    existing = client.get(url + "&agreement=demo-dk", follow_redirects=False)
    assert httpx.URL(existing.headers["location"]).params["token"] == "demo-dk"
    wrong = client.get("/_control/install", params={"appPublicToken": "x", "redirectUrl": "y"})
    assert wrong.status_code == 400


# --- customers and products -------------------------------------------------------------------


def test_customer_create_put_and_duplicates(client: httpx.Client) -> None:
    new = {
        "name": "Lindely Kaffe ApS",
        "currency": "DKK",
        "customerGroup": {"customerGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
        "email": "faktura@lindely.dk",
    }
    created = client.post("/customers", json=new)
    assert created.status_code == 201
    assert created.json()["customerNumber"] == 26
    duplicate = client.post("/customers", json={**new, "customerNumber": 26})
    assert errors_at(duplicate.json(), "customerNumber")[0]["errorCode"] == "E06010"
    full = {**created.json(), "city": "Vejle"}
    assert client.put("/customers/26", json=full).json()["city"] == "Vejle"
    no_name = {k: v for k, v in full.items() if k != "name"}
    assert client.put("/customers/26", json=no_name).status_code == 400
    assert (
        client.get("/customers", params={"filter": "email$eq:faktura@lindely.dk"}).json()[
            "pagination"
        ]["results"]
        == 1
    )
    assert client.post("/_control/reset").status_code == 200
    assert client.get("/customers/26").status_code == 404


def test_product_self_links_use_the_custom_encoding(client: httpx.Client) -> None:
    product = {
        "productNumber": "Rabat 5%_X",
        "name": "Rabat",
        "productGroup": {"productGroupNumber": 1},
    }
    created = client.post("/products", json=product)
    assert created.status_code == 201
    assert created.json()["self"].endswith("/products/Rabat_9_5_3__8_X")
    assert client.get(created.json()["self"]).json()["name"] == "Rabat"
    line = {"product": {"self": created.json()["self"]}, "description": "Rabat", "quantity": 1,
            "unitNetPrice": -50}  # fmt: skip
    assert client.post("/invoices/drafts", json=draft(lines=[line])).json()["grossAmount"] == -62.5
    assert client.post("/products", json=product).status_code == 400


def test_booking_instructions_template_can_be_posted(client: httpx.Client) -> None:
    number = client.post("/invoices/drafts", json=draft()).json()["draftInvoiceNumber"]
    template = client.get(f"/invoices/drafts/{number}/templates").json()
    instructions = client.get(template["bookingInstructions"]).json()
    booked = client.post("/invoices/booked", json={"draftInvoice": instructions["draftInvoice"]})
    assert booked.status_code == 201 and booked.json()["bookedInvoiceNumber"] == 1


def test_drafts_can_be_deleted_by_filter(client: httpx.Client) -> None:
    for other in ("keep", "drop-1", "drop-2"):
        client.post("/invoices/drafts", json=draft(references={"other": other}))
    deleted = client.delete("/invoices/drafts", params={"filter": "references.other$like:drop*"})
    assert deleted.json()["deletedCount"] == 2
    remaining = client.get("/invoices/drafts").json()["collection"]
    assert [d["references"]["other"] for d in remaining] == ["keep"]
    assert client.delete("/invoices/drafts/1").json()["message"] == "Deleted invoice."


def test_reference_data_endpoints(client: httpx.Client) -> None:
    years = client.get("/accounting-years").json()["collection"]
    assert [y["year"] for y in years] == ["2025", "2026", "2027"]
    periods = client.get("/accounting-years/2025/periods").json()["collection"]
    assert len(periods) == 12 and periods[1]["toDate"] == "2025-02-28"
    vat = client.get("/vat-accounts/U25").json()
    assert vat["ratePercentage"] == 25.0 and vat["account"]["self"].endswith("/accounts/6901")
    zones = [z["name"] for z in client.get("/vat-zones").json()["collection"]]
    assert zones[:3] == ["Domestic", "EU", "Abroad"]
    for path in ("/layouts", "/payment-terms", "/units", "/currencies", "/customer-groups"):
        assert client.get(path).json()["collection"], path
    sales = client.get("/product-groups/1/sales-accounts").json()["collection"]
    assert sales[0]["salesAccount"]["vatAccount"]["vatCode"] == "U25"
    missing = client.get("/no-such-endpoint")
    assert missing.status_code == 404
    assert_error_shape(missing.json(), 404)
