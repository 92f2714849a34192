"""Token refresh: 1,000 eAccounting tenants whose access tokens all expire within a minute.

    .venv/bin/python bench/refresh.py [--tenants 1000] [--active 100] [--seconds 200]
        [--connect-over 60] [--lifetime 120] [--rate 5] [--latency-ms 50] [--json]

`ledgerpush beat` and the workers run from the start. The tenants are connected over
`--connect-over` seconds with access tokens that live `--lifetime` seconds, so the old
tokens all expire within the same minute (tokens refreshed later live an hour). The
proactive refresh is the beat task `ledgerpush.maintenance.refresh_tokens` (every 60 s,
tokens inside LEDGERPUSH_REFRESH_WINDOW_SECONDS, 600 by default, each tenant's refresh
delayed by `worker.auth.proactive.spread_delay`). Meanwhile `--active` tenants send
`--rate` invoices a second between them for `--seconds`. Figures: token-endpoint calls per
tenant (refresh grants), when tenants were refreshed (first and last, the busiest second,
how many before their old token expired), 401s, and jobs delayed: jobs that started while
their tenant's token had expired and no new one was stored yet (they refresh inline, or
wait for the refresh lock), or that needed more than one attempt.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter
from typing import Any

import _stack
from _stack import Stack, emit, log, percentiles


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--active", type=int, default=100, help="tenants sending invoices")
    parser.add_argument("--seconds", type=float, default=200, help="invoice traffic")
    parser.add_argument(
        "--connect-over", type=float, default=60, help="tenants connected over this long"
    )
    parser.add_argument("--rate", type=float, default=5.0, help="invoices a second in all")
    parser.add_argument("--lifetime", type=float, default=120.0, help="first tokens' lifetime")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def expiries() -> dict[str, float]:
    from sqlalchemy import select

    from worker.ledger.db import read_session
    from worker.ledger.models import Tenant

    with read_session() as db:
        rows = db.execute(select(Tenant.id, Tenant.token_expires_at)).tuples()
        return {t: _stack._epoch(e) or 0.0 for t, e in rows}


class RefreshWatch(threading.Thread):
    """Polls the tenants' stored token expiry: the first value seen is the old token's,
    the first change is the moment of its refresh."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.initial: dict[str, float] = {}
        self.refreshed: dict[str, float] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            now = time.time()
            for tenant, expires in expiries().items():
                if tenant not in self.initial:
                    self.initial[tenant] = expires
                elif tenant not in self.refreshed and expires != self.initial[tenant]:
                    self.refreshed[tenant] = now


def traffic(active: list[tuple[str, str, str]], args: argparse.Namespace, sent: list[int]) -> None:
    from worker.transport.producer import enqueue

    rng = random.Random(7)
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        time.sleep(max(start + sent[0] / args.rate - time.monotonic(), 0))
        tenant_id, _, country = rng.choice(active)
        enqueue(_stack.invoice(tenant_id, country, f"run-{sent[0]:06d}", sent[0] % 3))
        sent[0] += 1


def run(args: argparse.Namespace) -> dict[str, Any]:
    tenants = _stack.tenant_set(args.tenants, prefix="r", providers="eaccounting")
    active, rest = tenants[: args.active], tenants[args.active :]
    with Stack(
        "refresh",
        latency_ms=args.latency_ms,
        sim_options={"token_lifetime_seconds": args.lifetime},
    ) as stack:
        assert stack.sims is not None
        stack.start_workers(args.workers, args.concurrency)
        beat_started = time.time()
        stack.start_beat()
        watch = RefreshWatch()
        watch.start()
        log(f"beat started; connecting {len(tenants)} tenants over {args.connect_over:.0f} s")
        stack.connect(active)
        from worker.transport.producer import enqueue

        for job in _stack.interleaved(active, 1, "warm", 1):
            enqueue(job)
        sent = [0]
        producer = threading.Thread(target=traffic, args=(active, args, sent), daemon=True)
        producer.start()
        batch = 10
        for index in range(0, len(rest), batch):
            due = beat_started + args.connect_over * index / max(len(rest), 1)
            time.sleep(max(due - time.time(), 0))
            stack.connect(rest[index : index + batch])
        # Tokens issued from now on (the refreshed ones) live an hour.
        stack.sims.call("ea_config", {"token_lifetime_seconds": 3600})
        log(f"{args.rate:.0f} invoices/s over {len(active)} tenants for {args.seconds:.0f} s")
        producer.join()
        _stack.wait_settled(len(active) + sent[0], 60)
        time.sleep(1.0)
        watch.stop_event.set()
        watch.join()
        tokens = stack.sims.call("token_calls")
        statuses = stack.sims.call("log")["ea"]["by_status"]
        jobs = [r for r in _stack.job_times() if r["key"].startswith("run-")]
    return summarize(args, tenants, watch, tokens, statuses, jobs, beat_started)


