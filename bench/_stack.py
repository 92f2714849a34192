"""What every benchmark shares: a throw-away ledgerpush on this machine, measured.

A fresh home (under the system temp dir), a real Redis (the embedded server with AOF and
fsync always, as in production), the ledger on SQLite (default) or a fresh PostgreSQL
database, the three simulators (eAccounting, e-conomic, Visma.net ERP) in a child process
of their own (so their CPU is not the benchmark's, and their latency `L` is
`Faults.latency_ms`), tenants connected to them as after the consent flow, and real `ledgerpush worker` processes whose CPU time and peak
memory are read from /proc. Reuses `worker.devtools.localstack` (home, settings, simulators,
tenants, child processes).

Benchmarks print figures; none of this asserts anything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from worker.devtools import factories, localstack  # noqa: E402
from worker.transport.children import arm_in_child, stop_on_signals  # noqa: E402
from worker.transport.embedded_redis import EmbeddedRedis  # noqa: E402

EA_CLIENT = ("ledgerpush-bench", "bench-secret")
EC_APP = ("bench-app-secret", "bench-app-public")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


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


# ---------------------------------------------------------------- simulators


class QueuedReleases:
    """ASGI middleware in front of the Visma.net simulator: counts the releases it
    answered `Queued` (the floor of calls per invoice has one status read for each)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not path.endswith("/action/release")
        ):
            await self.app(scope, receive, send)
            return

        async def watch(message: Any) -> None:
            if message["type"] == "http.response.body" and b'"Queued"' in message.get("body", b""):
                self.count += 1
            await send(message)

        await self.app(scope, receive, watch)


#: The simulator process's commands that connect tenants, and their provider.
CONNECT_COMMANDS = {"connect_ea": "eaccounting", "connect_ec": "economic", "connect_vn": "vismanet"}


def _simulator_main(conn: Any, env: dict[str, str], options: dict[str, Any]) -> None:
    """The child process: the simulators over HTTP, driven by commands on `conn`."""
    arm_in_child(int(env["_LEDGERPUSH_BENCH_PARENT"]))
    os.environ.update(env)
    from worker.simulators.common import Faults
    from worker.simulators.eaccounting import EAccountingSimulator
    from worker.simulators.economic import EconomicSimulator
    from worker.simulators.vismanet import create_simulator

    stack = localstack.LocalStack(home=Path(env["LEDGERPUSH_HOME"]), env={})
    latency = float(options.get("latency_ms", 0))
    ea = EAccountingSimulator(
        client_id=EA_CLIENT[0],
        client_secret=EA_CLIENT[1],
        token_lifetime_seconds=float(options.get("token_lifetime_seconds", 3600)),
        rate_limit_per_minute=int(options.get("rate_limit_per_minute", 600)),
        faults=Faults(latency_ms=latency),
    )
    ec = EconomicSimulator(
        app_secret_token=EC_APP[0],
        app_public_token=EC_APP[1],
        rate_limit_per_day=int(options.get("ec_calls_per_day", 10_000_000)),
        faults=Faults(latency_ms=latency),
    )
    vn = create_simulator(
        faults=Faults(latency_ms=latency),
        seed=1,
        release_queued_rate=float(options.get("vn_queued_share", 0.0)),
        release_queued_seconds=float(options.get("vn_queued_seconds", 0.1)),
    )
    queued = QueuedReleases(vn.app)
    vn.app = queued
    localstack.start_simulators(stack, {"eaccounting": ea, "economic": ec, "vismanet": vn})
    conn.send(dict(stack.env))
    while True:
        command, args = conn.recv()
        try:
            if command == "stop":
                for server in stack.servers:
                    server.stop()
                conn.send(None)
                return
            conn.send(_simulator_command(stack, ea, ec, command, args, queued))
        except Exception as exc:
            conn.send(RuntimeError(f"{command}: {type(exc).__name__}: {exc}"))


