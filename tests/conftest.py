"""Real components for every test: the session's local stack (worker/devtools/localstack.py)
with a Redis server, SQLite (or PostgreSQL when LEDGERPUSH_TEST_DATABASE_URL is set) and
the simulators over HTTP; Celery worker processes; job payloads on the tests' dates."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.devtools import factories
from worker.devtools.localstack import LocalStack, connect
from worker.devtools.processes import WORKER_READY, ChildProcess, ledgerpush, worker_args

ROOT = Path(__file__).resolve().parent.parent
# Each pytest-xdist worker runs its own stack (Redis, simulators, database); the processes a
# test starts inherit both variables below and so join their own session's stack.
_SESSION_ID = os.environ.get("PYTEST_XDIST_WORKER", "main")
_IN_SESSION = os.environ.get("_LEDGERPUSH_TEST_SESSION") == _SESSION_ID
_HOME = Path(
    os.environ["LEDGERPUSH_HOME"] if _IN_SESSION else tempfile.mkdtemp(prefix="ledgerpush-test-")
)


def postgres_admin_url(given: str) -> str:
    return given.replace("postgresql+psycopg://", "postgresql://")


def _redis_url() -> str | None:
    """The session's database of the Redis at LEDGERPUSH_TEST_REDIS_URL, emptied; None:
    the stack starts the bundled server."""
    given = os.environ.get("LEDGERPUSH_TEST_REDIS_URL")
    if not given:
        return None
    import redis

    url = _database_of_this_session(given)
    redis.Redis.from_url(url).flushdb()
    return url


def _database_of_this_session(redis_url: str) -> str:
    """xdist worker gwN uses database base+N of a given Redis, so sessions never share queues."""
    if not _SESSION_ID.startswith("gw"):
        return redis_url
    base, _, db = redis_url.rpartition("/")
    first = int(db) if db.isdigit() else 0
    return f"{base}/{first + int(_SESSION_ID[2:])}"


#: The session's stack (worker/devtools/localstack.py); None in a process that joined it.
STACK: LocalStack | None = None
SIMULATORS: dict[str, Any] = {}
EA_CLIENT = ("ledgerpush", "sim-secret")
EC_APP = ("sim-app-secret", "sim-app-public")
VN_APP = ("ledgerpush", "sim-secret")
SESSION_SETTINGS = {
    "LEDGERPUSH_ENV": "test",
    "LEDGERPUSH_SECRET_KEY": "Jm6nQ0-gGmS7c2jm1KlR3jPOjuwJ3h9n6XGbGUVJ6uM=",
    "LEDGERPUSH_LOG_JSON": "true",
    "LEDGERPUSH_RETRY_BACKOFF_BASE": "0.2",
    "LEDGERPUSH_RETRY_BACKOFF_MAX": "2",
    "LEDGERPUSH_MAX_RETRIES": "20",
    "LEDGERPUSH_HTTP_TIMEOUT": "5",
    # The simulators never apply a write late unless a test asks them to
    # (late_write_rate; see tests/test_exactly_once.py): look lost answers up at once.
    "LEDGERPUSH_WRITE_SETTLE_SECONDS": "0",
    "LEDGERPUSH_EACCOUNTING_CLIENT_ID": EA_CLIENT[0],
    "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET": EA_CLIENT[1],
    "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN": EC_APP[0],
    "LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN": EC_APP[1],
}


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


def _configure_once() -> None:
    """The session's stack, its settings in this process's environment (child processes,
    spawned workers and pools, inherit them)."""
    global STACK
    if _IN_SESSION:
        return
    from worker.simulators.eaccounting import EAccountingSimulator
    from worker.simulators.economic import EconomicSimulator
    from worker.simulators.vismanet import create_simulator

    os.environ["_LEDGERPUSH_TEST_SESSION"] = _SESSION_ID
    stack = STACK = LocalStack.create(_HOME, SESSION_SETTINGS, wipe=False)
    stack.use_database(throwaway_on=os.environ.get("LEDGERPUSH_TEST_DATABASE_URL"))
    stack.start_redis(_redis_url())
    ea = EAccountingSimulator(client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1])
    ec = EconomicSimulator(app_secret_token=EC_APP[0], app_public_token=EC_APP[1])
    stack.start_simulators({"eaccounting": ea, "economic": ec, "vismanet": create_simulator()})
    sims = stack.sims
    SIMULATORS.update(ea=sims["eaccounting"], ec=sims["economic"], vn=sims["vismanet"],
                      vn_url=stack.servers["vismanet"].url)  # fmt: skip


_configure_once()


def session_stack() -> LocalStack:
    assert STACK is not None, "the session's stack runs in the pytest process"
    return STACK


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if STACK is not None:
        STACK.stop()


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


class WorkerProcess(ChildProcess):
    """A real `ledgerpush worker` process (node `<name>@host`) with the environment
    `env`; its output goes to a log file in the session's home."""

    def __init__(self, name: str, env: dict[str, str], concurrency: int = 8) -> None:
        log_path = _HOME / f"worker-{name}-{uuid.uuid4().hex[:6]}.log"
        command = ledgerpush(*worker_args(name, concurrency))
        super().__init__(name, command, env, log_path, ready=WORKER_READY, cwd=ROOT)
        self.concurrency = concurrency


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


def credit_note_job(
    tenant_id: str, original_key: str, key: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A credit note of the invoice sent as `original_key`, issued the day after the
    tests' invoices (of the whole invoice unless `lines` are given)."""
    fields = {"issue_date": "2026-11-21", **fields}
    return factories.credit_note_job(tenant_id, key or unique("cn"), original_key, **fields)


def payment_job(
    tenant_id: str, invoice_key: str, amount: str, key: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A payment (NOK unless `currency` says otherwise) of the invoice sent as
    `invoice_key`, on the tests' invoice date."""
    fields = {"payment_date": "2026-11-20", **fields}
    return factories.payment_job(tenant_id, key or unique("pay"), invoice_key, amount, **fields)


def unbookable_line() -> dict[str, Any]:
    """A line whose unit price has four decimals: eAccounting takes two for a domestic
    customer, so a job sent raw (past the check at the door) fails before any write."""
    return factories.line("x", "1", "10.1234", "25")


def danish_customer() -> dict[str, Any]:
    return factories.customer("c-7", "Havbryggen ApS", "DK", ("Havnegade 4", "8000", "Aarhus C"))


@pytest.fixture
def ea_sim() -> Any:
    return SIMULATORS["ea"]


@pytest.fixture
def ec_sim() -> Any:
    return SIMULATORS["ec"]


def connect_ea_tenant(country: str = "NO", scopes: list[str] | None = None, **mapping: Any) -> str:
    """A new simulated company and a ledgerpush tenant connected to it."""
    tenant_id = unique(f"ea-{country.lower()}")
    options = {"scopes": scopes} if scopes else {}
    connect(session_stack(), "eaccounting", tenant_id, country, mapping=mapping, **options)
    return tenant_id


def connect_ec_tenant(country: str = "DK", modules: list[str] | None = None, **mapping: Any) -> str:
    tenant_id = unique(f"ec-{country.lower()}")
    options = {"modules": modules} if modules else {}
    connect(session_stack(), "economic", tenant_id, country, mapping=mapping, **options)
    return tenant_id


def connect_vn_tenant(country: str = "NO", **mapping: Any) -> str:
    """A new company in the session's Visma.net simulator and a tenant connected to it;
    payment_method is mapped to the simulator's bank transfer unless given."""
    tenant_id = unique(f"vn-{country.lower()}")
    connect(session_stack(), "vismanet", tenant_id, country, mapping=mapping)
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
