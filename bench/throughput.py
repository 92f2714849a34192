"""Throughput: N invoices across T tenants of both providers at simulator latency L.

    .venv/bin/python bench/throughput.py [--invoices 3000] [--tenants 100] [--latency-ms 50]
        [--workers 2] [--concurrency 8] [--database sqlite|postgresql|both]
        [--task-events on|off] [--baseline-invoices 200] [--no-baseline] [--no-anchors]
        [--vismanet-invoices 300] [--vismanet-tenants 10] [--vismanet-queued-share 0.2]
        [--profile DIR] [--json]
    .venv/bin/python bench/throughput.py --latency-ms 200 --slots 8,16,32,64 [--invoices 300]
        [--jobs-per-slot 8] [--workers 2] [--tenants 100] [--database sqlite|postgresql|both]

Phases: connect the tenants; warm up (one invoice per tenant and customer, which loads
the references and creates the customers and articles); the measured run: the workers are
stopped, every invoice is queued (round robin over tenants), the workers start again and
drain it, so the producer does not compete with them for the cores; then a steady-load
phase at half the measured rate for the latency without a backlog. Figures: invoices
booked per second (first job picked up to last booked; and the middle 80 %), provider
calls per invoice (steady state, and including the warm-up), service time (worker picked
the job up -> booked), enqueue->booked latency p50/p95/p99 at steady load (and for the
backlog, where it is mostly the wait in the queue), worker CPU ms per invoice (all worker
processes, user+system from /proc, over the measured run) and peak worker memory. The
concurrency-bound limit, in-flight slots / (calls per invoice x L), is printed beside the
measured rate as a ratio.

The baseline (bench/baseline/) books the same workload, in the same invocation, the way a
typical hand-written Celery task does; its rate and the ratio to it are printed too.

Two anchors run in the same invocation, on the first database's stack after its steady-load
phase (ledgerpush's workers stopped; same simulators, tenants and invoices; bench/lean/):
the floor, the CPU one process spends per invoice doing only the two provider calls (draft
and book, ledgerpush's own request bodies, pooled httpx client and auth; no Celery, ledger
or Redis), and the lean worker, a Celery task on the same thread pool with references in
process memory and no ledger, lease, outbox or rate limiter (at most once). ledgerpush's
worker CPU per invoice is printed first as a multiple of each (`same_run_ratios`). A third
figure, the ledger writes alone (the four transactions a booked invoice commits, in one
thread of the benchmark's process on the same database, no Celery, HTTP or Redis), shows
what those writes cost at the least: the lean worker plus them, as a multiple of
the lean worker, is printed beside the others.

`--profile DIR` samples every worker process with py-spy over the measured run and prints
the split of their CPU by concern (bench/profile_split.py).

Visma.net ERP (`vismanet`, on the first database's stack after its steady-load phase, the
workers running): its own tenants are warmed up like the others, then `--vismanet-invoices`
are queued and booked; the figure is provider calls per invoice in steady state against
the floor, which is create + release, plus one status read for each release the ERP
answered `Queued` (a share `--vismanet-queued-share` of them, each done after
`--vismanet-queued-seconds`, shorter than the worker's poll interval, so one read finds
it released). `--vismanet-invoices 0` skips it.

Latency-bound sweep (`--slots 8,16,32,64`, with an `L` high enough that a run is not
CPU-bound): instead of the single measured run, one stack (same tenants, warmed up once)
measures the backlog run once per slot count, the workers restarted each time with
`--concurrency N`. Each point queues at least `--jobs-per-slot` invoices per in-flight
slot (and at least `--invoices`), and prints invoices/s (whole run and middle 80 %), the
concurrency bound (processes x slots / (2 calls x L)) and the ratio to it, worker CPU per
invoice, the worker cores in use and the cores the bound would need at that CPU per
invoice (more than the machine has: CPU-bound), the share of the machine's CPU busy and
the load average (how much else ran), and service time p50/p95. Tenants are added
beyond `--tenants` until, at the highest bound, an eAccounting tenant gets at most half
of its rate limit, so the limiter never holds a slot and the ratio measures ledgerpush
(fair share only chooses a queue; it caps nothing). No steady-load phase, anchors,
baseline or Visma.net in this mode.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _stack
import profile_split
from _stack import Stack, emit, log, percentiles


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--invoices", type=int, default=3000, help="measured invoices (the issue: 5000)"
    )
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulated L per call")
    # One worker process per core, as deployed (README, "Why the thread pool"): 16 slots.
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--customers", type=int, default=3, help="customers per tenant")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument(
        "--task-events",
        choices=("on", "off"),
        default="off",
        help="Celery task events for Flower (LEDGERPUSH_TASK_EVENTS; on by default in a "
        "deployment, off here unless asked: the figures say what they cost)",
    )
    parser.add_argument(
        "--baseline-invoices", type=int, default=200, help="invoices for the baseline run"
    )
    parser.add_argument(
        "--baseline-concurrency",
        type=int,
        default=0,
        help="baseline prefork processes (default: the core count, Celery's default)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--no-anchors", action="store_true", help="skip the floor and the lean worker"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20, help="steady-load latency phase"
    )
    parser.add_argument(
        "--vismanet-invoices", type=int, default=300, help="Visma.net invoices (0: skip)"
    )
    parser.add_argument("--vismanet-tenants", type=int, default=10)
    parser.add_argument(
        "--vismanet-queued-share",
        type=float,
        default=0.2,
        help="share of Visma.net releases the simulator answers Queued",
    )
    parser.add_argument(
        "--vismanet-queued-seconds",
        type=float,
        default=0.1,
        help="how long a Queued release takes to be done",
    )
    parser.add_argument(
        "--slots",
        type=slot_counts,
        default=(),
        help="latency-bound sweep: in-flight slots (threads) per worker process, "
        "comma-separated, e.g. 8,16,32,64",
    )
    parser.add_argument(
        "--jobs-per-slot",
        type=int,
        default=8,
        help="sweep: invoices per point, at least this many per in-flight slot",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy every worker process over the measured run (raw files in DIR) and "
        "print where their CPU went (bench/profile_split.py)",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def slot_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--slots: comma-separated integers, got {text!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--slots: one or more counts >= 1, got {text!r}")
    return counts


def run_ledgerpush(
    args: argparse.Namespace, database: str, anchors: bool, vismanet: bool = False
) -> dict[str, Any]:
    tenants = _stack.tenant_set(args.tenants)
    queued = {"vn_queued_share": args.vismanet_queued_share,
              "vn_queued_seconds": args.vismanet_queued_seconds}  # fmt: skip
    with Stack(
        f"throughput-{database}", database=database, latency_ms=args.latency_ms, sim_options=queued
    ) as stack:
        assert stack.sims is not None
        log(f"[{database}] connecting {len(tenants)} tenants")
        stack.connect(tenants)
        stack.start_workers(args.workers, args.concurrency, _worker_env(args))
        from worker.transport.producer import enqueue

        log(f"[{database}] warm-up: {len(tenants) * args.customers} invoices")
        warm = list(_stack.interleaved(tenants, args.customers, "warm", args.customers))
        for job in warm:
            enqueue(job)
        _stack.wait_settled(len(warm), args.timeout)
        warm_calls = stack.sims.call("log")
        stack.sims.call("reset_log")

        per_tenant = max(args.invoices // len(tenants), 1)
        jobs = list(_stack.interleaved(tenants, per_tenant, "run", args.customers))
        log(f"[{database}] enqueueing {len(jobs)} invoices, then starting the workers")
        run = drain_backlog(args, stack, jobs, "run", args.concurrency)
        result = summarize(
            args, database, jobs, run.times, warm, warm_calls, run.calls, run.cpu, run.peak,
            run.enqueue_seconds, run.settled,
        )  # fmt: skip
        if run.profile is not None:
            result["cpu_split_py_spy"] = run.profile
        result["steady_load"] = steady_load(args, tenants, result["invoices_per_second"] / 2)
        if vismanet:
            result["vismanet"] = vismanet_calls(args, stack)
        if anchors:
            stack.stop_workers()
            result["anchors"] = run_anchors(args, stack, tenants)
        return result


@dataclass
class Backlog:
    """One backlog run: its jobs' times (with `provider`, the seconds in provider calls),
    the simulators' call log, and what the workers and the machine spent."""

    times: list[dict[str, Any]]
    calls: dict[str, Any]
    cpu: float  # worker CPU seconds, all processes
    seconds: float  # workers started -> every job settled
    machine_busy: float  # share of the machine's CPU time busy meanwhile (anyone's)
    peak: float
    enqueue_seconds: float
    settled: bool
    profile: dict[str, Any] | None = None  # --profile: samples and their split by concern


