"""Operator actions keep the exactly-once rules: never while a copy of the job runs, never
a cancel over a write that may have landed; and every dead letter alerts, whatever the
path that made it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import connect_ea_tenant, invoice_job, payment_job, unbookable_line, unique
from worker import pipeline
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import session
from worker.ledger.models import RETRY_SCHEDULED, OutboundEvent
from worker.ops import operations
from worker.settings import get_settings
from worker.transport.lease import JobLease


def _accepted(tenant_id: str = "ops-tenant") -> str:
    job = invoice_job(tenant_id, unique("ops"))
    job_id = job_id_for(tenant_id, job["idempotency_key"])
    store.accept_job(job_id, tenant_id, job["idempotency_key"], "invoice", job)
    return job_id


def test_cancel_is_refused_while_a_write_is_unanswered() -> None:
    job_id = _accepted()
    store.transition(
        job_id,
        RETRY_SCHEDULED,
        note="draft: connection dropped",
        intent={"step": "draft", "at": "2026-11-20T10:00:00+00:00"},
    )
    with pytest.raises(operations.ActionRefused, match="unanswered and may have been applied"):
        operations.cancel(job_id, "ops@example.com")
    assert store.get_job(job_id).state == RETRY_SCHEDULED


@pytest.mark.parametrize("action", [operations.cancel, operations.retry, operations.replay])
def test_actions_wait_until_no_copy_of_the_job_runs(action: Any) -> None:
    job_id = _accepted()
    store.transition(job_id, RETRY_SCHEDULED, note="transient")
    lease = JobLease(job_id, seconds=30)
    assert lease.acquire()
    try:
        with pytest.raises(operations.ActionRefused, match="running right now"):
            action(job_id, "ops@example.com")
        assert store.get_job(job_id).state == RETRY_SCHEDULED
    finally:
        lease.release()
    assert action(job_id, "ops@example.com").state in ("cancelled", "received")


@pytest.fixture
def webhooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LEDGERPUSH_WEBHOOK_URL", "http://127.0.0.1:9/hooks")
    monkeypatch.setenv("LEDGERPUSH_WEBHOOK_SECRET", "whsec-test")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _failure_alerts(job_id: str) -> list[OutboundEvent]:
    """The job.failed events (delivered to LEDGERPUSH_WEBHOOK_URL and every subscriber)."""
    with session() as db:
        query = db.query(OutboundEvent).filter(
            OutboundEvent.type == "job.failed", OutboundEvent.job_id == job_id
        )
        return query.all()


def test_unknown_tenant_is_dead_lettered_with_one_alert(webhooks: None) -> None:
    tenant_id = unique("nobody")
    job = invoice_job(tenant_id, unique("inv"))
    job_id = job_id_for(tenant_id, job["idempotency_key"])
    assert pipeline.process(job).state == "failed"
    assert pipeline.process(job).state == "failed"  # a redelivery: no second alert
    assert store.get_job(job_id).error_code == "unknown_tenant"
    [alert] = _failure_alerts(job_id)
    assert alert.payload["data"]["error"]["code"] == "unknown_tenant"


def test_invalid_payload_is_dead_lettered_with_one_alert(webhooks: None) -> None:
    tenant_id = unique("bad")
    job = invoice_job(tenant_id, unique("inv"))
    job["invoice"]["currency"] = "kroner"
    job_id = job_id_for(tenant_id, job["idempotency_key"])
    assert pipeline.process(job).state == "failed"
    assert pipeline.process(job).state == "failed"
    [alert] = _failure_alerts(job_id)
    assert alert.payload["data"]["error"]["code"] == "invalid_payload"


def test_payment_for_a_failed_invoice_is_dead_lettered_not_left_waiting(ea_sim: Any) -> None:
    tenant = connect_ea_tenant("NO")
    bad = invoice_job(tenant, "inv-bad", lines=[unbookable_line()])
    assert pipeline.process(bad).state == "failed"
    assert pipeline.process(payment_job(tenant, "inv-bad", "10.00", key="pay-1")).state == "failed"
    job = store.get_job(job_id_for(tenant, "pay-1"))
    assert job.error_code == "invoice_not_bookable"
    assert job.error_fields == [
        {"field": "payment.invoice_idempotency_key", "message": "invoice job is failed"}
    ]


def test_a_reference_still_missing_after_a_refresh_is_dead_lettered(ea_sim: Any) -> None:
    """ReferenceStale: drop the tenant's cached references and retry once; the same error
    on fresh references means the reference is really gone, not a reason to loop."""
    from worker.providers import provider_for
    from worker.providers.base import ReferenceStale
    from worker.tenancy.refcache import TenantCache
    from worker.tenancy.tenants import get_tenant

    tenant = get_tenant(connect_ea_tenant("NO"))
    job_id = _accepted(tenant.id)
    gone = ReferenceStale("VAT code 7 no longer exists", "reference_stale")
    loads: list[str] = []
    cached = TenantCache(tenant.id).get("vatcodes", lambda: loads.append("load") or ["7"])
    assert cached == ["7"] and TenantCache(tenant.id).get("vatcodes", lambda: ["x"]) == ["7"]
    first = pipeline._handle_error(store.get_job(job_id), tenant, gone, 1, provider_for(tenant))
    assert first.state == "retry_scheduled"
    # The cached references were dropped: the next job loads them from the provider again.
    assert TenantCache(tenant.id).get("vatcodes", lambda: loads.append("load") or ["8"]) == ["8"]
    assert loads == ["load", "load"]
    second = pipeline._handle_error(store.get_job(job_id), tenant, gone, 2, provider_for(tenant))
    assert second.state == "failed"
    job = store.get_job(job_id)
    assert (job.error_category, job.error_code) == ("rejected", "reference_stale")
    assert "also after refreshing references" in (job.error_message or "")
