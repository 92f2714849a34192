"""A broken message that carries the key of a valid job (a producer sending it again with
a bad field) is kept with its reason under a key of its own: the valid job is neither
failed nor changed, and books (the real pipeline, the session's eAccounting simulator)."""

from __future__ import annotations

import pytest

from tests.conftest import connect_ea_tenant, invoice_job, payment_job, unique
from tests.test_retry_budget import unregister_waiting
from worker import pipeline
from worker.jobs import INVALID_PAYLOAD, job_id_for
from worker.ledger.models import Job
from worker.ledger.queries import JobFilter, find_jobs
from worker.ledger.store import accept_job, find_job
from worker.ops import operations


def test_a_broken_copy_of_a_waiting_job_leaves_it_alone() -> None:
    tenant = connect_ea_tenant("NO")
    invoice = invoice_job(tenant, unique("inv"))
    payment = payment_job(tenant, invoice["idempotency_key"], "100.00")
    assert pipeline.process(payment).state == "retry_scheduled"  # waits for its invoice
    broken = {**payment, "payment": {**payment["payment"], "amount": "-5"}}
    assert pipeline.process(broken).state == "failed"

    job_id = job_id_for(tenant, payment["idempotency_key"])
    waiting = find_job(job_id)
    assert waiting is not None and waiting.state == "retry_scheduled"
    assert waiting.payload["payment"]["amount"] == "100.00"
    kept = _kept_invalid(tenant)
    assert len(kept) == 1 and kept[0].idempotency_key.startswith("invalid-")
    assert kept[0].payload["payment"]["amount"] == "-5"
    assert f"key {payment['idempotency_key']!r} of job {job_id}" in (kept[0].error_message or "")
    assert kept[0].error_fields and kept[0].error_fields[0]["field"] == "payment.amount"

    assert pipeline.process(broken).state == "failed"  # again: the same row, nothing new
    assert len(_kept_invalid(tenant)) == 1
    unregister_waiting(tenant, invoice["idempotency_key"])
    assert pipeline.process(invoice).state == "booked"
    assert pipeline.process(payment).state == "booked"


def _kept_invalid(tenant: str) -> list[Job]:
    """What an operator finds filtering the tenant's jobs by the error code."""
    return find_jobs(JobFilter(tenant=tenant, error_code=INVALID_PAYLOAD)).jobs


def test_a_broken_job_found_unfailed_is_failed_on_its_own_row() -> None:
    """A delivery that stored the broken payload and stopped before failing it (the
    ledger went away): the next delivery fails that row, keeping no second one, and an
    operator's retry of it is refused as replay's is."""
    tenant = connect_ea_tenant("NO")
    broken = invoice_job(tenant, unique("inv"))
    broken["invoice"]["lines"][0]["unit_price"] = 12.5  # a float: money is a string
    key = broken["idempotency_key"]
    job_id = job_id_for(tenant, key)
    accept_job(job_id, tenant, key, "invoice", pipeline.storable(broken))
    assert pipeline.process(broken).state == "failed"
    failed = find_job(job_id)
    assert failed is not None and failed.error_code == INVALID_PAYLOAD
    assert "left as it is" not in (failed.error_message or "")
    assert [j.id for j in _kept_invalid(tenant)] == [job_id]
    with pytest.raises(operations.ActionRefused, match="payload is invalid"):
        operations.retry(job_id, "test")
