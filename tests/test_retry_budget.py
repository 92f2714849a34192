"""What the retry limit (LEDGERPUSH_MAX_RETRIES) counts and what a job that reaches it
becomes: waiting for its invoice is not a failure of the job's own, and a job whose last
write is unconfirmed is failed for review, never as a plain failure (the real pipeline
against the session's eAccounting simulator over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import connect_ea_tenant, invoice_job, payment_job, unique, wait_for
from worker import dependents, pipeline
from worker.jobs import job_id_for
from worker.ledger.store import attempts_of, find_job
from worker.ops import operations
from worker.settings import get_settings
from worker.transport.redis_client import get_redis


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One retry of the job's own; unanswered writes looked up at once."""
    monkeypatch.setenv("LEDGERPUSH_MAX_RETRIES", "1")
    monkeypatch.setenv("LEDGERPUSH_RETRY_HORIZON", "3600")
    monkeypatch.setenv("LEDGERPUSH_WRITE_SETTLE_SECONDS", "0")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def faults(ea_sim: Any) -> Iterator[Any]:
    yield ea_sim.faults
    ea_sim.faults.update({"error_rate": 0.0, "drop_after_write_rate": 0.0})


def unregister_waiting(tenant_id: str, invoice_key: str) -> None:
    """These tests run the waiting job themselves: no copy of it is woken for a worker
    of the session when its invoice books."""
    get_redis().delete(dependents.waiting_key(tenant_id, invoice_key))


def _state(job: dict[str, Any]) -> tuple[str, str | None]:
    row = find_job(job_id_for(job["tenant_id"], job["idempotency_key"]))
    assert row is not None
    return row.state, row.error_code


def test_waiting_for_the_invoice_does_not_use_up_retries(limited: None, faults: Any) -> None:
    tenant = connect_ea_tenant("NO")
    invoice = invoice_job(tenant, unique("inv"))
    payment = payment_job(tenant, invoice["idempotency_key"], "100.00")
    for _ in range(4):  # more waits than the limit allows failures
        assert pipeline.process(payment).state == "retry_scheduled"
        assert _state(payment) == ("retry_scheduled", "invoice_not_booked")
    unregister_waiting(tenant, invoice["idempotency_key"])
    assert pipeline.process(invoice).state == "booked"
    faults.update({"error_rate": 1.0})
    # The job's first failure of its own: retried, not dead-lettered as attempt 5 of 1.
    assert pipeline.process(payment).state == "retry_scheduled"
    assert _state(payment) == ("retry_scheduled", "provider_unavailable")
    faults.update({"error_rate": 0.0})
    assert pipeline.process(payment).state == "booked"
    job_id = job_id_for(tenant, payment["idempotency_key"])
    assert len(attempts_of(job_id)) == 6


def test_giving_up_with_an_unconfirmed_write_fails_the_job_for_review(
    limited: None, faults: Any, ea_sim: Any
) -> None:
    """The draft is written but its answer lost, then every lookup fails: the job gives
    up at its limit as `write_unconfirmed` (category needs_review), cancel is refused, and
    a replay adopts the draft: one invoice, no stray draft."""
    tenant = connect_ea_tenant("NO")
    # The customer exists after this one: the next job's only write is its draft.
    assert pipeline.process(invoice_job(tenant, unique("warm"))).state == "booked"
    job = invoice_job(tenant, unique("inv"))
    job_id = job_id_for(tenant, job["idempotency_key"])
    faults.update({"drop_after_write_rate": 1.0})
    assert pipeline.process(job).state == "retry_scheduled"
    faults.update({"drop_after_write_rate": 0.0, "error_rate": 1.0})
    assert pipeline.process(job).state == "failed"
    failed = find_job(job_id)
    assert failed is not None and failed.intent
    assert (failed.error_category, failed.error_code) == ("needs_review", "write_unconfirmed")
    assert "may have been applied" in (failed.error_message or "")
    with pytest.raises(operations.ActionRefused, match="may have been applied"):
        operations.cancel(job_id, "test")
    faults.update({"error_rate": 0.0})
    operations.replay(job_id, "test")
    # Run here, or by a worker of the session that took the replay's message first.
    assert wait_for(lambda: pipeline.process(job).state == "booked", 30, interval=0.5)
    company = ea_sim.state_dump()[tenant]
    ours = [i for i in company["invoices"] if i.get("YourReference") == "PO-7781"]
    assert len(ours) == 2  # the warm-up's and this job's
    assert not company["drafts"]
