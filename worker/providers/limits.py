"""The limits of a provider's API that a valid job can still break, checked before any write.

Each provider module declares its `LIMITS` (from the reference documentation); a job is
checked against its tenant's provider when it is enqueued (when the tenant is known) and
again when a worker accepts it, so a job that would be refused halfway (after its customer
was written) fails before the first call instead. A tenant whose mapping says
`round_unit_prices=half_up` gets unit prices rounded to the provider's precision; the
rounding is recorded with the job's result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from worker.jobs import (
    CreditNoteJob,
    FieldError,
    InvoiceJob,
    JobValidationError,
    Line,
    PaymentJob,
    parse_job,
)
from worker.ledger import store
from worker.providers import registry
from worker.tenancy.tenants import find_tenant

AnyJob = InvoiceJob | CreditNoteJob | PaymentJob
ROUND_UNIT_PRICES = "round_unit_prices"
HALF_UP = "half_up"
LIMIT_CODE = "provider_limit"
log = logging.getLogger("ledgerpush.limits")


@dataclass(frozen=True)
class Limits:
    """Decimals per field and text lengths, named as the provider's API names them."""

    provider: str  # as shown to people: "e-conomic", "eAccounting"
    price_field: str
    domestic_price_places: int
    foreign_price_places: int
    quantity_field: str
    quantity_places: int
    discount_field: str
    discount_percent_places: int  # of the job's percent, whatever the API's unit
    description_field: str
    description_length: int
    max_lines: int | None
    payment_field: str
    payment_places: int | None

    def price_places(self, domestic: bool | None) -> int:
        """Unknown (a credit note whose invoice is not here yet): the lenient rule; the
        worker checks again once the invoice is known."""
        return self.domestic_price_places if domestic else self.foreign_price_places


@dataclass(frozen=True)
class Rounded:
    field: str
    sent: Decimal
    booked: Decimal
    line_total_difference: Decimal

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "sent": f"{self.sent}",
            "booked": f"{self.booked}",
            "line_total_difference": f"{self.line_total_difference.normalize():f}",
        }


def limits_for(provider: str) -> Limits | None:
    try:
        return registry.spec_for(provider).limits
    except registry.UnknownProvider:
        return None


def places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def rounds_unit_prices(mapping: dict[str, Any]) -> bool:
    return mapping.get(ROUND_UNIT_PRICES) == HALF_UP


def _lines(job: AnyJob) -> tuple[str, list[Line]]:
    if isinstance(job, InvoiceJob):
        return "invoice.lines", job.invoice.lines
    if isinstance(job, CreditNoteJob):
        return "credit_note.lines", job.credit_note.lines or []
    return "", []


def _domestic(job: AnyJob, company_country: str, original: dict[str, Any] | None) -> bool | None:
    if isinstance(job, InvoiceJob):
        return job.invoice.customer.country == company_country
    customer = ((original or {}).get("invoice") or {}).get("customer") or {}
    country = customer.get("country")
    return None if country is None else country == company_country


def _places_error(field: str, limits: Limits, api_field: str, allowed: int, value: Decimal) -> str:
    return (
        f"{limits.provider} allows at most {allowed} decimals in {api_field} "
        f"(got {value}; field {field})"
    )


def _line_problems(
    prefix: str, index: int, line: Line, limits: Limits, price_places: int, rounding: bool
) -> Iterator[FieldError]:
    path = f"{prefix}.{index}"
    if places(line.unit_price) > price_places and not rounding:
        yield FieldError(
            field=f"{path}.unit_price",
            message=_places_error(
                f"{path}.unit_price", limits, limits.price_field, price_places, line.unit_price
            )
            + f"; round it at the producer, or set the tenant's mapping {ROUND_UNIT_PRICES}="
            f"{HALF_UP}",
        )
    if places(line.quantity) > limits.quantity_places:
        yield FieldError(
            field=f"{path}.quantity",
            message=_places_error(
                f"{path}.quantity",
                limits,
                limits.quantity_field,
                limits.quantity_places,
                line.quantity,
            ),
        )
    if places(line.discount_percent) > limits.discount_percent_places:
        yield FieldError(
            field=f"{path}.discount_percent",
            message=f"{limits.provider} allows a discount of at most "
            f"{limits.discount_percent_places} decimals in percent ({limits.discount_field}; "
            f"got {line.discount_percent})",
        )
    if len(line.description) > limits.description_length:
        yield FieldError(
            field=f"{path}.description",
            message=f"{limits.provider} allows at most {limits.description_length} characters "
            f"in {limits.description_field} (got {len(line.description)})",
        )


