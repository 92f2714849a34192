"""Real components for every test: a Redis server, SQLite (or PostgreSQL when
LEDGERPUSH_TEST_DATABASE_URL is set), the simulators over HTTP, Celery worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.devtools import factories

ROOT = Path(__file__).resolve().parent.parent
# Each pytest-xdist worker runs its own stack (Redis, simulators, database); the processes a
# test starts inherit both variables below and so join their own session's stack.
_SESSION_ID = os.environ.get("PYTEST_XDIST_WORKER", "main")
_IN_SESSION = os.environ.get("_LEDGERPUSH_TEST_SESSION") == _SESSION_ID
_HOME = Path(
    os.environ["LEDGERPUSH_HOME"] if _IN_SESSION else tempfile.mkdtemp(prefix="ledgerpush-test-")
)


def _database_url() -> str:
    given = os.environ.get("LEDGERPUSH_TEST_DATABASE_URL")
    if not given:
        return f"sqlite:///{_HOME / 'ledger.db'}"
    name = create_postgres_database(given)
    os.environ["_LEDGERPUSH_TEST_DB_TO_DROP"] = name
    return f"{postgres_admin_url(given).rpartition('/')[0]}/{name}"


def postgres_admin_url(given: str) -> str:
    return given.replace("postgresql+psycopg://", "postgresql://")


def create_postgres_database(given: str) -> str:
    """A new, empty database on the server at `given`; returns its name."""
    import psycopg

    name = f"ledgerpush_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin_url(given), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_postgres_database(given: str, name: str) -> None:
    import psycopg

    with psycopg.connect(postgres_admin_url(given), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _redis_url() -> str:
    given = os.environ.get("LEDGERPUSH_TEST_REDIS_URL")
    if given:
        import redis

        url = _database_of_this_session(given)
        redis.Redis.from_url(url).flushdb()
        return url
    from worker.transport.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(_HOME / "redis").start()
    _SERVERS.append(server)
    return server.url


def _database_of_this_session(redis_url: str) -> str:
    """xdist worker gwN uses database base+N of a given Redis, so sessions never share queues."""
    if not _SESSION_ID.startswith("gw"):
        return redis_url
    base, _, db = redis_url.rpartition("/")
    first = int(db) if db.isdigit() else 0
    return f"{base}/{first + int(_SESSION_ID[2:])}"


_SERVERS: list[Any] = []
SIMULATORS: dict[str, Any] = {}
EA_CLIENT = ("ledgerpush", "sim-secret")
EC_APP = ("sim-app-secret", "sim-app-public")
VN_APP = ("ledgerpush", "sim-secret")


def point_vismanet_at(monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    """This process's Visma.net settings pointed at the simulator at `url` (its app)."""
    from pydantic import SecretStr

    from worker.providers.vismanet.settings import provider_settings

    settings = provider_settings()
    monkeypatch.setattr(settings, "api_url", url)
    monkeypatch.setattr(settings, "identity_url", url)
    monkeypatch.setattr(settings, "client_id", VN_APP[0])
    monkeypatch.setattr(settings, "client_secret", SecretStr(VN_APP[1]))
    return settings


def _start_simulators() -> dict[str, str]:
    """The three simulators in this process, over real HTTP; workers reach them by URL."""
    from worker.simulators.common import SimulatorServer
    from worker.simulators.eaccounting import EAccountingSimulator
    from worker.simulators.economic import EconomicSimulator
    from worker.simulators.vismanet import create_simulator

    ea = EAccountingSimulator(client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1])
    ec = EconomicSimulator(app_secret_token=EC_APP[0], app_public_token=EC_APP[1])
    vn = create_simulator()
    servers = [SimulatorServer(sim.app).start() for sim in (ea, ec, vn)]
    ea_server, ec_server, vn_server = servers
    SIMULATORS.update(ea=ea, ec=ec, vn=vn, vn_url=vn_server.url)
    _SERVERS.extend(servers)
    return {
        "LEDGERPUSH_EACCOUNTING_API_URL": f"{ea_server.url}/v2",
        "LEDGERPUSH_EACCOUNTING_IDENTITY_URL": ea_server.url,
        "LEDGERPUSH_ECONOMIC_API_URL": ec_server.url,
        "LEDGERPUSH_ECONOMIC_INSTALL_URL": f"{ec_server.url}/_control/install",
        "LEDGERPUSH_VISMANET_API_URL": vn_server.url,
        "LEDGERPUSH_VISMANET_IDENTITY_URL": vn_server.url,
    }


