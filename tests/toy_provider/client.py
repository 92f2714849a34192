"""The toy provider's client: a two-step plan (draft, book) with lookups by reference."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import httpx

from worker.ledger.models import Tenant
from worker.providers.base import Call, Plan, Step, StepContext
from worker.providers.documents import document_of
from worker.providers.limits import Limits

LIMITS = Limits(
    provider="Toy",
    price_field="price",
    domestic_price_places=2,
    foreign_price_places=2,
    quantity_field="quantity",
    quantity_places=2,
    discount_field="discount",
    discount_percent_places=2,
    description_field="text",
    description_length=200,
    max_lines=100,
    payment_field="amount",
    payment_places=2,
)


class ToyProvider:
    name = "toy"

    def __init__(self, tenant: Tenant) -> None:
        self.http = httpx.Client(base_url=os.environ["TOY_API_URL"], timeout=10)
        self.calls: list[Call] = []

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        started = time.monotonic()
        response = self.http.request(method, path, **kwargs)
        self.calls.append(Call(method, path, response.status_code, time.monotonic() - started))
        response.raise_for_status()
        return response.json()

    def invalidate_references(self) -> None:
        return None

    def prepare(self, ctx: StepContext) -> Plan:
        customer = document_of(ctx)["customer"].external_id  # the one reference it needs
        draft = Step("draft", functools.partial(self._draft, customer), self._find_draft)
        return Plan((draft, Step("book", self._book, self._find_booked)))

    def _draft(self, customer: str, ctx: StepContext) -> dict[str, Any]:
        lines = [
            {"text": line.description, "amount": str(line.quantity * line.unit_price)}
            for line in document_of(ctx)["lines"]
        ]
        body = {"reference": ctx.job.idempotency_key, "customer": customer, "lines": lines}
        return {"id": self._call("POST", "/drafts", json=body)["id"]}

    def _book(self, ctx: StepContext) -> dict[str, Any]:
        booked = self._call("POST", f"/drafts/{ctx.remote['draft']['id']}/book")
        return {"number": booked["invoice_number"]}

    def _find_draft(self, ctx: StepContext) -> list[dict[str, Any]]:
        found = self._call("GET", "/documents", params={"reference": ctx.job.idempotency_key})
        return [{"id": d["id"]} for d in found]

    def _find_booked(self, ctx: StepContext) -> list[dict[str, Any]]:
        found = self._call("GET", "/documents", params={"reference": ctx.job.idempotency_key})
        return [{"number": f"T-{d['id']}"} for d in found if d["booked"]]
