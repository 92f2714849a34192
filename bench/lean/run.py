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
from worker.jobs import InvoiceJob, parse_job

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
