"""What every benchmark shares: a throw-away ledgerpush on this machine, measured.

The stack is worker.devtools.localstack's (the one the demo, chaos and the tests run on):
a fresh home under the system temp dir, the bundled Redis with AOF and fsync always (as
in production), the ledger on SQLite (default) or a fresh PostgreSQL database, the three
simulators (eAccounting, e-conomic, Visma.net ERP) in a child process of their own (so
their CPU is not the benchmark's, and their latency `L` is `Faults.latency_ms`), tenants
connected to them as after the consent flow, and real `ledgerpush worker` processes whose
CPU time and peak memory are read from /proc. Here: the benchmarks' settings, their
workload (factories.py's jobs), what they read from the ledger, and how they print.

Benchmarks print figures; none of this asserts anything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from worker.devtools import factories  # noqa: E402
from worker.devtools.localstack import LocalStack, wait_settled  # noqa: E402
from worker.devtools.processes import (  # noqa: E402
    ChildProcess,
    CpuMeter,
    cpu_seconds,
    isolated,
    peak_rss_mib,
    rss_mib,
    tree_pids,
    wait_for_ready,
)
from worker.devtools.simulator_process import (  # noqa: E402
    EA_CLIENT,
    EC_APP,
    QueuedReleases,
    SimulatorProcess,
)
from worker.transport.children import stop_on_signals  # noqa: E402
from worker.transport.embedded_redis import EmbeddedRedis  # noqa: E402

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
__all__ = [
    "EA_CLIENT", "EC_APP", "POSTGRES_ADMIN", "ChildProcess", "CpuMeter", "MachineCpu",
    "QueuedReleases", "Simulators", "Stack", "add_tenants", "count_states", "cpu_seconds", "emit",
    "interleaved", "invoice", "isolated", "job_times", "log", "machine", "peak_rss_mib",
    "percentiles", "provider_seconds_by_job", "rss_mib", "tenant_set", "tree_pids",
    "wait_for_ready", "wait_settled",
]  # fmt: skip


class Simulators(SimulatorProcess):
    """The simulators' child process for settings `env` (naming LEDGERPUSH_HOME)."""

    def __init__(self, env: dict[str, str], **options: Any) -> None:
        super().__init__(Path(env["LEDGERPUSH_HOME"]), env, **options)


# ---------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """Cores and memory as read now, so every result names the machine it ran on."""
    memory = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory / 2**30, 1),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# ---------------------------------------------------------------- the machine's CPU