def _configure_once() -> None:
    """Child processes (spawned workers, pools) inherit the session's environment."""
    if _IN_SESSION:
        return
    os.environ["_LEDGERPUSH_TEST_SESSION"] = _SESSION_ID
    os.environ.update(
        {
            "LEDGERPUSH_ENV": "test",
            "LEDGERPUSH_HOME": str(_HOME),
            "LEDGERPUSH_DATABASE_URL": _database_url(),
            "LEDGERPUSH_SECRET_KEY": "Jm6nQ0-gGmS7c2jm1KlR3jPOjuwJ3h9n6XGbGUVJ6uM=",
            "LEDGERPUSH_LOG_JSON": "true",
            "LEDGERPUSH_RETRY_BACKOFF_BASE": "0.2",
            "LEDGERPUSH_RETRY_BACKOFF_MAX": "2",
            "LEDGERPUSH_MAX_RETRIES": "20",
            "LEDGERPUSH_HTTP_TIMEOUT": "5",
            # The simulators never apply a write late unless a test asks them to
            # (late_write_rate; see tests/test_exactly_once.py): look lost answers up at once.
            "LEDGERPUSH_WRITE_SETTLE_SECONDS": "0",
            "LEDGERPUSH_EACCOUNTING_CLIENT_ID": "ledgerpush",
            "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET": "sim-secret",
            "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN": "sim-app-secret",
            "LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN": "sim-app-public",
            "LEDGERPUSH_VISMANET_CLIENT_ID": VN_APP[0],
            "LEDGERPUSH_VISMANET_CLIENT_SECRET": VN_APP[1],
        }
    )
    os.environ["LEDGERPUSH_REDIS_URL"] = _redis_url()
    os.environ.update(_start_simulators())


_configure_once()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    for server in reversed(_SERVERS):
        server.stop()
    name = os.environ.get("_LEDGERPUSH_TEST_DB_TO_DROP")
    if name:
        import psycopg

        from worker.ledger.db import engine

        engine().dispose()
        admin = os.environ["LEDGERPUSH_TEST_DATABASE_URL"].replace(
            "postgresql+psycopg://", "postgresql://"
        )
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: The API facts the simulators are built from: ../shared/reference beside the repository,
#: or the copy in tests/reference when the repository is cloned on its own.
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
REFERENCE = SHARED_REFERENCE if SHARED_REFERENCE.is_dir() else ROOT / "tests" / "reference"


def in_ci() -> bool:
    """CI sets CI=true (most CI services) or LEDGERPUSH_CI=1 (.ci/run)."""
    return (
        os.environ.get("CI", "").lower() in ("true", "1") or os.environ.get("LEDGERPUSH_CI") == "1"
    )


def needs(present: bool, what: str) -> pytest.MarkDecorator:
    """Skip a test whose prerequisite is missing on a developer's machine; in CI the test
    fails instead, since a skipped test there would pass the run without checking anything."""
    if present or not in_ci():
        return pytest.mark.skipif(not present, reason=f"needs {what}")
    return pytest.mark.missing_in_ci(what)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("missing_in_ci"):
        pytest.fail(f"this CI run lacks {mark.args[0]}; the test must not be skipped in CI")


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class WorkerProcess:
    """A real `ledgerpush worker` process; its output goes to a log file."""

    def __init__(self, name: str, env: dict[str, str], concurrency: int = 8) -> None:
        self.name = name
        self.log_path = _HOME / f"worker-{name}-{uuid.uuid4().hex[:6]}.log"
        self.env = env
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        command = [
            sys.executable, "-m", "worker", "worker",
            f"--concurrency={self.concurrency}", f"--hostname={self.name}@%h", "--loglevel=INFO",
        ]  # fmt: skip
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - open for the process's life, closed in stop()
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(lambda: b"ready" in self.log_path.read_bytes() or self._died(), 60)
        if self._died():
            raise RuntimeError(self.log_path.read_text()[-3000:])
        return self

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def base_env() -> dict[str, str]:
    return dict(os.environ)


