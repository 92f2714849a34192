"""The ledger's database or Redis going away while real workers book jobs: nothing is
acknowledged away, every job is booked exactly once when the store is back, and the
worker processes keep running. And a job's own transient failures are retried for a
time budget (LEDGERPUSH_RETRY_HORIZON), not a count.

The outage tests run on their own database (a SQLite file, or a PostgreSQL database of
their own when LEDGERPUSH_TEST_DATABASE_URL is set), their own Redis and simulators, so
that the outage reaches no other test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.conftest import (
    EA_CLIENT,
    EC_APP,
    WorkerProcess,
    connect_ea_tenant,
    invoice_job,
    unique,
    wait_for,
)
from tests.test_exactly_once import EA, EC, StackView, System, invoice, remote
from worker.devtools.localstack import (
    LocalStack,
    create_postgres_database,
    drop_postgres_database,
    libpq_url,
    simulated_tenant,
)
from worker.jobs import job_id_for
from worker.ledger.db import make_engine
from worker.ledger.models import Job
from worker.simulators.eaccounting import EAccountingSimulator
from worker.simulators.economic import EconomicSimulator

JOBS = 100  # per outage; ~300 are too slow for two shared cores
OUTAGE_SECONDS = 30


@dataclass
class Outage(StackView):
    """This module's local stack (its own Redis, simulators and database: the session's
    ledger is not touched)."""

    ledger: Engine
    admin_url: str | None  # PostgreSQL: where the test database is switched off and on

    @property
    def database_url(self) -> str:
        return self.env["LEDGERPUSH_DATABASE_URL"]

    @property
    def database_name(self) -> str:
        return self.database_url.rsplit("/", 1)[1]

    def python(self, code: str, stdin: str = "") -> str:
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=self.local.child_env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    def connect(self, system: System) -> str:
        """A tenant of `system` in this module's database (through a process on it)."""
        tenant = unique(f"out-{system.name[:2]}")
        simulated = simulated_tenant(self.local, system.name, tenant, system.country)
        self.python(
            "import json, sys; from worker.tenancy.tenants import add_tenant; "
            f"add_tenant({tenant!r}, {system.name!r}, {system.country!r}, **json.load(sys.stdin))",
            json.dumps(simulated),
        )
        return tenant

    def enqueue(self, payloads: list[dict[str, Any]]) -> None:
        """Through `worker.transport.producer.enqueue`, as a producer process does (outbox included)."""
        self.python(
            "import json, sys; from worker.transport.producer import enqueue\n"
            "for line in sys.stdin: enqueue(json.loads(line))",
            "\n".join(json.dumps(p) for p in payloads),
        )

    def states(self, job_ids: list[str]) -> dict[str, str]:
        with self.ledger.connect() as conn:
            rows = conn.execute(select(Job.id, Job.state).where(Job.id.in_(job_ids)))
            return {job_id: state for job_id, state in rows}

    def reconciler(self) -> subprocess.Popen[bytes]:
        """What beat runs every 30 s, every 2 s here and with a short grace."""
        code = (
            "import time\n"
            "from worker.ops.reconciler import reconcile_stuck_jobs\n"
            "while True:\n"
            "    try: reconcile_stuck_jobs(lost_retry_grace=5)\n"
            "    except Exception as exc: print(exc, flush=True)\n"
            "    time.sleep(2)\n"
        )
        return subprocess.Popen(
            [sys.executable, "-c", code],
            env=self.local.child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def outbox_entries(self) -> int:
        import redis

        client: Any = redis.Redis.from_url(self.env["LEDGERPUSH_REDIS_URL"])
        queues = [q.decode() for q in client.smembers("lp:outbox:queues")]
        return sum(int(client.hlen(f"lp:outbox:{queue}")) for queue in queues)

    def booked(self, job_ids: list[str]) -> int:
        try:
            return sum(state == "booked" for state in self.states(job_ids).values())
        except Exception:  # the database is away: nothing to count now
            return 0


OUTAGE_SETTINGS = {
    "LEDGERPUSH_VISIBILITY_TIMEOUT": "35",
    "LEDGERPUSH_TASK_TIME_LIMIT": "15",
    "LEDGERPUSH_TASK_SOFT_TIME_LIMIT": "12",
    "LEDGERPUSH_LEASE_SECONDS": "5",
}


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    home = tmp_path_factory.mktemp("store-outage")
    given = os.environ.get("LEDGERPUSH_TEST_DATABASE_URL")
    ea = EAccountingSimulator(client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1])
    ec = EconomicSimulator(app_secret_token=EC_APP[0], app_public_token=EC_APP[1])
    with LocalStack.create(home, OUTAGE_SETTINGS, owns_process=False) as local:
        local.start_redis()
        url = local.use_database(throwaway_on=given)
        local.start_simulators(
            {"eaccounting": ea, "economic": ec}, providers=("eaccounting", "economic")
        )
        ledger = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        stack = Outage(local, ledger, libpq_url(given) if given else None)
        stack.python("from worker.ledger.db import engine; engine()")  # migrate
        yield stack
        stack.ledger.dispose()


