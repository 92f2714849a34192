"""Enqueue → a real Celery worker process → the ledger."""

from __future__ import annotations

from typing import Any

from tests.conftest import WorkerProcess, invoice_job, unique, wait_for
from worker.app import INVOICE_TASK, INVOICES_QUEUE, app
from worker.ledger.store import events_of, find_job, find_job_by_key
from worker.producer import enqueue


def _terminal(job_id: str) -> Any:
    job = find_job(job_id)
    return job if job is not None and job.state in ("failed", "booked") else None


def test_unknown_tenant_fails_once_with_reason(session_worker: WorkerProcess) -> None:
    job_id = enqueue(invoice_job(unique("nobody")))
    job = wait_for(lambda: _terminal(job_id))
    assert job.state == "failed"
    assert job.error_code == "unknown_tenant"
    assert "tenants add" in (job.error_message or "")
    assert job.attempts == 0


def test_same_key_enqueued_twice_gives_one_row(session_worker: WorkerProcess) -> None:
    payload = invoice_job(unique("nobody"), "inv-dup")
    first, second = enqueue(payload), enqueue(payload)
    assert first == second
    wait_for(lambda: _terminal(first))
    events = events_of(first)
    assert [e.to_state for e in events].count("received") == 1


def test_raw_message_with_bad_payload_is_kept(session_worker: WorkerProcess) -> None:
    tenant = unique("raw")
    bad = invoice_job(tenant, "inv-bad")
    bad["invoice"]["lines"][0]["unit_price"] = 12.5
    app.send_task(INVOICE_TASK, args=[bad], queue=INVOICES_QUEUE)
    job = wait_for(lambda: find_job_by_key(tenant, "inv-bad"))
    job = wait_for(lambda: _terminal(job.id))
    assert job.error_code == "invalid_payload"
    assert job.error_fields[0]["field"] == "invoice.lines.0.unit_price"
    assert job.payload["invoice"]["lines"][0]["unit_price"] == 12.5
    assert "ready" in session_worker.output() or session_worker.process is not None
