"""/metrics scrape latency with 1,000,000 jobs (and as many attempts) in the ledger.

    .venv/bin/python bench/metrics_scrape.py [--jobs 1000000] [--tenants 100]
        [--scrapes 300] [--interval 0.05] [--json]

A throw-away home: the bundled Redis, a SQLite ledger filled by bulk insert (one
attempt per job, ended two days ago; jobs spread over states and tenants), and a real
`ledgerpush web` process scraped over HTTP. Figures: the first scrape (nothing cached
yet: it counts the jobs itself), later scrapes (cached counts; a recount runs in the
background when they are older than a few seconds), and how long one recount takes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _stack
from _stack import emit, log, percentiles

from worker.devtools.localstack import LocalStack, wait_until_up
from worker.transport.children import stop_on_signals
from worker.transport.embedded_redis import free_port

STATES = (("booked", 0.93), ("failed", 0.03), ("cancelled", 0.02), ("retry_scheduled", 0.01),
          ("waiting_for_reauth", 0.01))  # fmt: skip
BATCH = 20_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between scrapes")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores it in SQLite


def add_tenants(count: int) -> list[str]:
    from worker.tenancy.tenants import add_tenant

    ids = []
    for number in range(count):
        provider, country = ("eaccounting", "NO") if number % 2 else ("economic", "DK")
        tenant_id = f"bench-{number:04d}"
        add_tenant(tenant_id, provider, country, None)
        ids.append(tenant_id)
    return ids


def fill(path: str, tenants: list[str], jobs: int) -> float:
    """Bulk insert `jobs` jobs, one attempt each, straight through sqlite3."""
    rng = random.Random(1)
    states = [s for s, _ in STATES]
    weights = [w for _, w in STATES]
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    stamp = _stamp(ended)
    calls = json.dumps([{"method": "POST", "path": "/v2/x", "status": 201, "ms": 80}] * 2)
    started = time.monotonic()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    for first in range(0, jobs, BATCH):
        job_rows, attempt_rows = [], []
        for number in range(first, min(first + BATCH, jobs)):
            job_id = str(uuid.UUID(int=rng.getrandbits(128)))
            tenant = tenants[number % len(tenants)]
            state = rng.choices(states, weights)[0]
            payload = json.dumps({"tenant_id": tenant, "idempotency_key": f"k{number}"})
            job_rows.append((job_id, tenant, f"k{number}", "invoice", payload, state, "{}", 1,
                             stamp, stamp, stamp))  # fmt: skip
            attempt_rows.append((job_id, 1, "bench", stamp, stamp, state, calls))
        with conn:
            conn.executemany(
                "INSERT INTO jobs (id, tenant_id, idempotency_key, kind, payload, state, remote,"
                " attempts, created_at, updated_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                job_rows,
            )
            conn.executemany(
                "INSERT INTO attempts (job_id, number, worker, started_at, ended_at, outcome,"
                " calls) VALUES (?,?,?,?,?,?,?)",
                attempt_rows,
            )
    conn.execute("ANALYZE")
    conn.close()
    return time.monotonic() - started


def scrape(client: Any, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    assert "ledgerpush_jobs{" in response.text
    return elapsed * 1000


def run(args: argparse.Namespace) -> dict[str, Any]:
    stop_on_signals()
    home = Path(tempfile.gettempdir()) / f"ledgerpush-bench-metrics-{os.getpid()}"
    stack = LocalStack.create(home, {"LEDGERPUSH_ENV": "dev", "LEDGERPUSH_LOG_JSON": "true"})
    try:
        stack.start_redis()
        stack.use_database()
        stack.open_ledger()
        from worker.settings import get_settings

        tenants = add_tenants(args.tenants)
        log(f"filling the ledger with {args.jobs:,} jobs and attempts")
        fill_seconds = fill(str(get_settings().sqlite_path), tenants, args.jobs)
        log(f"filled in {fill_seconds:.0f} s")

        from worker.web.metrics import refresh_aggregate

        started = time.perf_counter()
        refresh_aggregate()
        recount_ms = (time.perf_counter() - started) * 1000
        from worker.transport.redis_client import get_redis

        get_redis().delete("lp:metrics:aggregate")  # the web's first scrape counts itself

        port = free_port()
        stack.start_process(["web", "--port", str(port)], "web")
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health", timeout=60)
        import httpx

        with httpx.Client(timeout=30) as client:  # one connection, as Prometheus keeps
            first_ms = scrape(client, f"{url}/metrics")
            times = []
            for _ in range(args.scrapes):
                times.append(scrape(client, f"{url}/metrics"))
                time.sleep(args.interval)
        return {
            "machine": _stack.machine(),
            "jobs": args.jobs,
            "attempts": args.jobs,
            "tenants": args.tenants,
            "fill_seconds": round(fill_seconds, 1),
            "first_scrape_ms": round(first_ms, 1),
            "scrape_ms": {
                **{k: round(v, 1) for k, v in percentiles(times).items()},
                "max": round(max(times), 1),
                "scrapes": len(times),
            },
            "background_recount_ms": round(recount_ms, 1),
        }
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    emit(run(args), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
