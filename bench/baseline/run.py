"""Runs the baseline worker (bench/baseline/tasks.py) on the throughput workload."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _stack
from _stack import Stack, log, percentiles

BENCH = Path(__file__).resolve().parent.parent


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    return dict(_stack.isolated(_run, args))


def _run(args: argparse.Namespace) -> dict[str, Any]:
    tenants = _stack.tenant_set(args.tenants)
    concurrency = args.baseline_concurrency or os.cpu_count() or 1
    with Stack("baseline", latency_ms=args.latency_ms) as stack:
        assert stack.redis is not None and stack.sims is not None
        log(f"[baseline] connecting {len(tenants)} tenants")
        stack.connect(tenants)
        broker = stack.redis.url.rsplit("/", 1)[0] + "/1"
        tenants_file = stack.home / "baseline-tenants.json"
        tenants_file.write_text(json.dumps(_credentials(tenants)))
        log_path = stack.home / "baseline-worker.log"
        env = {**os.environ, "BASELINE_BROKER_URL": broker, "BASELINE_TENANTS": str(tenants_file)}
        with open(log_path, "wb") as out:
            worker = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "baseline.tasks", "worker",
                    "--pool", "prefork", "--concurrency", str(concurrency),
                    "--loglevel", "INFO", "--hostname", "baseline@%h",
                ],
                cwd=BENCH, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _stack.wait_for_ready(worker, log_path)
            from baseline.tasks import app, done_store

            app.conf.broker_url = broker
            os.environ["BASELINE_BROKER_URL"] = broker
            warm = list(_stack.interleaved(tenants, args.customers, "warm", args.customers))
            for job in warm:
                app.send_task("baseline.book_invoice", args=[job, time.time()])
            log(f"[baseline] warm-up: {len(warm)} invoices ({concurrency} prefork processes)")
            _wait_done(done_store(), len(warm), args.timeout)
            stack.sims.call("reset_log")
            per_tenant = max(args.baseline_invoices // len(tenants), 1)
            jobs = list(_stack.interleaved(tenants, per_tenant, "run", args.customers))
            log(f"[baseline] measured run: {len(jobs)} invoices")
            meter = _stack.CpuMeter(lambda: [worker.pid])
            meter.start()
            sent: dict[str, float] = {}
            for job in jobs:
                now = time.time()
                sent[job["idempotency_key"] + "@" + job["tenant_id"]] = now
                app.send_task("baseline.book_invoice", args=[job, now])
            _wait_done(done_store(), len(warm) + len(jobs), args.timeout)
            cpu = meter.stop()
            peak = sum(_stack.peak_rss_mib(pid) for pid in _stack.tree_pids(worker.pid))
            calls = stack.sims.call("log")
            finished = {k.decode(): float(v) for k, v in done_store().hgetall("bl:done").items()}
        finally:
            worker.terminate()
            worker.wait(30)
    return _summary(args, jobs, sent, finished, calls, cpu, peak, concurrency)


def _credentials(tenants: list[tuple[str, str, str]]) -> dict[str, Any]:
    from worker.providers.eaccounting.settings import provider_settings as eaccounting
    from worker.providers.economic.settings import provider_settings as economic
    from worker.tenancy.tenants import credentials_of, get_tenant

    found: dict[str, Any] = {}
    for tenant_id, provider, _ in tenants:
        creds = credentials_of(get_tenant(tenant_id))
        if provider == "eaccounting":
            found[tenant_id] = {
                "provider": provider,
                "api_url": eaccounting().api_url,
                "access_token": creds["access_token"],
            }
        else:
            found[tenant_id] = {
                "provider": provider,
                "api_url": economic().api_url,
                "grant_token": creds["grant_token"],
                "app_secret_token": economic().app_secret_token.get_secret_value(),
            }
    return found


def _wait_done(store: Any, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while store.hlen("bl:done") < expected and time.monotonic() < deadline:
        time.sleep(0.5)


def _summary(
    args: argparse.Namespace,
    jobs: list[dict[str, Any]],
    sent: dict[str, float],
    finished: dict[str, float],
    calls: dict[str, Any],
    cpu: float,
    peak: float,
    concurrency: int,
) -> dict[str, Any]:
    done = {k: finished[k] for k in sent if k in finished}
    first = min(sent.values())
    span = max(done.values()) - first if done else float("nan")
    total_calls = calls["ea"]["total"] + calls["ec"]["total"]
    statuses: dict[str, int] = {}
    for side in ("ea", "ec"):
        for status, count in calls[side]["by_status"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "invoices": len(jobs),
        "booked": len(done),
        "prefork_processes": concurrency,
        "run_seconds": round(span, 2),
        "invoices_per_second": round(len(done) / span, 2),
        "provider_calls_per_invoice_steady": round(total_calls / max(len(done), 1), 2),
        "responses_by_status": statuses,
        "enqueue_to_booked_ms": {
            k: round(v * 1000, 1) for k, v in percentiles([done[k] - sent[k] for k in done]).items()
        },
        "worker_cpu_ms_per_invoice": round(cpu * 1000 / max(len(done), 1), 2),
        "peak_worker_rss_mib_all_processes": round(peak, 1),
    }