def summarize(
    args: argparse.Namespace,
    tenants: list[tuple[str, str, str]],
    watch: RefreshWatch,
    tokens: dict[str, Any],
    statuses: dict[str, int],
    jobs: list[dict[str, Any]],
    beat_started: float,
) -> dict[str, Any]:
    ids = [t for t, _, _ in tenants]
    calls = [tokens["refresh_by_company"].get(t, 0) for t in ids]
    refreshed = {t: watch.refreshed[t] - beat_started for t in ids if t in watch.refreshed}
    expiry = {t: watch.initial[t] - beat_started for t in ids}
    per_second = Counter(int(v) for v in refreshed.values())
    before_expiry = sum(1 for t, v in refreshed.items() if v <= expiry[t])
    delayed = []
    for job in jobs:
        tenant = job["tenant"]
        started = (job["created"] or 0) - beat_started
        fixed = refreshed.get(tenant, float("inf"))
        if expiry[tenant] <= started < fixed or job["attempts"] > 1:
            delayed.append(job)
    latencies = [r["finished"] - r["enqueued"] for r in jobs if r["finished"] is not None]
    return {
        "tenants": len(ids),
        "old_tokens_expire_s_after_beat_start": {
            "first": round(min(expiry.values()), 1),
            "last": round(max(expiry.values()), 1),
        },
        "token_endpoint": {
            "refresh_calls": sum(calls),
            "calls_per_tenant_mean": round(sum(calls) / len(ids), 3),
            "calls_per_tenant_max": max(calls),
            "tenants_not_refreshed": sum(1 for c in calls if c == 0),
            "tenants_refreshed_more_than_once": sum(1 for c in calls if c > 1),
            "by_grant": tokens["by_grant"],
        },
        "refresh_spread": {
            "first_s_after_beat_start": round(min(refreshed.values()), 1) if refreshed else None,
            "last_s_after_beat_start": round(max(refreshed.values()), 1) if refreshed else None,
            "busiest_second_refreshes": max(per_second.values()) if per_second else 0,
            "refreshed_before_old_token_expired": before_expiry,
            "refreshed_after_it_expired": len(refreshed) - before_expiry,
        },
        "jobs": {
            "sent": len(jobs),
            "booked": sum(1 for r in jobs if r["state"] == "booked"),
            "delayed_by_refresh": len(delayed),
            "more_than_one_attempt": sum(1 for r in jobs if r["attempts"] > 1),
            "responses_401": int(statuses.get("401", 0)),
            "enqueue_to_booked_s": {k: round(v, 3) for k, v in percentiles(latencies).items()},
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = {
        "benchmark": "refresh",
        "machine": _stack.machine(),
        "parameters": {
            "tenants": args.tenants,
            "active_tenants": args.active,
            "seconds": args.seconds,
            "invoices_per_second": args.rate,
            "first_token_lifetime_s": args.lifetime,
            "latency_ms": args.latency_ms,
            "worker_processes": args.workers,
            "threads_per_worker": args.concurrency,
        },
        "result": _stack.isolated(run, args),
    }
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
