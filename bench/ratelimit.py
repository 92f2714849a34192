"""Rate-limit compliance: one eAccounting tenant, producer at 2x the allowed rate.

    .venv/bin/python bench/ratelimit.py [--seconds 120] [--limit 600] [--factor 2]
        [--latency-ms 50] [--workers 1] [--concurrency 16] [--json]

The simulator enforces `--limit` calls a minute per endpoint for the tenant (Visma's 600,
sliding one-minute window, 429 beyond it). An invoice costs one call on each of two
endpoints (draft, convert), so the allowed rate is `limit / 60` invoices a second; the
producer sends `factor` times that for `--seconds`. Figures: 429s received (target 0),
calls per minute per endpoint while saturated and that as a share of the limit (target
>= 90 %), invoices booked, and jobs failed. The backlog the surplus builds up is not
drained: the stack is thrown away after the window.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _stack
from _stack import Stack, emit, log

DRAFTS = "POST /v2/customerinvoicedrafts"
CONVERT = "POST /v2/customerinvoicedrafts/{id}/convert"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--limit", type=int, default=600, help="calls a minute per endpoint")
    parser.add_argument("--factor", type=float, default=2.0, help="producer rate / allowed")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--settle", type=float, default=15, help="skip this long at the start")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    tenant = ("flood-ea", "eaccounting", "NO")
    settings = {"LEDGERPUSH_EACCOUNTING_RATE_PER_MINUTE": str(args.limit)}
    with Stack(
        "ratelimit",
        latency_ms=args.latency_ms,
        sim_options={"rate_limit_per_minute": args.limit},
        settings=settings,
    ) as stack:
        assert stack.sims is not None
        stack.connect([tenant])
        stack.start_workers(args.workers, args.concurrency)
        from worker.transport.producer import enqueue

        warm = list(_stack.interleaved([tenant], 3, "warm", 3))
        for job in warm:
            enqueue(job)
        _stack.wait_settled(len(warm), 120)
        time.sleep(61)  # the warm-up's calls leave the simulator's one-minute window
        stack.sims.call("reset_log")
        rate = args.factor * args.limit / 60.0
        log(f"producer at {rate:.1f} invoices/s for {args.seconds:.0f} s")
        start = time.monotonic()
        sent = 0
        marks: dict[str, Any] = {}
        while time.monotonic() - start < args.seconds:
            due = start + sent / rate
            time.sleep(max(due - time.monotonic(), 0))
            enqueue(_stack.invoice(tenant[0], tenant[2], f"run-{sent:06d}", sent % 3))
            sent += 1
            if "settled" not in marks and time.monotonic() - start >= args.settle:
                marks["settled"] = (time.monotonic(), stack.sims.call("log"))
        end_log = stack.sims.call("log")
        end = time.monotonic()
        time.sleep(5)  # calls in flight at the end still count for 429s
        tail_log = stack.sims.call("log")
        counts = _stack.count_states()
    begin, begin_log = marks["settled"]
    minutes = (end - begin) / 60
    per_endpoint = {}
    for endpoint in (DRAFTS, CONVERT):
        calls = end_log["ea"]["by_endpoint"].get(endpoint, 0) - begin_log["ea"]["by_endpoint"].get(
            endpoint, 0
        )
        per_endpoint[endpoint] = {
            "calls_per_minute": round(calls / minutes, 1),
            "share_of_limit": round(calls / minutes / args.limit, 3),
        }
    statuses = tail_log["ea"]["by_status"]
    return {
        "invoices_sent": sent,
        "producer_invoices_per_second": round(rate, 2),
        "allowed_invoices_per_second": round(args.limit / 60, 2),
        "responses_429": int(statuses.get("429", 0)),
        "responses_by_status": statuses,
        "measured_window_seconds": round(end - begin, 1),
        "per_endpoint": per_endpoint,
        "booked": counts.get("booked", 0) - len(warm),
        "failed": counts.get("failed", 0),
        "backlog_at_end": sent - (counts.get("booked", 0) - len(warm)),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = {
        "benchmark": "ratelimit",
        "machine": _stack.machine(),
        "parameters": {
            "seconds": args.seconds,
            "limit_per_minute_per_endpoint": args.limit,
            "factor": args.factor,
            "latency_ms": args.latency_ms,
            "worker_processes": args.workers,
            "threads_per_worker": args.concurrency,
        },
        "result": _stack.isolated(run, args),
        "target": "0 responses 429; >= 90% of the limit per endpoint",
    }
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