def drain_backlog(
    args: argparse.Namespace, stack: Stack, jobs: list[dict[str, Any]], tag: str, concurrency: int
) -> Backlog:
    """Queue `jobs` (keys `{tag}-…`) with the workers stopped, so the producer (this
    process) does not compete with them for the cores while they are measured; then start
    the workers with `concurrency` threads each and time them draining it."""
    from worker.transport.producer import enqueue

    assert stack.sims is not None
    stack.stop_workers()
    expected = sum(_stack.count_states().values()) + len(jobs)
    started = time.time()
    for job in jobs:
        enqueue(job)
    enqueued = time.time() - started
    stack.start_workers(args.workers, concurrency, _worker_env(args))
    meter, machine = _stack.CpuMeter(stack.worker_pids), _stack.MachineCpu()
    profiled = getattr(args, "profile", None)
    with contextlib.ExitStack() as sampling:
        files = []
        if profiled is not None:
            files = sampling.enter_context(
                profile_split.recording(profiled / tag, stack.worker_pids())
            )
        meter.start()
        machine.start()
        started = time.monotonic()
        settled = _stack.wait_settled(expected, args.timeout, interval=0.2)
        seconds = time.monotonic() - started
        cpu, busy = meter.stop(), machine.stop()
    profile = None
    if profiled is not None:
        stacks = profile_split.read_stacks(files)
        profile = {"samples": sum(stacks.values()), "split": profile_split.split(stacks)}
    calls = stack.sims.call("log")
    times = [r for r in _stack.job_times() if r["key"].startswith(f"{tag}-")]
    provider = _stack.provider_seconds_by_job()
    for row in times:
        row["provider"] = provider.get(row["id"], 0.0)
    peak = max(_stack.peak_rss_mib(pid) for pid in stack.worker_pids())
    return Backlog(times, calls, cpu, seconds, busy, peak, enqueued, settled, profile)


