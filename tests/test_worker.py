"""Enqueue → a real Celery worker process → the ledger."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests.conftest import (
    SIMULATORS,
    WorkerProcess,
    connect_ea_tenant,
    connect_vn_tenant,
    invoice_job,
    unique,
    wait_for,
)
from worker.devtools.factories import payment_job
from worker.ledger.db import session
from worker.ledger.models import Job
from worker.ledger.store import events_of, find_job, find_job_by_key
from worker.transport.app import INVOICE_TASK, INVOICES_QUEUE, app
from worker.transport.producer import enqueue


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


def _in_flight(job_id: str) -> bool:
    """A message of the job is still queued, delivered but not acknowledged (running, or
    held for a later retry), or published but not yet received (outbox)."""
    from worker.transport import outbox
    from worker.transport.app import QUEUES
    from worker.transport.redis_client import get_redis

    redis = get_redis()
    held = [m for queue in QUEUES for m in redis.lrange(queue, 0, -1)]
    held += redis.hvals("unacked")
    return any(job_id.encode() in m for m in held) or bool(outbox.pending([job_id]))


def _rows(tenant: str, key: str) -> int:
    with session() as db:
        return int(
            db.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.tenant_id == tenant, Job.idempotency_key == key)
            )
            or 0
        )


def _booked_invoices(tenant: str) -> list[dict[str, Any]]:
    invoices: list[dict[str, Any]] = SIMULATORS["ea"].state_dump()[tenant]["invoices"]
    return invoices


def test_a_worker_process_books_on_visma_net_and_pays_in_the_background(
    session_worker: WorkerProcess,
) -> None:
    """The session's Visma.net simulator is where worker processes find it
    (LEDGERPUSH_VISMANET_*), and a tenant from `connect_vn_tenant` can be paid."""
    tenant = connect_vn_tenant()
    invoice = invoice_job(tenant, "inv-vn")
    booked = wait_for(lambda: _terminal(enqueue(invoice)))
    assert booked.state == "booked", (booked.error_code, booked.error_message)
    pay = payment_job(
        tenant, "pay-vn", "inv-vn", "5000.00", payment_date="2026-11-22", reference="bank"
    )
    paid = wait_for(lambda: _terminal(enqueue(pay)))
    assert paid.state == "booked", (paid.error_code, paid.error_message)
    company = SIMULATORS["vn"].companies[f"{tenant}-company"]
    [document] = company.documents.values()
    assert (document.fields["externalReference"], document.status) == ("inv-vn", "Open")
    assert str(document.balance) == "10000.00"
    [payment] = company.payments.values()
    assert payment.fields["paymentRef"] == "pay-vn" and payment.status in ("Open", "Closed")


def test_same_key_enqueued_twice_gives_one_row(session_worker: WorkerProcess) -> None:
    tenant = connect_ea_tenant("NO")
    payload = invoice_job(tenant, "inv-dup")
    first, second = enqueue(payload), enqueue(payload)
    assert first == second
    job = wait_for(lambda: _terminal(first))
    assert job.state == "booked", (job.error_code, job.error_message)
    # Both copies consumed (a copy that met the other one running comes back later):
    # nothing of the job left in Redis, twice in a row.
    wait_for(lambda: not _in_flight(first) and not _in_flight(first), 40, interval=0.25)
    assert _rows(tenant, "inv-dup") == 1
    assert [e.to_state for e in events_of(first)].count("received") == 1
    assert len(_booked_invoices(tenant)) == 1


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
    # The worker logged the bad payload (the line may follow the commit) and kept running.
    wait_for(lambda: "invalid payload kept as failed job" in session_worker.output())
    assert session_worker.process is not None and session_worker.process.poll() is None


def raw_celery_message(task: str, queue: str, payload: dict[str, Any], task_id: str) -> bytes:
    """The message a producer in any language pushes; mirrors the README's example."""
    import base64
    import json
    import time

    body = [
        [payload],
        {"enqueued_at": time.time()},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]
    message = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": task_id,
        },
    }
    return json.dumps(message).encode()


def test_raw_redis_message_from_another_language(session_worker: WorkerProcess) -> None:
    from worker.jobs import job_id_for
    from worker.transport.redis_client import get_redis

    tenant = unique("polyglot")
    payload = invoice_job(tenant, "inv-raw")
    job_id = job_id_for(tenant, "inv-raw")
    get_redis().lpush(
        INVOICES_QUEUE, raw_celery_message(INVOICE_TASK, INVOICES_QUEUE, payload, job_id)
    )
    job = wait_for(lambda: _terminal(job_id))
    assert job.error_code == "unknown_tenant"


def test_plain_celery_worker_logs_like_ledgerpush(base_env: dict[str, str]) -> None:
    """`celery -A worker.transport.app worker` gets our log format (JSON, secrets scrubbed), not
    Celery's own: the same set-up as `ledgerpush worker`."""
    import json
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.transport.app",
        "worker",
        "--pool",
        "threads",
    ]
    command += ["--concurrency", "1", "--queues", unique("unused-queue"), "--loglevel", "INFO"]
    worker = subprocess.Popen(command, env=base_env, stderr=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        assert worker.stderr is not None
        for line in worker.stderr:
            lines.append(line)
            if "ready" in line:
                break
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    ready = json.loads(lines[-1])
    assert ready["level"] == "INFO" and "ready" in ready["msg"], lines


def test_two_workers_racing_on_one_key_book_it_once(base_env: dict[str, str]) -> None:
    """Copies of the same raw message taken by two worker processes while the first copy is
    in the middle of its draft write: both workers take copies, one ledger row, one booked
    invoice. Which worker consumes when is steered, so the race is certain."""
    import threading

    from tests.connection_support import only_these_consume
    from worker.jobs import job_id_for
    from worker.transport.redis_client import get_redis

    workers = [WorkerProcess(unique("race"), base_env, concurrency=4) for _ in range(2)]
    starters = [threading.Thread(target=w.start) for w in workers]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    sim = SIMULATORS["ea"]
    try:
        assert all(w.process is not None and w.process.poll() is None for w in workers)
        first, second = workers
        tenant = connect_ea_tenant("NO")
        job_id = job_id_for(tenant, "inv-race")
        message = raw_celery_message(
            INVOICE_TASK, INVOICES_QUEUE, invoice_job(tenant, "inv-race"), job_id
        )
        holds = sim.log.snapshot()["faults"].get("hang_after_write", 0)
        sim.faults.update(
            {"hang_after_write_path": "/customerinvoicedrafts$", "hang_after_write_limit": 1,
             "hang_seconds": 60}
        )  # fmt: skip
        with only_these_consume([first]):
            get_redis().lpush(INVOICES_QUEUE, *[message] * 3)
            # The first copy's draft is written and its answer held: it holds the job.
            wait_for(lambda: sim.log.snapshot()["faults"].get("hang_after_write", 0) > holds)
        with only_these_consume([second]):
            get_redis().lpush(INVOICES_QUEUE, *[message] * 3)
            wait_for(lambda: "running elsewhere" in second.output() and job_id in second.output())
        sim.faults.update({"hang_after_write_path": ""})  # the first copy hears back now
        with only_these_consume(workers):
            job = wait_for(lambda: _terminal(job_id), 60)
        assert job.state == "booked", (job.error_code, job.error_message)
        assert job_id in first.output() and job_id in second.output()
        assert _rows(tenant, "inv-race") == 1
        assert len(_booked_invoices(tenant)) == 1
    finally:
        for worker in workers:
            worker.stop()
    assert _rows(tenant, "inv-race") == 1
    assert len(_booked_invoices(tenant)) == 1
