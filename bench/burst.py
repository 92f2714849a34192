"""Month-end burst: every tenant's invoices at once, a few big tenants holding most of them.

    .venv/bin/python bench/burst.py [--tenants 2000] [--invoices 100000] [--mix 2:50]
        [--providers eaccounting,economic,vismanet] [--latency-ms 50] [--workers 2]
        [--concurrency 8] [--customers 3] [--producers CORES] [--while-draining]
        [--no-warm-up] [--database sqlite|postgresql] [--interval-seconds 10] [--seed 1]
        [--timeout 7200] [--json]

Tenants take the providers in turn; `--mix P:Q` gives P % of them (at least one) Q % of
the invoices, shared evenly, and the rest to the others evenly (the default 2:50: at 2,000
tenants and 100,000 invoices, 40 big tenants with 1,250 each and 1,960 small ones with 25
or 26). Each tenant and customer books one invoice first (the warm-up, on workers of 32
threads: references cached, customers created, as in steady operation; `--no-warm-up` for
a burst on cold caches, as after an idle hour's cache TTL). Then the burst: every invoice, in a random order
(`--seed`), is queued through the producer (`enqueue`, from `--producers` processes) with
the workers stopped, and released at once when they start, so the producer does not
compete with them for the cores (`--while-draining`: queued with the workers running,
the burst released when the first invoice is queued).

The drain (released to the last invoice settled) is set against the ideal, the larger of
(a) the slowest tenant's invoices at the rate ledgerpush's limiter allows its provider
(worker/transport/ratelimit.py, with the rate each provider's client configures: eAccounting 600 a
minute per endpoint, 95 % of that after a first burst of 30; e-conomic a daily budget
half of which may go at once, so no burst here reaches it; Visma.net 15,000 an hour per
company for all endpoints together) and (b) the workers' CPU seconds over the drain (all
worker processes, user+system from /proc) divided by the usable cores. Beside it, for
information, the in-flight bound: invoices x 2 calls x L / worker threads.

Also: the small and the big tenants' enqueue->booked p50/p95/p99/max (from the release
for invoices queued before it), invoices booked per `--interval-seconds` (all, big,
small), provider calls per invoice during the burst, 429 answers (should be 0), jobs that
needed more than one attempt, worker CPU per invoice. Celery task events are off (as in
bench/throughput.py's default).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import _stack
from _stack import Stack, emit, log, percentiles

from worker.transport.children import arm_in_child

PROVIDERS = ("eaccounting", "economic", "vismanet")
SHORT = {"eaccounting": "ea", "economic": "ec", "vismanet": "vn"}
COUNTRIES = {"eaccounting": _stack.EA_COUNTRIES, "economic": _stack.EC_COUNTRIES,
             "vismanet": ("NO",)}  # fmt: skip
#: The floor of every provider: two calls per invoice (draft + book, create + release),
#: each to its own endpoint.
FLOOR_CALLS = 2
SETTLED = ("booked", "failed", "cancelled", "waiting_for_reauth")
PRODUCER_THREADS = 8
WARM_UP_THREADS = 32  # per worker process

Tenant = tuple[str, str, str]  # id, provider, country, as _stack.Stack.connect takes them


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument(
        "--mix",
        type=parse_mix,
        default=parse_mix("2:50"),
        metavar="P:Q",
        help="P %% of the tenants (the big ones) hold Q %% of the invoices (default 2:50)",
    )
    parser.add_argument(
        "--providers",
        type=parse_providers,
        default=PROVIDERS,
        help="comma-separated, taken in turn by the tenants (default: all three)",
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulated L per call")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--customers", type=int, default=3, help="customers per tenant")
    parser.add_argument(
        "--producers",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help=f"processes queueing the burst, {PRODUCER_THREADS} threads each (default: cores)",
    )
    parser.add_argument(
        "--while-draining",
        action="store_true",
        help="queue the burst with the workers running (default: queued, then released)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--no-warm-up", action="store_true", help="burst on cold caches")
    parser.add_argument("--interval-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1, help="order of the burst")
    parser.add_argument("--timeout", type=float, default=7200, help="for the drain")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.tenants < 2 or args.invoices < args.tenants:
        parser.error("--tenants must be at least 2 and --invoices at least --tenants")
    return args


def parse_mix(text: str) -> tuple[float, float]:
    """`P:Q` (percent of tenants : percent of invoices) as two fractions."""
    try:
        tenants, invoices = (float(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"P:Q, two percentages such as 2:50, was expected, not {text!r}"
        ) from None
    if not (0 < tenants < 100 and 0 < invoices < 100):
        raise argparse.ArgumentTypeError(f"both percentages must be above 0 and below 100: {text}")
    return tenants / 100, invoices / 100


def parse_providers(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in PROVIDERS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(PROVIDERS)} (got {text!r})")
    return chosen


# ---------------------------------------------------------------- the workload


@dataclass(frozen=True)
class Workload:
    """Who gets how many invoices; big tenants first."""

    big: list[Tenant]
    small: list[Tenant]
    invoices: dict[str, int]  # tenant id -> invoices in the burst
    customers: int  # per tenant

    @property
    def tenants(self) -> list[Tenant]:
        return self.big + self.small


def workload(args: argparse.Namespace) -> Workload:
    tenant_share, invoice_share = args.mix
    big_count = min(max(round(args.tenants * tenant_share), 1), args.tenants - 1)
    tenants = []
    for index in range(args.tenants):
        provider = args.providers[index % len(args.providers)]
        countries = COUNTRIES[provider]
        country = countries[(index // len(args.providers)) % len(countries)]
        size = "big" if index < big_count else "small"
        tenants.append((f"{size}{index:04d}-{SHORT[provider]}", provider, country))
    big, small = tenants[:big_count], tenants[big_count:]
    big_total = min(round(args.invoices * invoice_share), args.invoices - len(small))
    counts = _spread(big_total, big) | _spread(args.invoices - big_total, small)
    return Workload(big, small, counts, args.customers)


def _spread(total: int, tenants: list[Tenant]) -> dict[str, int]:
    base, extra = divmod(total, len(tenants))
    return {tenant[0]: base + (index < extra) for index, tenant in enumerate(tenants)}


Item = tuple[str, str, str, int]  # tenant id, country, idempotency key, customer number


def burst_items(load: Workload, seed: int) -> list[Item]:
    """Every invoice of the burst, shuffled: all tenants' billing runs at once."""
    items = [
        (tenant_id, country, f"burst-{number:06d}", number % load.customers)
        for tenant_id, _, country in load.tenants
        for number in range(load.invoices[tenant_id])
    ]
    random.Random(seed).shuffle(items)
    return items


