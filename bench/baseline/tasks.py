"""The baseline: how a typical hand-written integration books an invoice.

Written the way the public integration examples do it, on purpose: one Celery task per
invoice, the prefork pool with Celery's default concurrency (one process per core),
Celery's own retry (`autoretry_for`, exponential backoff) on any HTTP error, and every
reference looked up again on every invoice: the fiscal year, the chart of accounts, the
VAT codes, the customer (created when missing), the article or product for the line,
then the draft and the booking. No cache, no rate limiter, no ledger: a 429 is just
another error to retry, and a retry after a lost answer can book twice.

    BASELINE_BROKER_URL=redis://... BASELINE_TENANTS=tenants.json \\
        celery -A baseline.tasks worker --pool prefork

Each booked invoice is recorded in Redis (`bl:done`, job key → finish time) for the
benchmark to read.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import redis
from celery import Celery

app = Celery("baseline", broker=os.environ.get("BASELINE_BROKER_URL", "redis://127.0.0.1/1"))
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)

_tenants: dict[str, dict[str, Any]] | None = None
_redis: redis.Redis | None = None


def tenants() -> dict[str, dict[str, Any]]:
    global _tenants
    if _tenants is None:
        with open(os.environ["BASELINE_TENANTS"]) as handle:
            _tenants = json.load(handle)
    return _tenants


def done_store() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["BASELINE_BROKER_URL"])
    return _redis


@app.task(
    name="baseline.book_invoice",
    autoretry_for=(httpx.HTTPError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def book_invoice(job: dict[str, Any], enqueued_at: float) -> str:
    tenant = tenants()[job["tenant_id"]]
    if tenant["provider"] == "eaccounting":
        number = book_eaccounting(tenant, job["invoice"])
    else:
        number = book_economic(tenant, job["invoice"])
    done_store().hset("bl:done", job["idempotency_key"] + "@" + job["tenant_id"], time.time())
    return str(number)


def _client(tenant: dict[str, Any]) -> httpx.Client:
    if tenant["provider"] == "eaccounting":
        headers = {"Authorization": f"Bearer {tenant['access_token']}"}
    else:
        headers = {
            "X-AppSecretToken": tenant["app_secret_token"],
            "X-AgreementGrantToken": tenant["grant_token"],
        }
    return httpx.Client(base_url=tenant["api_url"], headers=headers, timeout=20)


def _ok(response: httpx.Response) -> Any:
    if response.is_error:
        raise httpx.HTTPStatusError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}",
            request=response.request,
            response=response,
        )
    return response.json()


def book_eaccounting(tenant: dict[str, Any], invoice: dict[str, Any]) -> Any:
    with _client(tenant) as http:
        day = invoice["issue_date"]
        years = _ok(http.get("/fiscalyears"))["Data"]
        year = next(y for y in years if y["StartDate"][:10] <= day <= y["EndDate"][:10])
        _ok(http.get(f"/accounts/{year['Id']}"))
        _ok(http.get("/vatcodes"))
        customer = invoice["customer"]
        found = _ok(
            http.get(
                "/customers", params={"$filter": f"CustomerNumber eq '{customer['external_id']}'"}
            )
        )["Data"]
        if found:
            customer_id = found[0]["Id"]
        else:
            terms = _ok(http.get("/termsofpayments"))["Data"]
            customer_id = _ok(
                http.post(
                    "/customers",
                    json={
                        "CustomerNumber": customer["external_id"],
                        "Name": customer["name"],
                        "InvoiceAddress1": customer["address"]["line1"],
                        "InvoiceCity": customer["address"]["city"],
                        "InvoicePostalCode": customer["address"]["postal_code"],
                        "InvoiceCountryCode": customer["country"],
                        "EmailAddress": customer["email"],
                        "IsPrivatePerson": False,
                        "IsActive": True,
                        "TermsOfPaymentId": terms[0]["Id"],
                    },
                )
            )["Id"]
        article_id = _eaccounting_article(http)
        draft = _ok(
            http.post(
                "/customerinvoicedrafts",
                json={
                    "CustomerId": customer_id,
                    "InvoiceDate": day,
                    "DueDate": invoice["due_date"],
                    "InvoiceCurrencyCode": invoice["currency"],
                    "YourReference": invoice.get("your_reference"),
                    "RotReducedInvoicingType": 0,
                    "EuThirdParty": False,
                    "IsCreditInvoice": False,
                    "Rows": [
                        {
                            "LineNumber": index,
                            "ArticleId": article_id,
                            "Text": line["description"],
                            "Quantity": float(line["quantity"]),
                            "UnitPrice": float(line["unit_price"]),
                            "IsTextRow": False,
                            "ReversedConstructionServicesVatFree": False,
                        }
                        for index, line in enumerate(invoice["lines"])
                    ],
                },
            )
        )
        booked = _ok(
            http.post(f"/customerinvoicedrafts/{draft['Id']}/convert?keepOriginalDraftDate=true")
        )
        return booked.get("InvoiceNumber")


def _eaccounting_article(http: httpx.Client) -> str:
    """The article for 25 % VAT, looked up (and created once) on every invoice."""
    found = _ok(http.get("/articles", params={"$filter": "Number eq 'BL-VAT25'"}))["Data"]
    if found:
        return str(found[0]["Id"])
    codings = _ok(http.get("/articleaccountcodings"))["Data"]
    coding = next(c for c in codings if float(c.get("VatRatePercent") or 0) in (25, 0.25))
    units = _ok(http.get("/units"))["Data"]
    article = _ok(
        http.post(
            "/articles",
            json={
                "Number": "BL-VAT25",
                "Name": "Sales 25% VAT",
                "CodingId": coding["Id"],
                "UnitId": units[0]["Id"],
                "IsActive": True,
                "NetPrice": 0,
            },
        )
    )
    return str(article["Id"])


def book_economic(tenant: dict[str, Any], invoice: dict[str, Any]) -> Any:
    with _client(tenant) as http:
        _ok(http.get("/accounting-years"))
        _ok(http.get("/accounts"))
        _ok(http.get("/vat-accounts"))
        customer = invoice["customer"]
        number = int(customer["external_id"])
        response = http.get(f"/customers/{number}")
        if response.status_code == 404:
            groups = _ok(http.get("/customer-groups"))["collection"]
            terms = _ok(http.get("/payment-terms"))["collection"]
            layouts = _ok(http.get("/layouts"))["collection"]
            found = _ok(
                http.post(
                    "/customers",
                    json={
                        "customerNumber": number,
                        "name": customer["name"],
                        "currency": invoice["currency"],
                        "customerGroup": {"customerGroupNumber": groups[0]["customerGroupNumber"]},
                        "paymentTerms": {"paymentTermsNumber": terms[0]["paymentTermsNumber"]},
                        "vatZone": {"vatZoneNumber": 1},
                        "layout": {"layoutNumber": layouts[0]["layoutNumber"]},
                        "address": customer["address"]["line1"],
                        "zip": customer["address"]["postal_code"],
                        "city": customer["address"]["city"],
                        "country": customer["country"],
                        "email": customer["email"],
                    },
                )
            )
        else:
            found = _ok(response)
        products = _ok(http.get("/products"))["collection"]
        product = next(p for p in products if not p.get("barred"))
        draft = _ok(
            http.post(
                "/invoices/drafts",
                json={
                    "date": invoice["issue_date"],
                    "currency": invoice["currency"],
                    "customer": {"customerNumber": number},
                    "paymentTerms": {
                        "paymentTermsNumber": found["paymentTerms"]["paymentTermsNumber"]
                    },
                    "layout": {"layoutNumber": found["layout"]["layoutNumber"]},
                    "recipient": {
                        "name": customer["name"],
                        "vatZone": {"vatZoneNumber": found["vatZone"]["vatZoneNumber"]},
                    },
                    "lines": [
                        {
                            "lineNumber": index + 1,
                            "description": line["description"],
                            "quantity": float(line["quantity"]),
                            "unitNetPrice": float(line["unit_price"]),
                            "product": {"productNumber": product["productNumber"]},
                        }
                        for index, line in enumerate(invoice["lines"])
                    ],
                },
            )
        )
        booked = _ok(
            http.post(
                "/invoices/booked",
                json={"draftInvoice": {"draftInvoiceNumber": draft["draftInvoiceNumber"]}},
            )
        )
        return booked["bookedInvoiceNumber"]