# ---------------------------------------------------------------- latency-bound sweep

#: At the sweep's highest bound, the most of its own rate limit an eAccounting tenant is
#: given (about: the limiter keeps a burst back), so that no thread waits in the limiter.
TENANT_LIMIT_SHARE = 0.5
#: What a point reports of `summarize`'s figures.
POINT_FIELDS = (
    "in_flight_slots", "invoices", "booked", "not_booked", "settled_in_time",
    "invoices_per_second", "invoices_per_second_middle_80pct", "concurrency_bound_limit",
    "ratio_to_limit", "ratio_to_limit_middle_80pct", "provider_calls_per_invoice_steady",
    "responses_by_status", "service_ms", "service_in_provider_calls_ms",
    "service_outside_provider_calls_ms", "worker_cpu_ms_per_invoice", "peak_worker_rss_mib",
)  # fmt: skip
NO_WARM_UP_CALLS = {"ea": {"total": 0}, "ec": {"total": 0}}


def bound_per_second(processes: int, slots: int, latency_ms: float, calls: float = 2) -> float:
    """The concurrency bound: in-flight slots / (provider calls per invoice x L)."""
    return processes * slots / (calls * latency_ms / 1000)


def sweep_tenant_count(args: argparse.Namespace, rate_per_minute: int) -> int:
    """`--tenants`, or more: enough that at the highest bound an eAccounting tenant needs
    at most TENANT_LIMIT_SHARE of its limit. Half the tenants are eAccounting and get half
    the invoices; an invoice is one call on each of two endpoints, each limited to
    `rate_per_minute` per tenant. (e-conomic's daily budget is far above a run's calls.)"""
    highest = bound_per_second(args.workers, max(args.slots), args.latency_ms)
    needed = math.ceil(highest / (rate_per_minute / 60 * TENANT_LIMIT_SHARE))
    return max(args.tenants, needed + needed % 2)


