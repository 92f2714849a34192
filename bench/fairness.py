"""Fairness: nine small tenants at one job a second, with and without a flooding tenant.

    .venv/bin/python bench/fairness.py [--seconds 45] [--flood 10000] [--latency-ms 50]
        [--workers 1] [--concurrency 16] [--flood-provider eaccounting] [--compare-off] [--json]

Phase "without flood": the nine small tenants (both providers) send one invoice a second
each for `--seconds`. Phase "with flood": one more tenant enqueues `--flood` invoices at
once (an eAccounting tenant by default, so its own rate limit, 600 calls a minute per
endpoint, keeps it at ten invoices a second and its backlog lasts), and the nine keep
sending one a second each for `--seconds`. Figures: the small tenants' enqueue→booked
latency p50/p95/p99/max in each phase, and the flooding tenant's invoices booked during
the window. `--compare-off` adds the flood phase with the overflow queue switched off
(LEDGERPUSH_TENANT_OVERFLOW_AFTER=0), i.e. before fairness was built. The flood is not
drained: the stack is thrown away after the window.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import _stack
from _stack import Stack, emit, log, percentiles


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=45, help="window of each phase")
    parser.add_argument("--flood", type=int, default=10_000, help="backlog of the big tenant")
    parser.add_argument("--small", type=int, default=9, help="small tenants")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--flood-provider", choices=("eaccounting", "economic"), default="eaccounting"
    )
    parser.add_argument("--compare-off", action="store_true", help="also run without overflow")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def small_traffic(small: list[tuple[str, str, str]], seconds: float, tag: str) -> int:
    """Each small tenant sends one invoice a second, staggered; returns how many."""
    from worker.transport.producer import enqueue

    sent = 0
    start = time.monotonic()
    step = 1.0 / len(small)
    while time.monotonic() - start < seconds:
        for index, (tenant_id, _, country) in enumerate(small):
            due = start + sent // len(small) + index * step
            time.sleep(max(due - time.monotonic(), 0))
            enqueue(_stack.invoice(tenant_id, country, f"{tag}-{sent:06d}", sent % 3))
            sent += 1
    return sent


def flood(tenant: tuple[str, str, str], count: int, tag: str) -> float:
    from worker.transport.producer import enqueue

    started = time.monotonic()
    for job in _stack.interleaved([tenant], count, tag, 3):
        enqueue(job)
    return time.monotonic() - started


def latencies(tag: str, small_ids: set[str], sent: int, seconds_after: float) -> dict[str, Any]:
    """Latency of the small tenants' jobs of a phase, once they had time to finish."""
    deadline = time.monotonic() + seconds_after
    while True:
        rows = [r for r in _stack.job_times() if r["key"].startswith(tag)]
        mine = [r for r in rows if r["tenant"] in small_ids]
        # A job still in the queue has no ledger row yet: count the ones sent instead.
        mine += [{"finished": None}] * max(sent - len(mine), 0)
        done = [r for r in mine if r["finished"] is not None]
        if time.monotonic() > deadline or (mine and len(done) == len(mine)):
            break
        time.sleep(0.5)
    values = [r["finished"] - r["enqueued"] for r in done]
    figures = {k: round(v, 3) for k, v in percentiles(values).items()}
    return {
        "jobs": len(mine),
        "booked": sum(1 for r in done if r["state"] == "booked"),
        "not_booked_30s_after_window": len(mine) - len(done),
        "latency_s": {**figures, "max": round(max(values), 3) if values else None},
    }


def phase(
    small: list[tuple[str, str, str]],
    big: tuple[str, str, str] | None,
    args: argparse.Namespace,
    tag: str,
) -> dict[str, Any]:
    small_ids = {t for t, _, _ in small}
    flood_seconds: list[float] = []
    flooder = None
    if big is not None:
        flooder = threading.Thread(
            target=lambda: flood_seconds.append(flood(big, args.flood, f"{tag}-flood")),
            daemon=True,
        )
        flooder.start()
        time.sleep(1.0)  # the backlog is building up when the small tenants start
    started = time.time()
    sent = small_traffic(small, args.seconds, f"{tag}-small")
    ended = time.time()
    window = ended - started
    result = latencies(f"{tag}-small", small_ids, sent, seconds_after=30)
    result["small_jobs_sent"] = sent
    if big is not None and flooder is not None:
        flooder.join()
        booked = [
            r
            for r in _stack.job_times(big[0])
            if r["key"].startswith(f"{tag}-flood")
            and r["state"] == "booked"
            and started <= r["finished"] <= ended
        ]
        result["flood_enqueue_seconds"] = round(flood_seconds[0], 1) if flood_seconds else None
        result["flood_booked_in_window"] = len(booked)
        result["flood_invoices_per_second"] = round(len(booked) / window, 1)
    return result


def run(args: argparse.Namespace, overflow: bool, with_flood: bool) -> dict[str, Any]:
    small = _stack.tenant_set(args.small, prefix="small")
    provider = args.flood_provider
    big = ("big-ea" if provider == "eaccounting" else "big-ec", provider,
           "NO" if provider == "eaccounting" else "DK")  # fmt: skip
    settings = {"LEDGERPUSH_TENANT_OVERFLOW_AFTER": "8" if overflow else "0"}
    name = f"fair-{'on' if overflow else 'off'}-{'flood' if with_flood else 'quiet'}"
    with Stack(name, latency_ms=args.latency_ms, settings=settings) as stack:
        stack.connect([*small, big])
        stack.start_workers(args.workers, args.concurrency)
        from worker.transport.producer import enqueue

        warm = list(_stack.interleaved([*small, big], 3, "warm", 3))
        for job in warm:
            enqueue(job)
        _stack.wait_settled(len(warm), 120)
        log(f"[{name}] {args.seconds:.0f} s of small-tenant traffic")
        return phase(small, big if with_flood else None, args, "run")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "fairness",
        "machine": _stack.machine(),
        "parameters": {
            "seconds": args.seconds,
            "flood": args.flood,
            "flood_provider": args.flood_provider,
            "small_tenants": args.small,
            "latency_ms": args.latency_ms,
            "worker_processes": args.workers,
            "threads_per_worker": args.concurrency,
            "overflow_after": 8,
        },
        "without_flood": _stack.isolated(run, args, True, False),
        "with_flood": _stack.isolated(run, args, True, True),
    }
    if args.compare_off:
        result["with_flood_overflow_off"] = _stack.isolated(run, args, False, True)
    result["target"] = "small tenants' p99 under the flood <= 2 s"
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
