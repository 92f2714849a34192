"""Runs the two anchors on a ledgerpush stack whose tenants are warmed up already.

The floor: the measured invoices' two provider calls in this process, on a thread pool of
as many threads as the ledgerpush run had in-flight slots; its CPU is this process's CPU
time over those calls only. The lean worker (`lean.tasks`): the same invoices queued
first, then the worker processes started and timed as ledgerpush's are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _stack
from _stack import Stack, log, percentiles

from lean.booking import draft_and_book, key_of, prepare_all
from worker.jobs import InvoiceJob, job_id_for, parse_job

BENCH = Path(__file__).resolve().parent.parent


def run_floor(jobs: list[dict[str, Any]], slots: int) -> dict[str, Any]:
    log(f"[floor] {len(jobs)} invoices, draft + book only, {slots} threads in one process")
    prepared = prepare_all(jobs)
    parsed = [parse_job(job) for job in jobs]

    def one(job: Any) -> float | None:
        try:
            draft_and_book(prepared[key_of(job)], job)
        except Exception as exc:  # counted, not raised: the figure says how many failed
            log(f"[floor] {job.idempotency_key}: {type(exc).__name__}: {exc}")
            return None
        return time.time()

    with ThreadPoolExecutor(slots) as pool:
        cpu_before, started = time.process_time(), time.time()
        finished = [t for t in pool.map(one, parsed) if t is not None]
        cpu = time.process_time() - cpu_before
    span = max(finished) - started if finished else float("nan")
    return {
        "invoices": len(jobs),
        "booked": len(finished),
        "threads": slots,
        "run_seconds": round(span, 2),
        "invoices_per_second": round(len(finished) / span, 1),
        "cpu_ms_per_invoice": round(cpu * 1000 / max(len(finished), 1), 2),
    }


def run_ledger_alone(jobs: list[dict[str, Any]], booked_tag: str) -> dict[str, Any]:
    """The ledger writes a booked invoice commits, and nothing else: accepting it (with
    its tenant's read), the first intent with the attempt, the draft's result with the
    book step's intent, the booking with the attempt's end and its outbound event; in
    this process, one thread, on the stack's database; no Celery, HTTP or Redis. Each
    invoice copies the remote results of the invoice of the same number that the
    measured run (`booked_tag`) booked for its tenant. CPU: this thread's."""
    from worker.ledger import store
    from worker.ledger.models import BOOKED, BOOKING, DRAFTED, DRAFTING, RESOLVING

    log(f"[ledger alone] {len(jobs)} invoices, their ledger writes only, one thread")
    planned = []
    for job in jobs:
        tenant, key = job["tenant_id"], job["idempotency_key"]
        twin = store.find_job_by_key(tenant, key.replace(key.split("-", 1)[0], booked_tag, 1))
        if twin is not None and twin.state == BOOKED:
            planned.append((job, dict(twin.remote)))
    at = "2026-01-01T00:00:00+00:00"
    cpu_before, started = time.thread_time(), time.time()
    for job, remote in planned:
        tenant, key = job["tenant_id"], job["idempotency_key"]
        *earlier, last = (step for step in remote if step != "rounding")
        row, _, _ = store.accept_job_with_tenant(
            job_id_for(tenant, key), tenant, key, "invoice", job
        )
        begin = store.AttemptStart("ledger-alone", RESOLVING, row.updated_at)
        first = {"step": earlier[-1], "at": at}
        attempt = store.advance(row.id, DRAFTING, intent=first, begin=begin)
        assert attempt is not None
        drafted = {step: remote[step] for step in earlier}
        second = {"step": last, "at": at}
        store.advance(row.id, BOOKING, intent=second, settled=(DRAFTED, drafted))
        store.advance(row.id, BOOKED, remote=remote, intent=None, end_attempt=(attempt[0], []))
    cpu = time.thread_time() - cpu_before
    span = time.time() - started
    from worker.ledger.db import engine

    return {
        "database": engine().dialect.name,
        "invoices": len(planned),
        "transactions_per_invoice": 4,
        "run_seconds": round(span, 2),
        "cpu_ms_per_invoice": round(cpu * 1000 / max(len(planned), 1), 2),
    }


def run_lean(
    stack: Stack, jobs: list[dict[str, Any]], workers: int, concurrency: int, events: bool
) -> dict[str, Any]:
    assert stack.redis is not None
    broker = stack.redis.url.rsplit("/", 1)[0] + "/2"
    warm = stack.home / "lean-warm.json"
    warm.write_text(json.dumps(_one_per_customer(jobs)))
    os.environ["LEAN_BROKER_URL"] = broker
    from lean.tasks import app, done_store

    app.conf.broker_url = broker
    log(f"[lean] enqueueing {len(jobs)} invoices, then starting {workers} x {concurrency}")
    for job in jobs:
        app.send_task("lean.book_invoice", args=[job])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(BENCH), str(BENCH.parent)]),
        "LEAN_WARM": str(warm),
        "LEDGERPUSH_TASK_EVENTS": "true" if events else "false",
    }
    started = [_start(index, concurrency, env, stack.home) for index in range(workers)]
    for process, log_path in started:
        _stack.wait_for_ready(process, log_path)
    processes = [process for process, _ in started]
    try:
        meter = _stack.CpuMeter(lambda: [p.pid for p in processes])
        meter.start()
        deadline = time.monotonic() + 1800
        while done_store().hlen("lean:done") < len(jobs) and time.monotonic() < deadline:
            if all(p.poll() is not None for p in processes):
                break
            time.sleep(0.2)
        time.sleep(1)  # lets stragglers that failed show as not booked
        cpu = meter.stop()
        peak = max(_stack.peak_rss_mib(p.pid) for p in processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    times = [tuple(map(float, v.split())) for v in done_store().hvals("lean:done")]
    span = max(f for _, f in times) - min(s for s, _ in times) if times else float("nan")
    return {
        "invoices": len(jobs),
        "booked": len(times),
        "in_flight_slots": workers * concurrency,
        "run_seconds": round(span, 2),
        "invoices_per_second": round(len(times) / span, 1),
        "service_ms": {
            k: round(v * 1000, 1) for k, v in percentiles([f - s for s, f in times]).items()
        },
        "worker_cpu_ms_per_invoice": round(cpu * 1000 / max(len(times), 1), 2),
        "peak_worker_rss_mib": round(peak, 1),
    }


def _one_per_customer(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for payload in jobs:
        job = parse_job(payload)
        assert isinstance(job, InvoiceJob)
        seen.setdefault(key_of(job), payload)
    return list(seen.values())


def _start(index: int, concurrency: int, env: dict[str, str], home: Path) -> tuple[Any, Path]:
    log_path = home / f"lean-worker-{index}.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "lean.tasks", "worker",
                "--pool", "threads", "--concurrency", str(concurrency),
                "--loglevel", "INFO", "--hostname", f"lean{index}@%h",
            ],
            cwd=BENCH, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, log_path