def warm_items(load: Workload) -> list[Item]:
    """One invoice per tenant and customer."""
    return [
        (tenant_id, country, f"warm-{number:05d}", number)
        for number in range(load.customers)
        for tenant_id, _, country in load.tenants
    ]


def send_all(items: list[Item], producers: int) -> float:
    """Queue every item's invoice through the producer (`enqueue`) from `producers`
    processes of PRODUCER_THREADS threads each: a publish waits for Redis's fsync, and
    validating and building a message takes a few ms of CPU. Returns the seconds taken."""
    context = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with ProcessPoolExecutor(
        producers, mp_context=context, initializer=arm_in_child, initargs=(os.getpid(),)
    ) as pool:
        list(pool.map(send_share, [items[start::producers] for start in range(producers)]))
    return time.monotonic() - started


def send_share(items: list[Item]) -> None:
    """In a producer process: its share of the items, from PRODUCER_THREADS threads."""
    from worker.transport.producer import enqueue

    def send(part: list[Item]) -> None:
        for tenant_id, country, key, customer in part:
            enqueue(_stack.invoice(tenant_id, country, key, customer))

    threads = PRODUCER_THREADS
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, [items[start::threads] for start in range(threads)]))


# ---------------------------------------------------------------- the ideal


@dataclass(frozen=True)
class Pace:
    """What ledgerpush's limiter lets one tenant of a provider do."""

    provider: str
    limit: int
    period: float
    burst: int
    interval_s: float
    calls_per_budget: int  # of an invoice's floor calls, how many draw on one budget

    def seconds_for(self, invoices: int) -> float:
        """The last of the invoices' calls on one budget: `burst` at once, then one per
        interval (worker/transport/ratelimit.py, GCRA)."""
        return max(invoices * self.calls_per_budget - self.burst, 0) * self.interval_s

    @property
    def invoices_per_second(self) -> float:
        return 1 / (self.interval_s * self.calls_per_budget)


