"""The overflow queue: a tenant's jobs beyond its fair share go to ledgerpush.bulk."""

from __future__ import annotations

from tests.conftest import WorkerProcess, invoice_job, unique, wait_for
from worker.jobs import job_id_for
from worker.ledger.store import find_job
from worker.settings import get_settings
from worker.transport import fairness
from worker.transport.app import BULK_QUEUE, INVOICES_QUEUE, QUEUES, TASK_FOR_KIND, app


def test_jobs_beyond_the_threshold_overflow_and_settling_frees_room() -> None:
    tenant = unique("flood")
    threshold = get_settings().tenant_overflow_after
    queues = [fairness.route(tenant, f"job-{n}", INVOICES_QUEUE) for n in range(threshold + 3)]
    assert queues[:threshold] == [INVOICES_QUEUE] * threshold
    assert queues[threshold:] == [BULK_QUEUE] * 3
    assert fairness.pending(tenant) == threshold + 3
    for n in range(4):
        fairness.settled({"tenant_id": tenant}, f"job-{n}")
    assert fairness.pending(tenant) == threshold - 1
    assert fairness.route(tenant, "job-next", INVOICES_QUEUE) == INVOICES_QUEUE


def test_a_duplicate_message_counts_once_and_other_tenants_are_unaffected() -> None:
    tenant, other = unique("dup"), unique("calm")
    for _ in range(20):
        assert fairness.route(tenant, "same-job", INVOICES_QUEUE) == INVOICES_QUEUE
    assert fairness.pending(tenant) == 1
    assert fairness.route(other, "job-1", INVOICES_QUEUE) == INVOICES_QUEUE


def test_settling_a_message_of_another_producer_is_harmless() -> None:
    tenant = unique("raw")
    assert fairness.route(tenant, "counted", INVOICES_QUEUE) == INVOICES_QUEUE
    fairness.settled({"tenant_id": tenant}, "not-counted")
    fairness.settled("not a dict", "counted")
    fairness.settled({"tenant_id": tenant}, None)
    assert fairness.pending(tenant) == 1  # only settling the counted job frees its place
    fairness.settled({"tenant_id": tenant}, "counted")
    assert fairness.pending(tenant) == 0


def test_workers_consume_the_overflow_queue(session_worker: WorkerProcess) -> None:
    """Jobs past the threshold sit only in ledgerpush.bulk: the worker must take them."""
    tenant = unique("flood")
    jobs = [invoice_job(tenant) for _ in range(get_settings().tenant_overflow_after + 2)]
    ids = [job_id_for(tenant, job["idempotency_key"]) for job in jobs]
    queues = [fairness.route(tenant, job_id, INVOICES_QUEUE) for job_id in ids]
    assert BULK_QUEUE in QUEUES and queues[-2:] == [BULK_QUEUE, BULK_QUEUE]
    for job, job_id, queue in zip(jobs, ids, queues, strict=True):
        app.send_task(TASK_FOR_KIND["invoice"], args=[job], queue=queue, task_id=job_id)
    # No such tenant: each job fails at once, which proves a worker received it.
    settled = wait_for(lambda: all((j := find_job(i)) and j.state == "failed" for i in ids), 60)
    assert settled