def run_slot_sweep(args: argparse.Namespace, database: str) -> dict[str, Any]:
    """One stack, its tenants warmed up once, then the backlog run once per slot count."""
    from worker.transport.producer import enqueue

    with Stack(f"slots-{database}", database=database, latency_ms=args.latency_ms) as stack:
        from worker.providers.eaccounting.settings import EAccountingSettings
        from worker.settings import get_settings

        rate = get_settings().part(EAccountingSettings).rate_per_minute
        tenants = _stack.tenant_set(sweep_tenant_count(args, rate))
        log(f"[{database}] connecting {len(tenants)} tenants")
        stack.connect(tenants)
        stack.start_workers(args.workers, max(args.slots), _worker_env(args))
        warm = list(_stack.interleaved(tenants, args.customers, "warm", args.customers))
        log(f"[{database}] warm-up: {len(warm)} invoices")
        for job in warm:
            enqueue(job)
        _stack.wait_settled(len(warm), args.timeout)
        points = {
            f"{slots} per process": measure_slots(args, stack, tenants, slots, database)
            for slots in args.slots
        }
        highest = bound_per_second(args.workers, max(args.slots), args.latency_ms)
        return {
            "database": database,
            "latency_ms": args.latency_ms,
            "worker_processes": args.workers,
            "tenants": len(tenants),
            "eaccounting_tenant_share_of_its_rate_limit_at_highest_bound": round(
                highest / len(tenants) / (rate / 60), 2
            ),
            "slots": points,
        }


def measure_slots(
    args: argparse.Namespace,
    stack: Stack,
    tenants: list[tuple[str, str, str]],
    slots: int,
    database: str,
) -> dict[str, Any]:
    """The backlog run with `slots` threads per worker process."""
    assert stack.sims is not None
    count = max(args.invoices, args.jobs_per_slot * args.workers * slots)
    tag = f"slots{slots:03d}"
    jobs = list(_stack.interleaved(tenants, math.ceil(count / len(tenants)), tag, args.customers))
    stack.sims.call("reset_log")
    log(f"[{database}] {slots} slots per process: {len(jobs)} invoices")
    run = drain_backlog(args, stack, jobs, tag, slots)
    at = argparse.Namespace(**{**vars(args), "concurrency": slots})
    figures = summarize(
        at, database, jobs, run.times, [], NO_WARM_UP_CALLS, run.calls, run.cpu, run.peak,
        run.enqueue_seconds, run.settled,
    )  # fmt: skip
    point = {name: figures[name] for name in POINT_FIELDS}
    point["worker_cpu_cores_busy"] = round(run.cpu / run.seconds, 2)
    # Above the cores the workers can have, the point is CPU-bound, whatever L is.
    point["worker_cores_needed_at_bound"] = round(
        point["concurrency_bound_limit"] * point["worker_cpu_ms_per_invoice"] / 1000, 2
    )
    point["machine_cpu_busy_share"] = round(run.machine_busy, 2)
    point["load_average_1min"] = round(os.getloadavg()[0], 1)  # others' work too
    log(
        f"[{database}] {slots} slots per process: {point['invoices_per_second']}/s, "
        f"bound {point['concurrency_bound_limit']}/s, ratio {point['ratio_to_limit']}"
    )
    return point


