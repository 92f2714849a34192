"""The jobs of a chaos run: invoices, credit notes of them and payments of them over the
tenants, drawn from the run's seed and built by the job factories (factories.py)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from worker.devtools import factories
from worker.devtools.chaos.plan import TENANTS, TenantPlan


@dataclass
class Plan:
    """The jobs of one run, reproducible from the seed."""

    jobs: list[dict[str, Any]]
    tenants: dict[str, TenantPlan]


def plan_jobs(count: int, rng: random.Random) -> Plan:
    today = dt.date.today()
    issued, paid, due = today - dt.timedelta(2), today - dt.timedelta(1), today + dt.timedelta(14)
    jobs: list[dict[str, Any]] = []
    open_invoices: dict[str, list[dict[str, Any]]] = {t.tenant_id: [] for t in TENANTS}
    for number in range(count):
        tenant = rng.choice(TENANTS)
        key = f"chaos-{number:05d}"
        candidates = open_invoices[tenant.tenant_id]
        roll = rng.random()
        if candidates and roll < 0.15:
            original = candidates.pop(rng.randrange(len(candidates)))
            jobs.append(_credit_note(tenant, key, original, paid))
        elif candidates and roll < 0.40:
            original = candidates.pop(rng.randrange(len(candidates)))
            jobs.append(_payment(tenant, key, original, paid, rng))
        else:
            job = _invoice(tenant, key, issued, due, rng)
            jobs.append(job)
            candidates.append(job)
    return Plan(jobs, {t.tenant_id: t for t in TENANTS})


def _invoice(
    tenant: TenantPlan, key: str, issued: dt.date, due: dt.date, rng: random.Random
) -> dict[str, Any]:
    number = rng.randint(1, 5)
    lines = [
        factories.line(
            f"Chaos {key} item {index + 1}",
            str(rng.randint(1, 5)),
            f"{rng.randint(100, 2000)}.00",
            rng.choice(tenant.rates),
        )
        for index in range(rng.randint(1, 3))
    ]
    postal, city = tenant.city
    customer = factories.customer(
        f"chaos-c{number}",
        f"Chaos Customer {number} {tenant.country}",
        tenant.country,
        (f"Main street {number}", postal, city),
        is_private_person=False,
    )
    return factories.invoice_job(
        tenant.tenant_id, key, currency=tenant.currency, customer=customer, lines=lines,
        issue_date=issued, due_date=due, your_reference=key,
    )  # fmt: skip


def _credit_note(
    tenant: TenantPlan, key: str, original: dict[str, Any], day: dt.date
) -> dict[str, Any]:
    first = original["invoice"]["lines"][0]
    lines = [{**first, "description": f"Credit {key}", "quantity": "1"}]
    return factories.credit_note_job(
        tenant.tenant_id, key, original["idempotency_key"], issue_date=day, reason=key, lines=lines
    )


def gross_of(invoice: dict[str, Any]) -> Decimal:
    return sum(
        (
            Decimal(line["quantity"])
            * Decimal(line["unit_price"])
            * (1 + Decimal(line["vat_rate"]) / 100)
        ).quantize(Decimal("0.01"))
        for line in invoice["invoice"]["lines"]
    ) or Decimal(0)


def _payment(
    tenant: TenantPlan, key: str, original: dict[str, Any], day: dt.date, rng: random.Random
) -> dict[str, Any]:
    gross = gross_of(original)
    share = Decimal(rng.choice(("0.25", "0.5", "0.8")))
    amount = (gross * share).quantize(Decimal("0.01"))
    return factories.payment_job(
        tenant.tenant_id, key, original["idempotency_key"], f"{amount:.2f}",
        currency=tenant.currency, payment_date=day, reference=key,
    )  # fmt: skip