def _simulator_command(
    stack: Any, ea: Any, ec: Any, command: str, args: Any, queued: QueuedReleases
) -> Any:
    vn = stack.sims["vismanet"]
    provider = CONNECT_COMMANDS.get(command)
    if provider:
        for tenant_id, country in args:
            localstack.connect(stack, provider, tenant_id, country)
        return len(args)
    if command == "companies":
        return [localstack.simulated_tenant(stack, p, t, c) for t, p, c in args]
    if command == "log":
        return {"ea": ea.log.snapshot(), "ec": ec.log.snapshot(), "vn": vn.log.snapshot(),
                "vn_releases_queued": queued.count}  # fmt: skip
    if command == "reset_log":
        ea.log.reset()
        ec.log.reset()
        vn.log.reset()
        queued.count = 0
        with ea.lock:
            ea.tokens.calls.clear()
            ea.tokens.company_calls.clear()
        return True
    if command == "token_calls":
        with ea.lock:
            per_company: dict[str, int] = {}
            for (company, grant), count in ea.tokens.company_calls.items():
                if grant == "refresh_token":
                    per_company[company] = per_company.get(company, 0) + count
            return {"by_grant": dict(ea.tokens.calls), "refresh_by_company": per_company}
    if command == "ea_config":
        ea.update_config(args)
        return True
    if command == "faults":
        ea.faults.update(args)
        ec.faults.update(args)
        vn.faults.update(args)
        return True
    raise ValueError(f"unknown simulator command {command!r}")