def pace_of(tenant: Tenant) -> Pace:
    """From the provider's own client for this tenant: its rate and whether each
    endpoint has a budget of its own."""
    from worker.providers import registry
    from worker.tenancy.tenants import get_tenant

    tenant_id, provider, _ = tenant
    client: Any = registry.spec_for(provider).client(get_tenant(tenant_id))
    http = client.http
    rate = http.rate
    return Pace(
        provider=provider,
        limit=rate.limit,
        period=rate.period,
        burst=rate.burst,
        interval_s=rate.interval_ms / 1000,
        calls_per_budget=1 if http.endpoint_limits else FLOOR_CALLS,
    )


def ideal(load: Workload, paces: dict[str, Pace], cpu_seconds: float, cores: int) -> dict[str, Any]:
    slowest = max(load.tenants, key=lambda t: paces[t[1]].seconds_for(load.invoices[t[0]]))
    pace = paces[slowest[1]]
    rate_bound = pace.seconds_for(load.invoices[slowest[0]])
    cpu_bound = cpu_seconds / cores
    return {
        "seconds": round(max(rate_bound, cpu_bound), 1),
        "bound_by": "slowest tenant's rate limit" if rate_bound >= cpu_bound else "worker CPU",
        "slowest_tenant": {
            "tenant": slowest[0],
            "provider": slowest[1],
            "invoices": load.invoices[slowest[0]],
            "allowed_invoices_per_second": round(pace.invoices_per_second, 2),
            "seconds": round(rate_bound, 1),
        },
        "worker_cpu_over_cores": {
            "cpu_seconds": round(cpu_seconds, 1),
            "cores": cores,
            "seconds": round(cpu_bound, 1),
        },
    }


def describe_paces(paces: dict[str, Pace]) -> dict[str, Any]:
    return {
        name: {
            "limit": f"{pace.limit} per {pace.period:g} s"
            + (" per endpoint" if pace.calls_per_budget == 1 else ""),
            "burst": pace.burst,
            "calls_per_invoice_on_one_budget": pace.calls_per_budget,
            "invoices_per_second_after_burst": round(pace.invoices_per_second, 2),
        }
        for name, pace in paces.items()
    }


# ---------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    load = workload(args)
    settings = {"LEDGERPUSH_TASK_EVENTS": "false"}
    with Stack(
        f"burst-{args.database}",
        database=args.database,
        latency_ms=args.latency_ms,
        settings=settings,
    ) as stack:
        assert stack.sims is not None
        log(f"connecting {len(load.tenants)} tenants")
        started = time.monotonic()
        stack.connect(load.tenants)
        set_up = {"connect": round(time.monotonic() - started, 1)}
        paces = {p: pace_of(next(t for t in load.tenants if t[1] == p)) for p in args.providers}
        started = time.monotonic()
        warm = [] if args.no_warm_up else warm_up(args, load, stack)
        set_up["warm_up"] = round(time.monotonic() - started, 1)
        stack.sims.call("reset_log")
        burst = drain(args, stack, burst_items(load, args.seed), len(warm))
        calls = stack.sims.call("log")
        rows = [r for r in _stack.job_times() if r["key"].startswith("burst-")]
        peak = max(_stack.peak_rss_mib(pid) for pid in stack.worker_pids())
    invoices = sum(load.invoices.values())
    return {
        "tenants": describe_load(load),
        "set_up_seconds": set_up,
        "enqueue": {
            "seconds": round(burst.enqueue_seconds, 1),
            "invoices_per_second": round(invoices / burst.enqueue_seconds, 1),
            "producers": f"{args.producers} processes x {PRODUCER_THREADS} threads",
        },
        **summarize(args, load, paces, rows, calls, burst),
        "peak_worker_rss_mib": round(peak, 1),
    }


