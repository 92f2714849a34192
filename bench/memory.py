"""Memory: each worker's resident memory against the number of tenants it has served.

    .venv/bin/python bench/memory.py [--tenants 1000,5000,10000] [--invoices-per-tenant 2]
        [--workers 2] [--concurrency 8] [--latency-ms 0] [--max-entries N]
        [--database sqlite|postgresql] [--json]

Tiers of tenants, cumulative: each tier connects the tenants it adds (eAccounting,
e-conomic and Visma.net ERP in turn, in bulk) and books `--invoices-per-tenant` invoices
for each of them, each to another customer, round robin over the tier's tenants so every
worker thread meets many of them. Once they are settled, each worker's RSS (VmRSS from
/proc, and the peak VmHWM) and its in-process reference cache (`celery inspect
reference_cache`: entries held and the bound) are read. The row `0` is the workers just
started, before any job.

The goal is a flat line: once the reference cache is full
(LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES, `--max-entries`; a huge value shows it without a
bound), more tenants must not mean more memory. `growth_mib_per_1000_tenants` is the mean
worker's RSS change from the first tier to the last, per 1,000 tenants.

The simulators hold every company they serve (about 0.2 MiB each) in their own process,
so 10,000 tenants take a couple of GiB there; the workers' figures do not include it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import _stack
from _stack import Stack, log

PROVIDERS = (
    ("ea", "eaccounting", ("NO", "SE")),
    ("ec", "economic", ("DK", "NO")),
    ("vn", "vismanet", ("NO",)),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tenants", default="1000,5000,10000", help="comma-separated tiers (cumulative)"
    )
    parser.add_argument("--invoices-per-tenant", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated L per call")
    parser.add_argument(
        "--max-entries",
        type=int,
        default=None,
        help="LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES for the workers (default: the setting's)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per tier")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        args.tiers = sorted({int(n) for n in args.tenants.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--tenants must be comma-separated numbers, not {args.tenants!r}")
    if not args.tiers or args.tiers[0] < 1:
        parser.error("--tenants needs at least one tier of one tenant or more")
    return args


def tenants(count: int) -> list[tuple[str, str, str]]:
    """(tenant id, provider, country), the three providers in turn."""
    chosen = []
    for index in range(count):
        tag, provider, countries = PROVIDERS[index % len(PROVIDERS)]
        country = countries[(index // len(PROVIDERS)) % len(countries)]
        chosen.append((f"m{index:05d}-{tag}", provider, country))
    return chosen


def measure(args: argparse.Namespace) -> dict[str, Any]:
    every = tenants(args.tiers[-1])
    settings = {"LEDGERPUSH_TASK_EVENTS": "false"}
    if args.max_entries is not None:
        settings["LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES"] = str(args.max_entries)
    with Stack("memory", database=args.database, latency_ms=args.latency_ms) as stack:
        stack.start_workers(args.workers, args.concurrency, settings)
        from worker.transport.producer import enqueue

        rows = [reading(stack, 0, 0, 0.0, 0.0)]
        sent, done = 0, 0
        for tier in args.tiers:
            added = every[done:tier]
            log(f"tier {tier}: connecting {len(added)} tenants")
            started = time.monotonic()
            stack.connect_in_bulk(added)
            connected = time.monotonic() - started
            jobs = list(_stack.interleaved(added, args.invoices_per_tenant, "mem",
                                           args.invoices_per_tenant))  # fmt: skip
            log(f"tier {tier}: booking {len(jobs)} invoices")
            started = time.monotonic()
            for job in jobs:
                enqueue(job)
            sent += len(jobs)
            if not _stack.wait_settled(sent, args.timeout):
                log(f"tier {tier}: not every invoice settled within {args.timeout:.0f} s")
            rows.append(reading(stack, tier, sent, connected, time.monotonic() - started))
            done = tier
        return {"tiers": rows, **growth(rows)}


def reading(
    stack: Stack, tenants: int, invoices: int, connect_seconds: float, book_seconds: float
) -> dict[str, Any]:
    """The workers as they are now."""
    caches = reference_caches()
    workers = []
    for index, pid in enumerate(stack.worker_pids()):
        cache = caches.get(f"bench{index}", {})
        workers.append({
            "rss_mib": round(_stack.rss_mib(pid), 1),
            "peak_rss_mib": round(_stack.peak_rss_mib(pid), 1),
            "reference_cache_entries": cache.get("entries"),
            "reference_cache_bound": cache.get("max_entries"),
        })  # fmt: skip
    rss = [w["rss_mib"] for w in workers]
    return {
        "tenants": tenants,
        "invoices": invoices,
        "states": _stack.count_states(),
        "connect_seconds": round(connect_seconds, 1),
        "book_seconds": round(book_seconds, 1),
        "mean_rss_mib": round(sum(rss) / len(rss), 1),
        "workers": workers,
    }


def reference_caches() -> dict[str, dict[str, int]]:
    """Each worker's reference cache, by the node name's first part (`bench0`, …)."""
    from worker.transport.app import app

    replies = app.control.broadcast("reference_cache", reply=True, timeout=5)
    return {node.split("@")[0]: stats for reply in replies for node, stats in reply.items()}


def growth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = rows[1], rows[-1]
    if last["tenants"] == first["tenants"]:
        return {}
    per_1000 = (last["mean_rss_mib"] - first["mean_rss_mib"]) * 1000
    return {
        "growth_mib_per_1000_tenants": round(per_1000 / (last["tenants"] - first["tenants"]), 2)
    }


def table(result: dict[str, Any]) -> None:
    """One line per tier: each worker's RSS and reference cache."""
    workers = len(result["tiers"][0]["workers"])
    head = "".join(f"  worker {i} RSS MiB (peak)  cache" for i in range(workers))
    print(f"{'tenants':>8} {'invoices':>9} {'booked':>7}{head}")
    for row in result["tiers"]:
        cells = "".join(
            f"  {w['rss_mib']:>9.1f} ({w['peak_rss_mib']:>7.1f})"
            f"  {w['reference_cache_entries']!s:>5}/{w['reference_cache_bound']!s:<5}"
            for w in row["workers"]
        )
        booked = row["states"].get("booked", 0)
        print(f"{row['tenants']:>8} {row['invoices']:>9} {booked:>7}{cells}")
    if "growth_mib_per_1000_tenants" in result:
        print(f"growth: {result['growth_mib_per_1000_tenants']} MiB per 1,000 tenants "
              "(mean worker, first tier to last)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "memory",
        "machine": _stack.machine(),
        "parameters": {
            "tenants": args.tiers,
            "invoices_per_tenant": args.invoices_per_tenant,
            "worker_processes": args.workers,
            "threads_per_worker": args.concurrency,
            "latency_ms": args.latency_ms,
            "reference_cache_max_entries": args.max_entries or "the setting's default",
            "database": args.database,
        },
    }
    result.update(_stack.isolated(measure, args))
    if args.json:
        _stack.emit(result, as_json=True)
    else:
        table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
