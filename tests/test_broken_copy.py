"""A broken message that carries the key of a valid job (a producer sending it again with
a bad field) is kept with its reason under a key of its own: the valid job is neither
failed nor changed, and books (the real pipeline, the session's eAccounting simulator)."""

from __future__ import annotations

from tests.conftest import connect_ea_tenant, invoice_job, payment_job, unique
from tests.test_retry_budget import unregister_waiting
from worker import pipeline
from worker.jobs import INVALID_PAYLOAD, job_id_for
from worker.ledger.models import Job
from worker.ledger.queries import JobFilter, find_jobs
from worker.ledger.store import find_job


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