def warm_up(args: argparse.Namespace, load: Workload, stack: Stack) -> list[Item]:
    """One invoice per tenant and customer, booked before the burst by workers of
    WARM_UP_THREADS threads (at 2,000 tenants mostly reference reads, each waiting L)."""
    warm = warm_items(load)
    log(f"warm-up: {len(warm)} invoices")
    stack.start_workers(args.workers, max(args.concurrency, WARM_UP_THREADS))
    send_all(warm, args.producers)
    _stack.wait_settled(len(warm), args.timeout, interval=1.0)
    stack.stop_workers()
    return warm


@dataclass(frozen=True)
class Drain:
    """What the burst's release and drain measured."""

    enqueue_seconds: float
    released: float | None  # epoch seconds; None: when the first job was picked up
    cpu_seconds: float  # of the worker processes, from the burst's release to settled
    settled: bool


def drain(args: argparse.Namespace, stack: Stack, items: list[Item], before: int) -> Drain:
    """Queue the burst and wait until the ledger holds `before` + all of it settled. By
    default the whole burst is queued with the workers stopped and released at once when
    they start (the producer then does not compete with them for the cores);
    `--while-draining` queues it with the workers running."""
    meter = _stack.CpuMeter(stack.worker_pids)
    released = None
    if args.while_draining:
        stack.start_workers(args.workers, args.concurrency)
        meter.start()
        released = time.time()
    log(f"burst: {len(items)} invoices from {args.producers} producer processes")
    seconds = send_all(items, args.producers)
    if not args.while_draining:
        stack.start_workers(args.workers, args.concurrency)
        meter.start()
    log(f"queued in {seconds:.0f} s; draining")
    settled = _stack.wait_settled(before + len(items), args.timeout, interval=1.0)
    return Drain(seconds, released, meter.stop(), settled)


def describe_load(load: Workload) -> dict[str, Any]:
    def sizes(group: list[Tenant]) -> str:
        counts = {load.invoices[t[0]] for t in group}
        return f"{min(counts)}" if len(counts) == 1 else f"{min(counts)}-{max(counts)}"

    return {
        "big": len(load.big),
        "small": len(load.small),
        "big_invoices": sum(load.invoices[t[0]] for t in load.big),
        "small_invoices": sum(load.invoices[t[0]] for t in load.small),
        "invoices_per_big_tenant": sizes(load.big),
        "invoices_per_small_tenant": sizes(load.small),
    }