def _payment_problems(job: PaymentJob, limits: Limits) -> Iterator[FieldError]:
    allowed = limits.payment_places
    if allowed is not None and places(job.payment.amount) > allowed:
        field = "payment.amount"
        message = _places_error(field, limits, limits.payment_field, allowed, job.payment.amount)
        yield FieldError(field=field, message=message)


def problems(
    job: AnyJob,
    limits: Limits,
    company_country: str,
    mapping: dict[str, Any],
    original: dict[str, Any] | None = None,
) -> list[FieldError]:
    """Every limit of `limits` the job breaks, each naming the job's field and the rule."""
    found: list[FieldError] = []
    prefix, lines = _lines(job)
    if limits.max_lines is not None and len(lines) > limits.max_lines:
        found.append(
            FieldError(
                field=prefix,
                message=f"{limits.provider} takes at most {limits.max_lines} lines "
                f"(got {len(lines)})",
            )
        )
    price_places = limits.price_places(_domestic(job, company_country, original))
    rounding = rounds_unit_prices(mapping)
    for index, line in enumerate(lines):
        found.extend(_line_problems(prefix, index, line, limits, price_places, rounding))
    if isinstance(job, PaymentJob):
        found.extend(_payment_problems(job, limits))
    return found


def round_prices(
    job: AnyJob, limits: Limits, company_country: str, original: dict[str, Any] | None = None
) -> tuple[AnyJob, list[Rounded]]:
    """The job with unit prices rounded half up to the provider's precision, and what changed."""
    prefix, lines = _lines(job)
    allowed = limits.price_places(_domestic(job, company_country, original))
    quantum = Decimal(1).scaleb(-allowed)
    changes: list[Rounded] = []
    new_lines: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        data = line.model_dump(mode="json")
        if places(line.unit_price) > allowed:
            booked = line.unit_price.quantize(quantum, rounding=ROUND_HALF_UP)
            share = 1 - line.discount_percent / 100
            difference = (booked - line.unit_price) * line.quantity * share
            changes.append(
                Rounded(f"{prefix}.{index}.unit_price", line.unit_price, booked, difference)
            )
            data["unit_price"] = f"{booked}"
        new_lines.append(data)
    if not changes:
        return job, []
    payload = job.model_dump(mode="json")
    section = "invoice" if isinstance(job, InvoiceJob) else "credit_note"
    payload[section]["lines"] = new_lines
    return parse_job(payload), changes


def original_payload(job: AnyJob) -> dict[str, Any] | None:
    """The payload of the invoice a credit note credits, when the ledger has it."""
    if not isinstance(job, CreditNoteJob):
        return None
    original = store.find_job_by_key(job.tenant_id, job.credit_note.original_idempotency_key)
    return dict(original.payload) if original is not None else None


def enforce(
    job: AnyJob, provider: str, company_country: str, mapping: dict[str, Any]
) -> tuple[AnyJob, list[Rounded]]:
    """Raise JobValidationError for a broken limit; else the job to send (rounded when the
    tenant asks for it) and the rounding done."""
    limits = limits_for(provider)
    if limits is None:
        return job, []
    original = original_payload(job)
    found = problems(job, limits, company_country, mapping, original)
    if found:
        raise JobValidationError(found)
    if not rounds_unit_prices(mapping):
        return job, []
    return round_prices(job, limits, company_country, original)


def check_enqueued(job: AnyJob) -> None:
    """At the door: refuse a job its tenant's provider would refuse (raises
    JobValidationError). A tenant not configured yet is checked when the job runs."""
    try:
        tenant = find_tenant(job.tenant_id)
    except SQLAlchemyError as exc:  # the worker checks again before any write
        log.warning("limits of job %s not checked at enqueue: %s", job.job_id, exc)
        return
    if tenant is not None:
        enforce(job, tenant.provider, tenant.country, dict(tenant.mapping or {}))