@pytest.fixture
def start_worker(base_env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str = "w", concurrency: int = 8, **env: str) -> WorkerProcess:
        worker = WorkerProcess(unique(name), {**base_env, **env}, concurrency).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="session")
def session_worker(base_env: dict[str, str]) -> Iterator[WorkerProcess]:
    worker = WorkerProcess("session", base_env, concurrency=16).start()
    yield worker
    worker.stop()


def invoice_job(tenant_id: str, key: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The default invoice on fixed dates (the tests' credit notes and payments follow
    them); `overrides` replaces invoice fields."""
    fields: dict[str, Any] = {
        "issue_date": "2026-11-20",
        "due_date": "2026-12-04",
        "your_reference": "PO-7781",
        **overrides,
    }
    return factories.invoice_job(tenant_id, key or unique("inv"), **fields)


@pytest.fixture
def ea_sim() -> Any:
    return SIMULATORS["ea"]


@pytest.fixture
def ec_sim() -> Any:
    return SIMULATORS["ec"]


EA_SCOPES = [
    "ea:api",
    "offline_access",
    "ea:sales",
    "ea:accounting_readonly",
    "ea:purchase_readonly",
]


def connect_ea_tenant(country: str = "NO", scopes: list[str] | None = None, **mapping: Any) -> str:
    """A new simulated company and a ledgerpush tenant connected to it."""
    import time as _time

    from worker.tenancy.tenants import add_tenant

    sim = SIMULATORS["ea"]
    tenant_id = unique(f"ea-{country.lower()}")
    sim.add_company(tenant_id, country)
    tokens = sim.issue_tokens(tenant_id, scopes or EA_SCOPES)
    credentials = {
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "expires_at": _time.time() + float(tokens["expires_in"]),
        "scope": tokens.get("scope", ""),
    }
    add_tenant(tenant_id, "eaccounting", country, credentials, mapping=mapping or None)
    return tenant_id


def connect_ec_tenant(country: str = "DK", modules: list[str] | None = None, **mapping: Any) -> str:
    from worker.tenancy.tenants import add_tenant

    tenant_id = unique(f"ec-{country.lower()}")
    grant = SIMULATORS["ec"].add_agreement(
        country, modules=modules, grant_token=f"grant-{tenant_id}"
    )
    add_tenant(tenant_id, "economic", country, {"grant_token": grant}, mapping=mapping or None)
    return tenant_id


def connect_vn_tenant(country: str = "NO", **mapping: Any) -> str:
    """A new company in the session's Visma.net simulator and a tenant connected to it;
    payment_method is mapped to the simulator's bank transfer unless given."""
    from worker.tenancy.tenants import add_tenant

    tenant_id = unique(f"vn-{country.lower()}")
    company = f"{tenant_id}-company"
    SIMULATORS["vn"].add_company(company, f"Company of {tenant_id}")
    mapping = {"payment_method": "BANK", **mapping}
    add_tenant(tenant_id, "vismanet", country, {"tenant_id": company}, mapping=mapping)
    return tenant_id


@pytest.fixture
def vn_session_sim() -> Any:
    """The session's Visma.net simulator that worker processes reach (not `vn_sim`)."""
    return SIMULATORS["vn"]


@pytest.fixture(scope="session")
def vn_server() -> Iterator[tuple[Any, str]]:
    """The Visma.net simulator (seeded company, default app) over real HTTP, and its URL."""
    from worker.simulators.common import SimulatorServer
    from worker.simulators.vismanet import create_simulator

    simulator = create_simulator()
    server = SimulatorServer(simulator.app).start()
    yield simulator, server.url
    server.stop()


@pytest.fixture
def vn_sim(vn_server: tuple[Any, str]) -> Iterator[Any]:
    """The session's Visma.net simulator, restored to its seeded state after the test."""
    simulator, _ = vn_server
    yield simulator
    simulator.restore_defaults()