def summarize(
    args: argparse.Namespace,
    load: Workload,
    paces: dict[str, Pace],
    rows: list[dict[str, Any]],
    calls: dict[str, Any],
    burst: Drain,
) -> dict[str, Any]:
    booked = [r for r in rows if r["state"] == "booked"]
    done = [r for r in rows if r["state"] in SETTLED]
    began = burst.released or min((r["created"] for r in rows), default=float("nan"))
    drained = max(r["finished"] for r in done) - began if done else float("nan")
    cpu = burst.cpu_seconds
    best = ideal(load, paces, cpu, len(os.sched_getaffinity(0)))
    small_ids = {t[0] for t in load.small}
    small = [r for r in booked if r["tenant"] in small_ids]
    big = [r for r in booked if r["tenant"] not in small_ids]
    invoices = sum(load.invoices.values())
    in_flight = invoices * FLOOR_CALLS * args.latency_ms / 1000 / (args.workers * args.concurrency)
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    return {
        "drain_seconds": round(drained, 1),
        "ideal_seconds": best["seconds"],
        "drain_over_ideal": round(drained / best["seconds"], 2) if best["seconds"] else None,
        "ideal": best,
        "in_flight_bound_seconds": round(in_flight, 1),
        "allowed_rates": describe_paces(paces),
        "small_tenants_enqueue_to_booked_s": latency(small, began),
        "big_tenants_enqueue_to_booked_s": latency(big, began),
        # How long a worker thread held a job: big tenants' jobs wait in the limiter.
        "small_tenants_picked_up_to_booked_s": service(small),
        "big_tenants_picked_up_to_booked_s": service(big),
        "small_tenants_all_booked_after_s": (
            round(max(r["finished"] for r in small) - began, 1) if small else None
        ),
        "invoices": invoices,
        "booked": len(booked),
        "not_booked": {s: n for s, n in states.items() if s != "booked"}
        | ({"not_in_ledger": invoices - len(rows)} if len(rows) < invoices else {}),
        "settled_in_time": burst.settled,
        "jobs_with_more_than_one_attempt": sum(1 for r in rows if (r["attempts"] or 0) > 1),
        "provider_calls_per_invoice": calls_per_invoice(load, booked, calls),
        "responses_429": sum(
            int(calls[side]["by_status"].get("429", 0)) for side in SHORT.values()
        ),
        "responses_by_status": statuses(calls),
        "worker_cpu_ms_per_invoice": round(cpu * 1000 / max(len(booked), 1), 2),
        "booked_per_interval": per_interval(booked, small_ids, began, args.interval_seconds),
    }


def latency(rows: list[dict[str, Any]], released: float) -> dict[str, float | None]:
    """From when the job was queued, or the burst released if that was later."""
    return spread([r["finished"] - max(r["enqueued"], released) for r in rows])


