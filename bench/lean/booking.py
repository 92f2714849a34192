"""Draft and book with ledgerpush's own provider clients and nothing else.

Both anchors use this: the same request bodies (the providers' own body builders), the
same pooled httpx client and auth, the same error mapping, the same simulators, but no
ledger, no lease, no outbox and no rate limiter. References are resolved once per tenant
and customer (`prepared`) and then kept in process memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.jobs import InvoiceJob, parse_job
from worker.providers import provider_for
from worker.providers.base import Plan, StepContext
from worker.tenancy.tenants import get_tenant


class NoLimit:
    """Stands in for the rate limiter: every slot is free at once."""

    def acquire(self, key: str, rate: Any, *_: Any, **__: Any) -> float:
        return 0.0


class NoRecord(list[Any]):
    """Stands in for the provider's call record: threads share the client, nothing is kept."""

    def append(self, item: Any) -> None:
        return None


@dataclass
class Prepared:
    """One tenant's plan (its provider client, one customer's references resolved)."""

    plan: Plan
    country: str
    mapping: dict[str, Any]


def key_of(job: InvoiceJob) -> tuple[str, str]:
    return job.tenant_id, job.invoice.customer.external_id


def prepare(job: InvoiceJob) -> Prepared:
    """Resolve the references a draft of `job` needs (reads the tenant and the shared
    reference cache once; the caller keeps the result in memory)."""
    tenant = get_tenant(job.tenant_id)
    provider: Any = provider_for(tenant)
    provider.http.limiter = NoLimit()
    provider.http.calls = NoRecord()
    ctx = StepContext(
        job=job,
        tenant_id=tenant.id,
        country=tenant.country,
        mapping=dict(tenant.mapping),
        remote={},
    )
    return Prepared(provider.prepare(ctx), tenant.country, dict(tenant.mapping))


def prepare_all(payloads: list[dict[str, Any]]) -> dict[tuple[str, str], Prepared]:
    found: dict[tuple[str, str], Prepared] = {}
    for payload in payloads:
        job = parse_job(payload)
        assert isinstance(job, InvoiceJob)
        if key_of(job) not in found:
            found[key_of(job)] = prepare(job)
    return found


def draft_and_book(prepared: Prepared, job: InvoiceJob) -> dict[str, Any]:
    """The two provider calls of one invoice: POST the draft, then book it."""
    ctx = StepContext(
        job=job,
        tenant_id=job.tenant_id,
        country=prepared.country,
        mapping=prepared.mapping,
        remote={},
    )
    ctx.remote["draft"] = prepared.plan.step("draft").write(ctx)
    return prepared.plan.step("book").write(ctx)