def vismanet_calls(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    """Provider calls per Visma.net invoice in steady state (its tenants warmed up first)
    against the floor: create + release, + one status read per release answered Queued."""
    from worker.transport.producer import enqueue

    assert stack.sims is not None
    tenants = [(f"vn{index:03d}", "vismanet", "NO") for index in range(args.vismanet_tenants)]
    stack.connect(tenants)
    warm = list(_stack.interleaved(tenants, args.customers, "vnwarm", args.customers))
    log(f"vismanet: warm-up of {len(tenants)} tenants, {len(warm)} invoices")
    for job in warm:
        enqueue(job)
    _wait_booked("vnwarm-", len(warm), args.timeout)
    stack.sims.call("reset_log")
    per_tenant = max(args.vismanet_invoices // len(tenants), 1)
    jobs = list(_stack.interleaved(tenants, per_tenant, "vnrun", args.customers))
    log(f"vismanet: {len(jobs)} invoices")
    for job in jobs:
        enqueue(job)
    rows = _wait_booked("vnrun-", len(jobs), args.timeout)
    calls = stack.sims.call("log")
    return summarize_vismanet(jobs, rows, calls["vn"], int(calls["vn_releases_queued"]))


def _wait_booked(prefix: str, expected: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in _stack.job_times("vn") if r["key"].startswith(prefix)]
        settled = [r for r in rows if r["state"] in ("booked", "failed", "waiting_for_reauth")]
        if len(settled) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


VISMANET_CREATE = "POST /v2/customerinvoice"
VISMANET_RELEASE = "POST /v1/customerinvoice/{id}/action/release"
VISMANET_READ = "GET /v1/customerinvoice/{id}"


def summarize_vismanet(
    jobs: list[dict[str, Any]], rows: list[dict[str, Any]], log_: dict[str, Any], queued: int
) -> dict[str, Any]:
    booked = [r for r in rows if r["state"] == "booked"]
    count = max(len(booked), 1)
    by_endpoint: dict[str, int] = log_["by_endpoint"]
    named = (VISMANET_CREATE, VISMANET_RELEASE, VISMANET_READ)
    other = {k: v for k, v in by_endpoint.items() if k not in named}
    floor = (2 * len(booked) + queued) / count
    per_invoice = log_["total"] / count
    span = max(r["finished"] for r in booked) - min(r["created"] for r in booked) if booked else 0
    return {
        "invoices": len(jobs),
        "booked": len(booked),
        "releases_answered_queued": queued,
        "provider_calls_per_invoice_steady": round(per_invoice, 3),
        "floor_calls_per_invoice": round(floor, 3),
        "ratio_to_floor": round(per_invoice / floor, 3) if floor else float("nan"),
        "calls_per_invoice_by_endpoint": {
            "create": round(by_endpoint.get(VISMANET_CREATE, 0) / count, 3),
            "release": round(by_endpoint.get(VISMANET_RELEASE, 0) / count, 3),
            "status_read": round(by_endpoint.get(VISMANET_READ, 0) / count, 3),
            "other": round(sum(other.values()) / count, 3),
        },
        "other_calls": other,
        "responses_by_status": log_["by_status"],
        "invoices_per_second": round(len(booked) / span, 1) if span else float("nan"),
    }


def run_anchors(
    args: argparse.Namespace, stack: Stack, tenants: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """The floor and the lean worker on the same stack, each with its own invoices (the
    same number, tenants and customers as the measured run)."""
    from lean.run import run_floor, run_lean, run_ledger_alone

    per_tenant = max(args.invoices // len(tenants), 1)
    floor_jobs = list(_stack.interleaved(tenants, per_tenant, "floor", args.customers))
    lean_jobs = list(_stack.interleaved(tenants, per_tenant, "lean", args.customers))
    ledger_jobs = list(_stack.interleaved(tenants, per_tenant, "ledger", args.customers))
    return {
        "floor": run_floor(floor_jobs, args.workers * args.concurrency),
        "lean_worker": run_lean(
            stack, lean_jobs, args.workers, args.concurrency, args.task_events == "on"
        ),
        "ledger_writes_alone": run_ledger_alone(ledger_jobs, "run"),
    }


def same_run_ratios(result: dict[str, Any], databases: tuple[str, ...]) -> dict[str, Any]:
    """ledgerpush's worker CPU per invoice as a multiple of each anchor, and the rates."""
    anchors = result["anchors"]
    floor = anchors["floor"]["cpu_ms_per_invoice"]
    lean = anchors["lean_worker"]["worker_cpu_ms_per_invoice"]
    ledger_alone = anchors["ledger_writes_alone"]
    ratios: dict[str, Any] = {}
    for database in databases:
        ours = result[f"ledgerpush_{database}"]
        cpu = ours["worker_cpu_ms_per_invoice"]
        ratios[database] = {
            "cpu_per_invoice_x_floor": _multiple(cpu, floor),
            "cpu_per_invoice_x_lean_worker": _multiple(cpu, lean),
            "cpu_ms_per_invoice": {"ledgerpush": cpu, "lean_worker": lean, "floor": floor},
            "invoices_per_second": {
                "ledgerpush": ours["invoices_per_second"],
                "lean_worker": anchors["lean_worker"]["invoices_per_second"],
                "floor": anchors["floor"]["invoices_per_second"],
            },
        }
        if ledger_alone.get("database") == database:
            # The lean worker with only the ledger writes exactly once needs added, in
            # one thread without contention (the least they cost): what would be left
            # for everything else under a multiple of the lean worker.
            ledger = ledger_alone["cpu_ms_per_invoice"]
            ratios[database]["cpu_ms_per_invoice"]["ledger_writes_alone"] = ledger
            ratios[database]["lean_worker_plus_ledger_writes_x_lean_worker"] = _multiple(
                lean + ledger, lean
            )
    return ratios


def _multiple(value: float, anchor: float) -> float | None:
    """`value` as a multiple of `anchor`; None when the anchor measured no CPU (a run too
    short for /proc's clock ticks to see it)."""
    return round(value / anchor, 2) if anchor > 0 else None


def _worker_env(args: argparse.Namespace) -> dict[str, str]:
    return {"LEDGERPUSH_TASK_EVENTS": "true" if args.task_events == "on" else "false"}


def steady_load(
    args: argparse.Namespace, tenants: list[tuple[str, str, str]], rate: float
) -> dict[str, Any]:
    """enqueue→booked latency without a backlog: invoices sent at half the measured
    throughput for `--latency-seconds`."""
    from worker.transport.producer import enqueue

    log(f"steady load: {rate:.0f} invoices/s for {args.latency_seconds:.0f} s")
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < args.latency_seconds:
        time.sleep(max(start + sent / rate - time.monotonic(), 0))
        tenant_id, _, country = tenants[sent % len(tenants)]
        enqueue(_stack.invoice(tenant_id, country, f"steady-{sent:06d}", sent % args.customers))
        sent += 1
    _stack.wait_settled(len(_stack.job_times()), 60)
    time.sleep(2)
    rows = [r for r in _stack.job_times() if r["key"].startswith("steady-")]
    done = [r["finished"] - r["enqueued"] for r in rows if r["state"] == "booked"]
    return {
        "invoices_per_second": round(rate, 1),
        "sent": sent,
        "booked": len(done),
        "enqueue_to_booked_ms": {k: round(v * 1000, 1) for k, v in percentiles(done).items()},
    }


def summarize(
    args: argparse.Namespace,
    database: str,
    jobs: list[dict[str, Any]],
    times: list[dict[str, Any]],
    warm: list[dict[str, Any]],
    warm_calls: dict[str, Any],
    calls: dict[str, Any],
    cpu: float,
    peak: float,
    enqueue_seconds: float,
    settled: bool,
) -> dict[str, Any]:
    booked = [r for r in times if r["state"] == "booked"]
    first = min(r["created"] for r in times)  # the first job a worker picked up
    finished = sorted(r["finished"] for r in booked)
    span = finished[-1] - first
    low, high = finished[len(finished) // 10], finished[(len(finished) * 9) // 10]
    middle_rate = (len(finished) * 8 // 10) / (high - low) if high > low else float("nan")
    steady_calls = calls["ea"]["total"] + calls["ec"]["total"]
    warm_total = warm_calls["ea"]["total"] + warm_calls["ec"]["total"]
    per_invoice = steady_calls / max(len(booked), 1)
    slots = args.workers * args.concurrency
    limit = slots / (2 * args.latency_ms / 1000)
    rate = len(booked) / span
    statuses: dict[str, int] = {}
    for side in ("ea", "ec"):
        for status, count in calls[side]["by_status"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "database": database,
        "invoices": len(jobs),
        "booked": len(booked),
        "not_booked": {
            s: sum(1 for r in times if r["state"] == s)
            for s in {r["state"] for r in times}
            if s != "booked"
        },
        "settled_in_time": settled,
        "enqueue_seconds": round(enqueue_seconds, 2),
        "run_seconds": round(span, 2),
        "invoices_per_second": round(rate, 1),
        "invoices_per_second_middle_80pct": round(middle_rate, 1),
        "concurrency_bound_limit": round(limit, 1),
        "ratio_to_limit": round(rate / limit, 3),
        "ratio_to_limit_middle_80pct": round(middle_rate / limit, 3),
        "in_flight_slots": slots,
        "provider_calls_per_invoice_steady": round(per_invoice, 3),
        "provider_calls_per_invoice_with_warmup": round(
            (steady_calls + warm_total) / max(len(booked) + len(warm), 1), 3
        ),
        "warmup_calls_per_tenant": round(warm_total / max(args.tenants, 1), 1),
        "responses_by_status": statuses,
        "enqueue_to_booked_ms_whole_backlog_queued_first": {
            k: round(v * 1000, 1)
            for k, v in percentiles([r["finished"] - r["enqueued"] for r in booked]).items()
        },
        "service_ms": {
            k: round(v * 1000, 1)
            for k, v in percentiles([r["finished"] - r["created"] for r in booked]).items()
        },
        # Service time split: waiting on the provider (L plus the simulator's own work)
        # and everything else (ledger, Redis, lease, rate limiter, thread scheduling).
        "service_in_provider_calls_ms": {
            k: round(v * 1000, 1) for k, v in percentiles([r["provider"] for r in booked]).items()
        },
        "service_outside_provider_calls_ms": {
            k: round(v * 1000, 1)
            for k, v in percentiles(
                [r["finished"] - r["created"] - r["provider"] for r in booked]
            ).items()
        },
        "worker_cpu_seconds": round(cpu, 2),
        "worker_cpu_ms_per_invoice": round(cpu * 1000 / max(len(booked), 1), 2),
        "peak_worker_rss_mib": round(peak, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "machine": _stack.machine(),
        "parameters": {
            "invoices": args.invoices,
            "tenants": args.tenants,
            "latency_ms": args.latency_ms,
            "worker_processes": args.workers,
            "threads_per_worker": args.concurrency,
            "task_events": args.task_events,
            "customers_per_tenant": args.customers,
            "vismanet_invoices": args.vismanet_invoices,
            "vismanet_tenants": args.vismanet_tenants,
            "vismanet_queued_share": args.vismanet_queued_share,
        },
    }
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    if args.slots:
        parameters = result["parameters"]
        for unused in ("threads_per_worker", *(k for k in parameters if "vismanet" in k)):
            parameters.pop(unused)
        parameters.update(slots_per_process=list(args.slots), jobs_per_slot=args.jobs_per_slot)
        for database in databases:
            result[f"latency_bound_{database}"] = _stack.isolated(run_slot_sweep, args, database)
        emit(result, args.json)
        return 0
    runs: dict[str, Any] = {}
    for database in databases:
        anchors = not args.no_anchors and database == databases[0]
        vismanet = args.vismanet_invoices > 0 and database == databases[0]
        runs[f"ledgerpush_{database}"] = _stack.isolated(
            run_ledgerpush, args, database, anchors, vismanet
        )
    if not args.no_anchors:
        anchored = {"anchors": runs[f"ledgerpush_{databases[0]}"].pop("anchors"), **runs}
        # First: the ratios, which depend far less on how busy the machine is.
        result["same_run_ratios"] = same_run_ratios(anchored, databases)
        runs = anchored
    result.update(runs)
    first = runs[f"ledgerpush_{databases[0]}"]
    if "vismanet" in first:  # also at the top, beside the other headline figures
        result["vismanet"] = first.pop("vismanet")
    if not args.no_baseline:
        from baseline.run import run_baseline

        base = run_baseline(args)
        result["baseline"] = base
        for database in databases:
            ours = result[f"ledgerpush_{database}"]["invoices_per_second"]
            result[f"ratio_to_baseline_{database}"] = round(ours / base["invoices_per_second"], 1)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