def service(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    return spread([r["finished"] - r["created"] for r in rows])


def spread(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max, in seconds."""
    figures: dict[str, float | None] = {k: round(v, 2) for k, v in percentiles(values).items()}
    figures["max"] = round(max(values), 2) if values else None
    return figures


def calls_per_invoice(
    load: Workload, booked: list[dict[str, Any]], calls: dict[str, Any]
) -> dict[str, float]:
    provider_of = {t[0]: t[1] for t in load.tenants}
    per_provider: dict[str, int] = {}
    for row in booked:
        provider = provider_of[row["tenant"]]
        per_provider[provider] = per_provider.get(provider, 0) + 1
    total = sum(calls[side]["total"] for side in SHORT.values())
    figures = {"all": round(total / max(len(booked), 1), 3)}
    for provider, count in sorted(per_provider.items()):
        figures[provider] = round(calls[SHORT[provider]]["total"] / count, 3)
    return figures


def statuses(calls: dict[str, Any]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for side in SHORT.values():
        for status, count in calls[side]["by_status"].items():
            merged[status] = merged.get(status, 0) + int(count)
    return dict(sorted(merged.items()))


def per_interval(
    booked: Iterable[dict[str, Any]], small_ids: set[str], began: float, seconds: float
) -> list[dict[str, float | int]]:
    buckets: dict[int, list[int]] = {}
    for row in booked:
        counts = buckets.setdefault(int((row["finished"] - began) // seconds), [0, 0])
        counts[row["tenant"] in small_ids] += 1
    last = max(buckets, default=-1)
    return [
        {"from_s": round(i * seconds, 1), "all": sum(c), "big": c[0], "small": c[1]}
        for i, c in ((i, buckets.get(i, [0, 0])) for i in range(last + 1))
    ]


# ---------------------------------------------------------------- output


def print_table(result: dict[str, Any]) -> None:
    """The headline figures as a two-column table, then the booked counts over time."""
    p, r = result["parameters"], result["result"]
    best, t = r["ideal"], r["tenants"]
    slow, cpu = best["slowest_tenant"], best["worker_cpu_over_cores"]
    machine = result["machine"]
    print(
        f"month-end burst: {p['invoices']:,} invoices, {p['tenants']:,} tenants "
        f"({', '.join(p['providers'])}), L = {p['latency_ms']:g} ms, "
        f"{p['worker_processes']} x {p['threads_per_worker']} threads, {p['database']}; "
        f"{machine['usable_cores']} cores"
    )

    def lat(group: str, what: str = "enqueue_to_booked") -> str:
        figures = r[f"{group}_tenants_{what}_s"]
        return " / ".join(f"{figures[k]}" for k in ("p50", "p95", "p99", "max")) + " s"

    calls = ", ".join(f"{k} {v}" for k, v in r["provider_calls_per_invoice"].items())

    rows = [
        ("tenants", f"{t['big']} big x {t['invoices_per_big_tenant']} invoices, "
                    f"{t['small']} small x {t['invoices_per_small_tenant']}"),
        ("set-up (connect, warm-up)", f"{r['set_up_seconds']['connect']} s, "
                                      f"{r['set_up_seconds']['warm_up']} s"),
        ("queued in", f"{r['enqueue']['seconds']} s ({r['enqueue']['invoices_per_second']}/s, "
                      f"{r['enqueue']['producers']}, {p['arrival']})"),
        ("drain (released -> last settled)", f"{r['drain_seconds']} s"),
        ("ideal", f"{best['seconds']} s ({best['bound_by']})"),
        ("  slowest tenant at its allowed rate", f"{slow['seconds']} s ({slow['tenant']}: "
            f"{slow['invoices']} invoices at {slow['allowed_invoices_per_second']}/s)"),
        ("  worker CPU / cores", f"{cpu['seconds']} s ({cpu['cpu_seconds']} s / {cpu['cores']})"),
        ("drain / ideal", f"{r['drain_over_ideal']}"),
        ("in-flight bound (information)", f"{r['in_flight_bound_seconds']} s"),
        ("small tenants enqueue->booked p50/p95/p99/max", lat("small")),
        ("big tenants enqueue->booked p50/p95/p99/max", lat("big")),
        ("small tenants picked up->booked", lat("small", "picked_up_to_booked")),
        ("big tenants picked up->booked", lat("big", "picked_up_to_booked")),
        ("small tenants all booked after", f"{r['small_tenants_all_booked_after_s']} s"),
        ("booked", f"{r['booked']:,} of {r['invoices']:,}; not booked: {r['not_booked'] or 0}"),
        ("provider calls per invoice", calls),
        ("429 answers", f"{r['responses_429']}"),
        ("jobs with more than one attempt", f"{r['jobs_with_more_than_one_attempt']}"),
        ("worker CPU per invoice", f"{r['worker_cpu_ms_per_invoice']} ms"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print(f"  booked per {p['interval_seconds']:g} s from the release:")
    print(f"  {'from s':>8} {'all':>7} {'big':>7} {'small':>7}")
    for bucket in r["booked_per_interval"]:
        print(
            f"  {bucket['from_s']:>8g} {bucket['all']:>7} {bucket['big']:>7} {bucket['small']:>7}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "burst",
        "machine": _stack.machine(),
        "parameters": {
            "tenants": args.tenants,
            "invoices": args.invoices,
            "mix": f"{args.mix[0] * 100:g} % of tenants hold {args.mix[1] * 100:g} % of invoices",
            "providers": list(args.providers),
            "latency_ms": args.latency_ms,
            "worker_processes": args.workers,
            "threads_per_worker": args.concurrency,
            "customers_per_tenant": args.customers,
            "producers": args.producers,
            "arrival": "queued while the workers drain"
            if args.while_draining
            else "queued, then released at once",
            "database": args.database,
            "warm_up": not args.no_warm_up,
            "interval_seconds": args.interval_seconds,
            "seed": args.seed,
        },
    }
    result["result"] = _stack.isolated(run, args)
    if args.json:
        emit(result, as_json=True)
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
