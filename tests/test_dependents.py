"""A payment or credit note that arrived before its invoice is sent again when the invoice
settles (worker/dependents.py), not after backoffs. The dependent's first delivery runs in
this process (pipeline.process), which schedules no retry message: the only way it can run
again is the invoice's run waking it in the session worker."""

from __future__ import annotations

from typing import Any

from tests.conftest import (
    WorkerProcess,
    connect_ea_tenant,
    credit_note_job,
    invoice_job,
    payment_job,
    unbookable_line,
    wait_for,
)
from worker import pipeline
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.models import Job
from worker.ledger.store import attempts_of, events_of
from worker.transport.producer import enqueue, send


def settled(job_id: str, states: tuple[str, ...] = ("booked", "failed")) -> Job:
    def done() -> Job | None:
        job = store.find_job(job_id)
        return job if job is not None and job.state in states else None

    result: Job = wait_for(done, 60)
    return result


def event_id(job_id: str, state: str) -> int:
    return next(e.id for e in events_of(job_id) if e.to_state == state)


def waits(payload: dict[str, Any]) -> str:
    """The dependent's first run: its invoice is not booked, so it waits."""
    assert pipeline.process(payload).state == "retry_scheduled"
    job_id = job_id_for(payload["tenant_id"], payload["idempotency_key"])
    assert store.get_job(job_id).error_code == "invoice_not_booked"
    return job_id


def test_payment_and_credit_note_are_sent_again_when_their_invoice_is_booked(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    invoice = invoice_job(tenant)
    waiting = [waits(payment_job(tenant, invoice["idempotency_key"], "100.00")),
               waits(credit_note_job(tenant, invoice["idempotency_key"]))]  # fmt: skip
    invoice_id = enqueue(invoice)
    assert settled(invoice_id).state == "booked"
    for job_id in waiting:
        job = settled(job_id)
        assert job.state == "booked", (job.error_code, job.error_message)
        # One wait, then one run right after the invoice was booked: no backoff rounds.
        assert len(attempts_of(job_id)) == 2
        assert event_id(job_id, "booked") > event_id(invoice_id, "booked")


def test_payment_is_dead_lettered_as_soon_as_its_invoice_fails(
    session_worker: WorkerProcess, ea_sim: Any
) -> None:
    tenant = connect_ea_tenant("NO")
    invoice = invoice_job(tenant, lines=[unbookable_line()])  # fails: too many decimals
    job_id = waits(payment_job(tenant, invoice["idempotency_key"], "100.00"))
    invoice_id = send(invoice, "invoice", job_id_for(tenant, invoice["idempotency_key"]))
    assert settled(invoice_id).state == "failed"
    job = settled(job_id, ("failed",))
    assert job.error_code == "invoice_not_bookable"
    assert len(attempts_of(job_id)) == 2
    assert event_id(job_id, "failed") > event_id(invoice_id, "failed")