@pytest.fixture
def spawn(
    outage: Outage, start_worker: Callable[..., WorkerProcess]
) -> Callable[..., WorkerProcess]:
    def start(name: str = "outage", concurrency: int = 8, **env: str) -> WorkerProcess:
        return start_worker(name, concurrency, **{**outage.env, **env})

    return start


def jobs_for(outage: Outage, count: int) -> tuple[list[dict[str, Any]], dict[str, System]]:
    """`count` invoices, alternately for an eAccounting and an e-conomic tenant."""
    tenants = {outage.connect(EA): EA, outage.connect(EC): EC}
    payloads = [
        invoice(system, tenant, unique(f"k{n}"))
        for n in range(count)
        for tenant, system in [list(tenants.items())[n % 2]]
    ]
    return payloads, tenants


def assert_booked_exactly_once(
    outage: Outage, payloads: list[dict[str, Any]], tenants: dict[str, System]
) -> None:
    ids = [job_id_for(p["tenant_id"], p["idempotency_key"]) for p in payloads]
    wait_for(lambda: outage.booked(ids) == len(ids), 120, interval=1)
    for tenant, system in tenants.items():
        documents = remote(outage, system, tenant)
        keys = [p["idempotency_key"] for p in payloads if p["tenant_id"] == tenant]
        assert {k: len(documents["booked"].get(k, [])) for k in keys} == dict.fromkeys(keys, 1)
        assert not documents["drafts"], documents["drafts"]


