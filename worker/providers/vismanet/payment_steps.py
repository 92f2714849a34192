"""A customer payment in Visma.net: `pay` creates it applied to the released invoice
(`paymentRef` = the job's key, `paymentAmount` = the applied sum), `release` releases it.

The release is always performed in the background: it answers 202 with a request id,
which is recorded with the step's intent (`ctx.record_progress`) before it is polled at
`GET /v1/background/{id}` (kept 24 hours). After a crash the lookup polls that id and
never sends the release again; without one, or once it failed, the payment's status
decides.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import httpx

from worker.jobs import PaymentJob
from worker.providers.base import Plan, ProviderError, Rejected, Step, StepContext, Transient
from worker.providers.vismanet import documents as bodies
from worker.providers.vismanet import transport
from worker.providers.vismanet.errors import fields_of, map_error
from worker.providers.vismanet.references import References
from worker.providers.vismanet.transport import VismaNetHttp, path_id

RELEASED = ("Open", "Closed")


def invoice_number(ctx: StepContext) -> str:
    """The released invoice a payment or credit note refers to (its job's result)."""
    return str(ctx.related["invoice"]["book"]["number"])


def invoice_customer(ctx: StepContext) -> str:
    return str(ctx.related["invoice"]["draft"]["customer"])


class PaymentSteps:
    def __init__(self, http: VismaNetHttp, refs: References) -> None:
        self.http = http
        self.refs = refs

    def plan(self, ctx: StepContext, job: PaymentJob) -> Plan:
        release = Step("release", self._release, self._find_released)
        if "pay" in ctx.remote:
            return Plan((release,))
        payment = job.payment
        self.refs.require_open_period(payment.payment_date, "payment.payment_date")
        self.refs.currency_places(payment.currency, "payment.currency")
        body = bodies.payment_body(
            payment, job.idempotency_key, invoice_customer(ctx), invoice_number(ctx),
            self.refs.payment_method(), self.refs.cash_account(payment.currency),
            self.refs.branch_number(),
        )  # fmt: skip
        pay = Step(
            "pay",
            functools.partial(self._pay, body),
            self._find_payment,
            serialise_on=payment.invoice_idempotency_key,
        )
        return Plan((pay, release))

    def _pay(self, body: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        try:
            number = self.http.create("/v1/customerPayment", body)
        except Rejected as exc:
            raise as_payment_error(exc) from None
        return {"number": number, "invoice": invoice_number(ctx)}

    def _find_payment(self, ctx: StepContext) -> list[dict[str, Any]]:
        """Payments of the invoice's customer applied to it, carrying this job's key."""
        key = ctx.job.idempotency_key
        found = self.http.collect(
            "/v1/customerPayment",
            {"customer": invoice_customer(ctx), "invoiceRefNbr": invoice_number(ctx)},
        )
        return [
            {"number": str(p.get("refNbr")), "invoice": invoice_number(ctx)}
            for p in found
            if p.get("paymentRef") == key
        ]

    def _release(self, ctx: StepContext) -> dict[str, Any]:
        number = ctx.remote["pay"]["number"]
        response = self.http.request(
            "POST",
            f"/v1/customerPayment/{path_id(number)}/action/release",
            json=bodies.release_payment_body(),
        )
        if response.status_code != 202:
            return {"number": number}
        background = str(response.json().get("id") or "")
        ctx.record_progress({"background_id": background})
        return self._result(number, background, self.await_background(background))

    def _find_released(self, ctx: StepContext) -> list[dict[str, Any]]:
        """A recorded background request is polled, never sent again; without one (or
        once it failed) the payment's status tells."""
        number = ctx.remote["pay"]["number"]
        background = str(ctx.intent.get("background_id") or "")
        if background:
            state = self.await_background(background)
            if state.get("status") == "Finished":
                return [self._result(number, background, state)]
        payment = self.http.get_json(f"/v1/customerPayment/{path_id(number)}")
        if payment.get("status") in RELEASED:
            return [{"number": number}]
        return []

    def await_background(self, request_id: str) -> dict[str, Any]:
        """The request's state once it is Finished or Failed; Transient if still running."""
        deadline = time.monotonic() + transport.WAIT_SECONDS
        while True:
            state: dict[str, Any] = self.http.get_json(f"/v1/background/{path_id(request_id)}")
            if state.get("status") in ("Finished", "Failed"):
                return state
            if time.monotonic() >= deadline:
                raise Transient(
                    f"background request {request_id} is still running; polled again later",
                    "background_pending",
                    retry_after=5,
                )
            time.sleep(transport.POLL_SECONDS)

    def _result(self, number: str, request_id: str, state: dict[str, Any]) -> dict[str, Any]:
        code = int(state.get("statusCode") or 0)
        if state.get("status") == "Finished" and 200 <= code < 300:
            return {"number": number, "background_id": request_id}
        raise self._error(request_id, state, code)

    def _error(self, request_id: str, state: dict[str, Any], code: int) -> ProviderError:
        """The inner answer (at `/content`) mapped like a direct one; a failure without
        one is transient (the payment is still unreleased: released again later)."""
        if 400 <= code < 500 and state.get("hasResponseContent"):
            try:
                content = self.http.request("GET", f"/v1/background/{path_id(request_id)}/content")
            except ProviderError as exc:
                return as_payment_error(exc)
            inner = httpx.Response(code, content=content.content, request=content.request)
            return as_payment_error(map_error(inner, "payment"))
        text = state.get("errorMessage") or f"status {state.get('status')}, HTTP {code}"
        return Transient(f"the background release failed: {text}", "background_failed")


def as_payment_error(exc: ProviderError) -> ProviderError:
    if isinstance(exc, Rejected):
        exc.fields = fields_of(exc.original or exc.message, "payment")
    return exc