class Simulators:
    """The simulators in a child process; `call` runs a command there."""

    def __init__(self, env: dict[str, str], **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        env = {**env, "_LEDGERPUSH_BENCH_PARENT": str(os.getpid())}
        self.process = context.Process(
            target=_simulator_main, args=(child, env, options), name="simulators", daemon=True
        )
        self.process.start()
        if not self.conn.poll(60):
            raise RuntimeError("the simulators did not start")
        self.env: dict[str, str] = self.conn.recv()

    def call(self, command: str, args: Any = None, timeout: float = 600) -> Any:
        self.conn.send((command, args))
        if not self.conn.poll(timeout):
            raise RuntimeError(f"simulator command {command} timed out")
        answer = self.conn.recv()
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call("stop", timeout=20)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


# ---------------------------------------------------------------- isolation


def _isolated_main(conn: Any, parent: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    arm_in_child(parent)
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:
        import traceback

        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(*args)` in a fresh process: settings, engine and Redis client are cached per
    process, so every stack gets its own."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_isolated_main, args=(child, os.getpid(), fn, args))
    process.start()
    status, value = parent.recv()
    process.join()
    if status != "ok":
        raise RuntimeError(value)
    return value


# ---------------------------------------------------------------- process meters


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[11..14] = utime, stime, cutime, cstime (fields 14-17 of proc(5))
    return sum(int(x) for x in fields[11:15]) / ticks


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the highest resident set size the process reached."""
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float:
    """VmRSS: the process's resident set size now."""
    return _status_mib(pid, "VmRSS")


def _status_mib(pid: int, name: str) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(f"{name}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_pids(pid: int) -> list[int]:
    """The process and all its descendants (a prefork pool's children)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [pid] + [child.pid for child in parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


class CpuMeter:
    """CPU seconds of a set of process trees between `start()` and `stop()`."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids
        self.before: dict[int, float] = {}
        self.after: dict[int, float] = {}

    def _read(self) -> dict[int, float]:
        found: dict[int, float] = {}
        for root in self.pids():
            for pid in tree_pids(root):
                with contextlib.suppress(OSError):
                    found[pid] = cpu_seconds(pid)
        return found

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> float:
        self.after = self._read()
        return sum(v - self.before.get(pid, 0.0) for pid, v in self.after.items())


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
    """One throw-away ledgerpush: home, Redis, ledger, simulators, worker processes."""

    name: str
    database: str = "sqlite"
    latency_ms: float = 50.0
    sim_options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    home: Path = field(init=False)
    local: Any = field(init=False, default=None)
    redis: EmbeddedRedis | None = field(init=False, default=None)
    sims: Simulators | None = field(init=False, default=None)
    workers: list[Any] = field(init=False, default_factory=list)
    _pg_name: str | None = field(init=False, default=None)

    def start(self) -> Stack:
        self.home = Path(tempfile.gettempdir()) / f"ledgerpush-bench-{self.name}-{os.getpid()}"
        env = {
            "LEDGERPUSH_ENV": "production",
            "LEDGERPUSH_SECRET_KEY": Fernet.generate_key().decode(),
            "LEDGERPUSH_LOG_JSON": "true",
            "LEDGERPUSH_EACCOUNTING_CLIENT_ID": EA_CLIENT[0],
            "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET": EA_CLIENT[1],
            "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN": EC_APP[0],
            "LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN": EC_APP[1],
            **self.settings,
        }
        stop_on_signals()  # SIGTERM/SIGINT/SIGHUP: __exit__ stops every child
        self.local = localstack.prepare_home(self.home, env)
        self.redis = EmbeddedRedis(self.home / "redis", die_with_parent=True).start()
        urls = {"LEDGERPUSH_REDIS_URL": self.redis.url}
        if self.database == "postgresql":
            urls["LEDGERPUSH_DATABASE_URL"] = self._create_pg_database()
        localstack.setenv(self.local, urls)
        self.sims = Simulators(dict(os.environ), latency_ms=self.latency_ms, **self.sim_options)
        localstack.setenv(self.local, self.sims.env)
        from worker.ledger.db import engine

        engine()  # migrate once, before several processes race to
        return self

    def _create_pg_database(self) -> str:
        import psycopg

        self._pg_name = f"ledgerpush_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self._pg_name}"')
        return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{self._pg_name}"

    def connect(self, tenants: list[tuple[str, str, str]], batch: int = 100) -> None:
        """(tenant id, provider, country) each, as after the consent flow."""
        assert self.sims is not None
        commands = (
            ("eaccounting", "connect_ea"), ("economic", "connect_ec"), ("vismanet", "connect_vn")
        )  # fmt: skip
        for provider, command in commands:
            chosen = [(t, c) for t, p, c in tenants if p == provider]
            for start in range(0, len(chosen), batch):
                self.sims.call(command, chosen[start : start + batch])

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
        if extra:
            localstack.setenv(self.local, extra)
        started = []
        for index in range(processes):
            name = f"worker-{index}"
            process = localstack.start_process(
                self.local,
                [
                    "worker",
                    "--concurrency", str(concurrency),
                    "--hostname", f"bench{index}@%h",
                    "--loglevel", "INFO",
                ],
                name,
            )  # fmt: skip
            started.append((process, self.home / f"{name}.log"))
        for process, log in started:
            wait_for_ready(process, log)
        self.workers += [process for process, _ in started]

    def stop_workers(self, timeout: float = 60) -> None:
        """SIGTERM the worker processes and wait for them (their jobs finish first)."""
        for process in self.workers:
            process.terminate()
        for process in self.workers:
            process.wait(timeout)
        self.local.processes = [p for p in self.local.processes if p not in self.workers]
        self.workers = []

    def start_beat(self) -> None:
        process = localstack.start_process(self.local, ["beat", "--loglevel", "INFO"], "beat")
        self.workers.append(process)

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.workers]

    def stop(self) -> None:
        if self.local is not None:
            localstack.stop(self.local, timeout=20)
        if self.sims is not None:
            self.sims.stop()
        if self.redis is not None:
            self.redis.stop()
        if self._pg_name:
            import psycopg

            with contextlib.suppress(Exception):
                from worker.ledger.db import engine

                engine().dispose()
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self._pg_name}" WITH (FORCE)')
        import shutil

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


def wait_for_ready(process: Any, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):
            if b" ready." in log.read_bytes():
                return
        time.sleep(0.2)
    raise RuntimeError(f"worker not ready after {timeout}s; see {log}")


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


def wait_settled(expected: int, timeout: float, interval: float = 0.5) -> bool:
    """Until `expected` jobs are booked/failed/parked, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = count_states()
        done = sum(
            counts.get(s, 0) for s in ("booked", "failed", "cancelled", "waiting_for_reauth")
        )
        if done >= expected:
            return True
        time.sleep(interval)
    return False


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