class MachineCpu:
    """The share of the whole machine's CPU time (every core, every process, anyone's)
    that was busy between `start()` and `stop()`, from /proc/stat: near 1, a run was
    CPU-bound whatever its latency."""

    def __init__(self) -> None:
        self.before = (0, 0)

    @staticmethod
    def _read() -> tuple[int, int]:
        """(busy, total) ticks: user nice system idle iowait irq softirq steal."""
        with open("/proc/stat") as handle:
            ticks = [int(x) for x in handle.readline().split()[1:9]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> float:
        busy, total = self._read()
        spent = total - self.before[1]
        return (busy - self.before[0]) / spent if spent else float("nan")


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    """One throw-away ledgerpush (a LocalStack) in a home under the system temp dir:
    production settings, the ledger on SQLite or a throwaway PostgreSQL database
    (`database`), the simulators in a child process at latency `latency_ms`
    (`sim_options`: worker/devtools/simulator_process.py), and worker processes."""

    name: str
    database: str = "sqlite"
    latency_ms: float = 50.0
    sim_options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    home: Path = field(init=False)
    local: LocalStack | None = field(init=False, default=None)

    def start(self) -> Stack:
        self.home = Path(tempfile.gettempdir()) / f"ledgerpush-bench-{self.name}-{os.getpid()}"
        stop_on_signals()  # SIGTERM/SIGINT/SIGHUP: __exit__ stops every child
        settings = {
            "LEDGERPUSH_ENV": "production",
            "LEDGERPUSH_SECRET_KEY": Fernet.generate_key().decode(),
            "LEDGERPUSH_LOG_JSON": "true",
            "LEDGERPUSH_EACCOUNTING_CLIENT_ID": EA_CLIENT[0],
            "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET": EA_CLIENT[1],
            "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN": EC_APP[0],
            "LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN": EC_APP[1],
            **self.settings,
        }
        local = self.local = LocalStack.create(self.home, settings)
        local.start_redis()
        local.use_database(throwaway_on=POSTGRES_ADMIN if self.database == "postgresql" else None)
        local.start_simulator_process(latency_ms=self.latency_ms, **self.sim_options)
        local.open_ledger()  # migrate once, before several processes race to
        return self

    @property
    def redis(self) -> EmbeddedRedis | None:
        return self.local.redis if self.local is not None else None

    @property
    def sims(self) -> SimulatorProcess | None:
        return self.local.simulator_process if self.local is not None else None

    @property
    def workers(self) -> list[ChildProcess]:
        """The worker processes, and beat once started."""
        return self.local.workers if self.local is not None else []

    def connect(self, tenants: list[tuple[str, str, str]], batch: int = 100) -> None:
        """(tenant id, provider, country) each, as after the consent flow."""
        assert self.local is not None
        self.local.connect_tenants(tenants, batch)

    def connect_in_bulk(self, tenants: list[tuple[str, str, str]], batch: int = 500) -> None:
        """As `connect`, for thousands of tenants: the simulators make the companies, and
        each batch of tenant rows is inserted in one transaction."""
        assert self.sims is not None
        for start in range(0, len(tenants), batch):
            chosen = tenants[start : start + batch]
            simulated = self.sims.call("companies", chosen)
            add_tenants([(*tenant, given) for tenant, given in zip(chosen, simulated, strict=True)])

    def start_workers(
        self, processes: int, concurrency: int, extra: dict[str, str] | None = None
    ) -> None:
        """`processes` workers started side by side; `extra` settings stay for later ones."""
        assert self.local is not None
        if extra:
            self.local.setenv(extra)
        started = [
            self.local.start_worker(f"worker-{index}", concurrency, hostname=f"bench{index}",
                                    wait=False)
            for index in range(processes)
        ]  # fmt: skip
        for worker in started:
            worker.wait_ready()

    def stop_workers(self, timeout: float = 60) -> None:
        """SIGTERM the worker processes and wait for them (their jobs finish first)."""
        assert self.local is not None
        self.local.stop_workers(timeout)

    def start_beat(self) -> None:
        assert self.local is not None
        beat = self.local.start_process(["beat", "--loglevel", "INFO"], "beat")
        self.local.workers.append(beat)

    def worker_pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop(timeout=20)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def add_tenants(tenants: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """(tenant id, provider, country, simulated) each, in one transaction (`simulated`:
    localstack.simulated_tenant's credentials and mapping): the rows
    `worker.tenancy.tenants.add_tenant` writes one transaction at a time."""
    from worker.ledger.db import session
    from worker.ledger.models import Tenant
    from worker.tenancy.tenants import _set_credentials as set_credentials

    rows = []
    for tenant_id, provider, country, simulated in tenants:
        tenant = Tenant(id=tenant_id, provider=provider, country=country, display_name=tenant_id,
                        mapping=simulated.get("mapping") or {}, capabilities={})  # fmt: skip
        set_credentials(tenant, simulated["credentials"])
        rows.append(tenant)
    with session() as db:
        db.add_all(rows)


# ---------------------------------------------------------------- workload


EA_COUNTRIES = ("NO", "SE")
EC_COUNTRIES = ("DK", "NO")


def tenant_set(
    count: int, prefix: str = "t", providers: str = "both"
) -> list[tuple[str, str, str]]:
    """`count` tenants, alternating providers (or only one), with a country each."""
    chosen: list[tuple[str, str, str]] = []
    for index in range(count):
        use_ea = providers == "eaccounting" or (providers == "both" and index % 2 == 0)
        if use_ea:
            country = EA_COUNTRIES[(index // 2) % len(EA_COUNTRIES)]
            chosen.append((f"{prefix}{index:04d}-ea", "eaccounting", country))
        else:
            country = EC_COUNTRIES[(index // 2) % len(EC_COUNTRIES)]
            chosen.append((f"{prefix}{index:04d}-ec", "economic", country))
    return chosen


def invoice(tenant_id: str, country: str, key: str, customer: int) -> dict[str, Any]:
    """Invoice `key` to the tenant's numbered customer, priced by the customer."""
    return factories.invoice_job(
        tenant_id,
        key,
        country=country,
        customer=factories.numbered_customer(country, customer),
        lines=[factories.line("Consulting", "3", f"{1000 + customer}.00", "25")],
        issue_date=factories.days_from_today(-1),
        due_date=factories.days_from_today(13),
        your_reference=f"PO-{key}",
    )


def interleaved(
    tenants: list[tuple[str, str, str]], per_tenant: int, tag: str, customers: int
) -> Iterator[dict[str, Any]]:
    """Round robin over tenants, as many producers sending at once would."""
    for number in range(per_tenant):
        for tenant_id, _, country in tenants:
            yield invoice(tenant_id, country, f"{tag}-{number:05d}", number % customers)


# ---------------------------------------------------------------- reading the ledger


def job_times(tenant_prefix: str | None = None) -> list[dict[str, Any]]:
    """Per job: tenant, state, enqueued/created/finished as epoch seconds, attempts."""
    from sqlalchemy import select

    from worker.ledger.db import read_session
    from worker.ledger.models import Job

    query = select(
        Job.id, Job.tenant_id, Job.state, Job.enqueued_at, Job.created_at, Job.finished_at,
        Job.attempts, Job.idempotency_key,
    )  # fmt: skip
    if tenant_prefix:
        query = query.where(Job.tenant_id.like(f"{tenant_prefix}%"))
    rows = []
    with read_session() as db:
        for row in db.execute(query):
            rows.append(
                {
                    "id": row[0],
                    "tenant": row[1],
                    "state": row[2],
                    "enqueued": _epoch(row[3]),
                    "created": _epoch(row[4]),
                    "finished": _epoch(row[5]),
                    "attempts": row[6],
                    "key": row[7],
                }
            )
    return rows


def provider_seconds_by_job() -> dict[str, float]:
    """Per job: the seconds its attempts spent in provider calls (as the worker timed
    them: request sent -> response read)."""
    from sqlalchemy import select

    from worker.ledger.db import read_session
    from worker.ledger.models import Attempt

    totals: dict[str, float] = {}
    with read_session() as db:
        for job_id, calls in db.execute(select(Attempt.job_id, Attempt.calls)):
            spent = sum(call.get("ms") or 0 for call in calls or []) / 1000
            totals[job_id] = totals.get(job_id, 0.0) + spent
    return totals


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def count_states() -> dict[str, int]:
    from worker.ledger.store import count_by_state

    return count_by_state()


def percentiles(values: list[float], points: Iterable[int] = (50, 95, 99)) -> dict[str, float]:
    if not values:
        return {f"p{p}": float("nan") for p in points}
    ordered = sorted(values)
    if len(ordered) == 1:
        return {f"p{p}": ordered[0] for p in points}
    cuts = statistics.quantiles(ordered, n=1000, method="inclusive")
    return {f"p{p}": cuts[p * 10 - 1] for p in points}


# ---------------------------------------------------------------- output


def emit(result: dict[str, Any], as_json: bool) -> None:
    """JSON for machines, or `key: value` lines for people."""
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    _print_tree(result, 0)


def _print_tree(value: Any, depth: int) -> None:
    pad = "  " * depth
    for key, item in value.items():
        if isinstance(item, dict):
            print(f"{pad}{key}:")
            _print_tree(item, depth + 1)
        else:
            print(f"{pad}{key}: {_fmt(item)}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def log(message: str) -> None:
    """Progress goes to stderr, figures to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