def run_through(
    outage: Outage,
    spawn: Callable[..., WorkerProcess],
    count: int,
    start_outage: Callable[[], None],
    end_outage: Callable[[], None],
    seconds: float = OUTAGE_SECONDS,
    reconcile: bool = False,
) -> WorkerProcess:
    """Enqueue `count` jobs, start a worker, and once a fifth are booked take the store
    away for `seconds`. Returns the worker, which must still be running. `reconcile`:
    with the reconciler running, as beat runs it."""
    payloads, tenants = jobs_for(outage, count)
    ids = [job_id_for(p["tenant_id"], p["idempotency_key"]) for p in payloads]
    outage.enqueue(payloads)
    worker = spawn()
    wait_for(lambda: outage.booked(ids) >= count // 5, 60, interval=0.2)
    start_outage()
    try:
        time.sleep(seconds)
        assert worker.process is not None and worker.process.poll() is None
    finally:
        end_outage()
    assert outage.booked(ids) < count  # the outage came in the middle of the jobs
    reconciler = outage.reconciler() if reconcile else None
    try:
        assert_booked_exactly_once(outage, payloads, tenants)
    finally:
        if reconciler is not None:
            reconciler.kill()
            reconciler.wait()
    assert worker.process is not None and worker.process.poll() is None, worker.output()[-3000:]
    return worker


def test_database_outage_in_the_middle_of_the_jobs_books_each_once(
    outage: Outage, spawn: Callable[..., WorkerProcess]
) -> None:
    """PostgreSQL: the test's database refuses connections and its sessions are cut.
    SQLite: another process holds the database's write lock past the busy timeout (30 s),
    so writers get SQLITE_BUSY ("database is locked")."""
    if outage.admin_url:
        start, end = _postgres_refuses(outage)
        seconds: float = OUTAGE_SECONDS
    else:
        start, end = _sqlite_locked(outage)
        seconds = OUTAGE_SECONDS + 8  # past the busy timeout, so that writes fail
    worker = run_through(outage, lambda: spawn("db-outage"), JOBS, start, end, seconds)
    log = worker.output()
    assert "unreachable" in log  # deliveries did fail on the database
    assert "unexpected error" not in log  # and not as the jobs' own failures
    # Every outbox entry went once its job was in the ledger.
    wait_for(lambda: outage.outbox_entries() == 0, 30, interval=0.5)


def _postgres_refuses(outage: Outage) -> tuple[Callable[[], None], Callable[[], None]]:
    import psycopg

    name = outage.database_name
    assert outage.admin_url is not None
    admin = outage.admin_url

    def start() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

    def end() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    return start, end


def _sqlite_locked(outage: Outage) -> tuple[Callable[[], None], Callable[[], None]]:
    path = outage.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def start() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    def end() -> None:
        holder.execute("ROLLBACK")
        holder.close()

    return start, end


def test_redis_outage_in_the_middle_of_the_jobs_books_each_once(
    outage: Outage, spawn: Callable[..., WorkerProcess]
) -> None:
    """The broker, the outbox, leases and rate limits all go with Redis; messages that
    were delivered stay unacknowledged in its AOF and come back, and one taken off its
    queue in the instant Redis went (before kombu recorded it) is in the outbox, which
    the reconciler sends again."""
    redis = outage.local.redis
    assert redis is not None
    run_through(outage, lambda: spawn("redis-outage"), JOBS // 2, redis.stop, redis.start, 20, True)


def test_a_sqlite_connection_that_found_the_database_read_only_is_not_reused(
    tmp_path: Path,
) -> None:
    """SQLITE_READONLY is an outage (by its result code), and the pool drops the
    connection that met it, so writes work again once the database is writable."""
    from sqlalchemy import text

    from worker.store_outage import is_store_outage

    engine = make_engine(f"sqlite:///{tmp_path / 'ro.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with engine.connect() as conn:  # this pooled connection now refuses every write
        conn.exec_driver_sql("PRAGMA query_only = ON")
    with pytest.raises(Exception) as refused, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert is_store_outage(refused.value), refused.value
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        assert conn.execute(text("SELECT x FROM t")).scalars().all() == [2]
    engine.dispose()


@pytest.mark.skipif(
    not os.environ.get("LEDGERPUSH_TEST_DATABASE_URL"), reason="runs in the suite's PostgreSQL run"
)
def test_a_postgresql_session_that_found_the_database_read_only_is_not_reused() -> None:
    """A session begun while the database refused writes (SQLSTATE 25006, e.g. after a
    failover to a standby, or `default_transaction_read_only`) keeps refusing them: the
    error is an outage, and the pool drops its connections, so writes work again."""
    from sqlalchemy import text

    from worker.store_outage import is_store_outage

    url = create_postgres_database(os.environ["LEDGERPUSH_TEST_DATABASE_URL"])
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        with engine.connect() as conn:  # this pooled session now refuses every write
            conn.exec_driver_sql("SET SESSION default_transaction_read_only = on")
            conn.commit()
        with pytest.raises(Exception) as refused, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert is_store_outage(refused.value), refused.value
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            assert conn.execute(text("SELECT x FROM t")).scalars().all() == [2]
    finally:
        engine.dispose()
        drop_postgres_database(url)


# -- retries by time, not count ----------------------------------------------------------


def test_transient_failures_are_retried_until_the_horizon_not_a_count(
    ea_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import pipeline
    from worker.ledger.store import attempts_of, find_job
    from worker.ops import operations
    from worker.settings import get_settings

    tenant = connect_ea_tenant("NO")
    monkeypatch.delenv("LEDGERPUSH_MAX_RETRIES")  # unset: only the horizon counts
    monkeypatch.setenv("LEDGERPUSH_RETRY_HORIZON", "6")
    get_settings.cache_clear()
    ea_sim.faults.update({"error_rate": 1.0})
    job = invoice_job(tenant, "503-for-a-while")
    job_id = job_id_for(tenant, "503-for-a-while")
    try:
        # More failures than the old count (8) allowed, all within the horizon.
        outcomes = [pipeline.process(job).state for _ in range(10)]
        assert outcomes == ["retry_scheduled"] * 10
        first = find_job(job_id)
        assert first is not None and first.retrying_since is not None
        since = first.retrying_since.replace(tzinfo=dt.UTC)
        time.sleep(max(0.0, 6.2 - (dt.datetime.now(dt.UTC) - since).total_seconds()))
        assert pipeline.process(job).state == "failed"
        failed = find_job(job_id)
        assert failed is not None and failed.error_code == "provider_unavailable"
        assert "gave up after 11 attempts over" in (failed.error_message or "")
        assert "LEDGERPUSH_RETRY_HORIZON" in (failed.error_message or "")
        assert len(attempts_of(job_id)) == 11

    finally:
        ea_sim.faults.update({"error_rate": 0.0})
        monkeypatch.undo()
        get_settings.cache_clear()
    operations.retry(job_id, "test")  # an operator's retry starts a new horizon
    retried = find_job(job_id)
    assert retried is not None and retried.retrying_since is None
    wait_for(lambda: pipeline.process(job).state == "booked", 30, interval=0.5)


def test_an_explicit_retry_count_still_ends_retries_before_the_horizon(
    ea_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker import pipeline
    from worker.ledger.store import find_job
    from worker.settings import get_settings

    tenant = connect_ea_tenant("NO")
    monkeypatch.setenv("LEDGERPUSH_MAX_RETRIES", "1")
    monkeypatch.setenv("LEDGERPUSH_RETRY_HORIZON", "3600")
    get_settings.cache_clear()
    ea_sim.faults.update({"error_rate": 1.0})
    job = invoice_job(tenant, "count-first")
    try:
        assert [pipeline.process(job).state for _ in range(2)] == ["retry_scheduled", "failed"]
    finally:
        ea_sim.faults.update({"error_rate": 0.0})
        monkeypatch.undo()
        get_settings.cache_clear()
    failed = find_job(job_id_for(tenant, "count-first"))
    assert failed is not None and (failed.error_message or "").startswith("gave up after 2 ")


def test_a_worker_dead_letters_a_failing_job_at_its_horizon_not_after_eight_tries(
    ea_sim: Any, base_env: dict[str, str]
) -> None:
    """Through a real worker and Celery's retries, with LEDGERPUSH_MAX_RETRIES unset."""
    from worker.ledger.store import attempts_of, find_job
    from worker.transport.producer import enqueue

    env = {k: v for k, v in base_env.items() if k != "LEDGERPUSH_MAX_RETRIES"}
    worker = WorkerProcess(unique("horizon"), {**env, "LEDGERPUSH_RETRY_HORIZON": "15"}, 4)
    tenant = connect_ea_tenant("NO")
    job_id = job_id_for(tenant, "503-until-the-horizon")
    ea_sim.faults.update({"error_rate": 1.0})
    try:
        worker.start()
        enqueue(invoice_job(tenant, "503-until-the-horizon"))

        def dead_letter() -> Job | None:
            job = find_job(job_id)
            return job if job is not None and job.state == "failed" else None

        failed: Job = wait_for(dead_letter, 60, interval=0.5)
    finally:
        ea_sim.faults.update({"error_rate": 0.0})
        worker.stop()
    assert failed.error_code == "provider_unavailable"
    assert "LEDGERPUSH_RETRY_HORIZON" in (failed.error_message or "")
    attempts = attempts_of(job_id)
    assert len(attempts) > 8  # the old count would have ended it earlier
    first, last = attempts[0].started_at, attempts[-1].started_at
    assert (last - first).total_seconds() >= 14  # about the horizon, not a count
