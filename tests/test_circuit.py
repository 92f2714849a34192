"""The provider circuit breaker: its state machine against a real Redis, and a provider
outage far longer than the retries would survive, with real workers and simulators.

Everything runs on this module's own Redis and simulators: an open circuit holds every
job of its provider, so it must not reach other tests' workers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import EA_CLIENT, EC_APP, WorkerProcess, wait_for
from tests.connection_support import WEBHOOK_SECRET, Receiver, stays, webhook_data
from tests.test_exactly_once import EA, EC, Stack, invoice, module_stack, remote, tenant_for
from worker.ledger.store import attempts_of, find_job
from worker.ops.circuit import CLOSED, HALF_OPEN, OPEN, Breaker, answered, is_outage
from worker.providers.base import Call, NoAnswer, Rejected, Transient
from worker.settings import Settings
from worker.simulators.common import Faults, SimulatorServer
from worker.simulators.eaccounting import EAccountingSimulator
from worker.simulators.economic import EconomicSimulator
from worker.transport.embedded_redis import EmbeddedRedis

FAST = {
    "circuit_window_seconds": 30.0,
    "circuit_min_tenants": 3,
    "circuit_min_failures": 5,
    "circuit_failure_ratio": 0.8,
    "circuit_open_seconds": 0.4,
    "circuit_release_batch": 2,
}


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("circuit-redis")).start()
    yield server
    server.stop()


@pytest.fixture
def breaker(own_redis: EmbeddedRedis) -> Iterator[Breaker]:
    client = redis.Redis.from_url(own_redis.url)
    client.flushdb()
    yield Breaker("eaccounting", client, Settings(**FAST))  # type: ignore[arg-type]
    client.close()


def trip(breaker: Breaker, tenants: int = 3, failures: int = 5) -> list[str]:
    return [
        breaker.failure(f"t{n % tenants}", f"job-{n}", "provider_unavailable: 503")
        for n in range(failures)
    ]


# -- the state machine ---------------------------------------------------------------------


def test_one_tenants_failures_never_open_the_circuit(breaker: Breaker) -> None:
    assert {breaker.failure("t1", f"job-{n}", "timeout") for n in range(30)} == {CLOSED}
    assert breaker.status().state == CLOSED
    assert breaker.admit("job-x", time.time(), 5).verdict == "go"


def test_failures_mixed_with_answers_keep_it_closed(breaker: Breaker) -> None:
    """40 % errors across many tenants (a flaky provider, not a down one): retries as usual."""
    for n in range(50):
        breaker.failure(f"t{n % 5}", f"bad-{n}", "provider_unavailable: 503")
        breaker.success(f"ok-{n}-a")
        breaker.success(f"ok-{n}-b")
    assert breaker.status().state == CLOSED


def test_runs_failing_after_answered_requests_keep_it_closed(breaker: Breaker) -> None:
    """A few requests in a hundred failing (each failed run had answers before): flaky,
    not down."""
    for n in range(40):
        assert breaker.failure(f"t{n % 5}", f"bad-{n}", "timeout", answered=4) == CLOSED
    assert breaker.status().state == CLOSED


def test_opens_once_across_tenants_and_holds_jobs(breaker: Breaker) -> None:
    verdicts = trip(breaker)
    assert verdicts == [CLOSED] * 4 + ["opened"]
    assert breaker.failure("t9", "late", "timeout") == OPEN  # in flight when it opened
    status = breaker.status()
    assert status.state == OPEN and status.reason == "provider_unavailable: 503"
    held = breaker.admit("job-held", time.time(), 5)
    assert held.verdict == "hold" and 0 < held.wait <= FAST["circuit_open_seconds"]
    assert breaker.status().held == 1
    # A success of a job that is not the probe (it was in flight) does not close it.
    assert breaker.success("job-0") is None
    assert breaker.status().state == OPEN


def test_half_open_lets_exactly_one_probe_through(breaker: Breaker) -> None:
    trip(breaker)
    time.sleep(FAST["circuit_open_seconds"] + 0.1)
    verdicts: list[str] = []
    lock = threading.Lock()

    def ask(n: int) -> None:
        verdict = breaker.admit(f"job-{n}", time.time() - n, 5).verdict
        with lock:
            verdicts.append(verdict)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(verdicts) == ["hold"] * 19 + ["probe"]
    assert breaker.status().state == HALF_OPEN


def test_failed_probe_reopens_and_an_answered_probe_closes(breaker: Breaker) -> None:
    trip(breaker)
    time.sleep(FAST["circuit_open_seconds"] + 0.1)
    assert breaker.admit("probe-1", time.time(), 5).verdict == "probe"
    assert breaker.failure("t1", "probe-1", "connection_error: refused") == "reopened"
    assert breaker.status().state == OPEN
    assert breaker.admit("probe-2", time.time(), 5).verdict == "hold"  # a new period
    time.sleep(FAST["circuit_open_seconds"] + 0.1)
    assert breaker.admit("probe-2", time.time(), 5).verdict == "probe"
    down_for = breaker.success("probe-2")
    assert down_for is not None and down_for > 0
    assert breaker.status().state == CLOSED
    assert breaker.success("probe-3") is None  # closed once


def test_a_probe_without_an_answer_hands_its_turn_on(breaker: Breaker) -> None:
    trip(breaker)
    time.sleep(FAST["circuit_open_seconds"] + 0.1)
    assert breaker.admit("probe-1", time.time(), 60).verdict == "probe"
    assert breaker.admit("other", time.time(), 60).verdict == "hold"
    breaker.give_up_probe("other")  # not the probe: changes nothing
    assert breaker.admit("other", time.time(), 60).verdict == "hold"
    breaker.give_up_probe("probe-1")
    assert breaker.admit("other", time.time(), 60).verdict == "probe"


def test_a_probe_that_died_is_replaced_when_its_turn_expires(breaker: Breaker) -> None:
    trip(breaker)
    time.sleep(FAST["circuit_open_seconds"] + 0.1)
    assert breaker.admit("probe-1", time.time(), 0.3).verdict == "probe"
    assert breaker.admit("other", time.time(), 0.3).verdict == "hold"
    time.sleep(0.4)
    assert breaker.admit("other", time.time(), 0.3).verdict == "probe"


def test_held_jobs_are_released_oldest_first(breaker: Breaker) -> None:
    trip(breaker)
    now = time.time()
    ages = {f"job-{n}": now - 100 + n for n in range(6)}  # job-0 is the oldest
    for job, age in ages.items():
        assert breaker.admit(job, age, 5).verdict == "hold"
    time.sleep(FAST["circuit_open_seconds"] + 0.1)
    assert breaker.admit("job-5", ages["job-5"], 5).verdict == "probe"
    assert breaker.success("job-5") is not None
    # Closed; the batch is 2: the youngest come back first and wait their turn.
    assert breaker.admit("job-4", ages["job-4"], 5).verdict == "release"
    assert breaker.admit("new", now, 5).verdict == "release"  # newcomers queue behind
    assert breaker.admit("job-1", ages["job-1"], 5).verdict == "go"
    assert breaker.admit("job-0", ages["job-0"], 5).verdict == "go"
    assert breaker.admit("job-4", ages["job-4"], 5).verdict == "release"
    for job in ("job-2", "job-3", "job-4"):
        assert breaker.admit(job, ages[job], 5).verdict == "go"
    assert breaker.admit("new", now, 5).verdict == "go"
    assert breaker.status().held == 0
    assert breaker.admit("later", time.time(), 5).verdict == "go"


def test_only_failures_of_the_provider_itself_count() -> None:
    assert is_outage(Transient("eAccounting answered 503", "provider_unavailable"))
    assert is_outage(NoAnswer("GET /customers timed out", "timeout"))
    assert is_outage(NoAnswer("connection failed", "connection_error"))
    assert is_outage(Transient("token endpoint answered 503", "token_endpoint_error"))
    assert is_outage(Transient("token endpoint down", "token_endpoint_unreachable"))
    assert not is_outage(Transient("slow down", "rate_limited"))
    assert not is_outage(Transient("settling", "write_settling"))
    assert not is_outage(Rejected("bad VAT code", "validation"))
    assert answered([Call("GET", "/x", 503, 1.0), Call("POST", "/y", None, 5.0)]) == 0
    assert answered([Call("GET", "/x", 200, 1.0), Call("GET", "/z", 404, 1.0)]) == 2


def test_the_simulator_outage_switch_answers_503_everywhere() -> None:
    sim = EAccountingSimulator(client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1])
    server = SimulatorServer(sim.app).start()
    try:
        sim.faults.update({"outage": "true"})
        token = httpx.post(f"{server.url}/connect/token", data={"grant_type": "refresh_token"})
        api = httpx.get(f"{server.url}/v2/customers")
        control = httpx.get(f"{server.url}/_control/faults")
        assert (token.status_code, api.status_code) == (503, 503)
        assert control.status_code == 200 and control.json()["outage"] is True
        httpx.put(f"{server.url}/_control/faults", json={"outage": False})
        assert httpx.get(f"{server.url}/v2/customers").status_code != 503
    finally:
        server.stop()


# -- a real outage, real workers -----------------------------------------------------------

#: Eight retries with this backoff are spent in about half a minute (1+2+4+5·5 s, jittered).
OUTAGE_ENV = {
    "LEDGERPUSH_MAX_RETRIES": "8",
    "LEDGERPUSH_RETRY_BACKOFF_BASE": "1",
    "LEDGERPUSH_RETRY_BACKOFF_MAX": "5",
    "LEDGERPUSH_CIRCUIT_OPEN_SECONDS": "3",
    "LEDGERPUSH_HTTP_TIMEOUT": "5",
    "LEDGERPUSH_WEBHOOK_SECRET": WEBHOOK_SECRET,
}
SERVE_503_FOR = 50.0
REFUSE_FOR = 40.0
OPENED, CLOSED_HOOK = "provider.circuit_opened", "provider.circuit_closed"
OUTAGE = "provider_outage"


class OutageStack(Stack):
    """`Stack` whose eAccounting server can go away (connections refused) and come back."""

    receiver: Receiver

    def refuse_connections(self) -> None:
        self.local.servers["eaccounting"].stop()

    def accept_connections(self) -> None:
        servers = self.local.servers
        servers["eaccounting"] = servers["eaccounting"].restarted()

    def circuit_lines(self) -> list[str]:
        """/metrics lines of the circuit, as a web process on this stack's Redis shows them."""
        code = (
            "import json; from worker.web.metrics import render; "
            "print(json.dumps([l for l in render().decode().splitlines() if 'circuit' in l]))"
        )
        lines: list[str] = json.loads(self.python(code))
        return lines

    def overview(self) -> str:
        code = (
            "import json; from worker.web.pages import _overview_data; "
            "from worker.web.templating import templates; "
            "print(json.dumps(templates.env.get_template('_overview_live.html')"
            ".render(**_overview_data())))"
        )
        html: str = json.loads(self.python(code))
        return html


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutageStack]:
    receiver = Receiver().start()
    ea = EAccountingSimulator(client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1])
    ec = EconomicSimulator(app_secret_token=EC_APP[0], app_public_token=EC_APP[1])
    settings = {**OUTAGE_ENV, "LEDGERPUSH_WEBHOOK_URL": receiver.hook_url}
    simulators = {"eaccounting": ea, "economic": ec}
    with module_stack(tmp_path_factory.mktemp("circuit"), settings, simulators) as built:
        stack = OutageStack(built.local, built.publisher)
        stack.receiver = receiver
        yield stack
        ea.faults.update(Faults().as_dict())
    receiver.stop()


def settled_all(ids: list[str], timeout: float) -> list[Any]:
    def done() -> list[Any] | None:
        jobs = [find_job(job_id) for job_id in ids]
        if all(j is not None and j.state in ("booked", "failed") for j in jobs):
            return jobs
        return None

    jobs: list[Any] = wait_for(done, timeout, interval=1.0)
    return jobs


def hooks(stack: OutageStack, event: str) -> list[dict[str, Any]]:
    return [webhook_data(item) for item in stack.receiver.hooks(event)]


def test_a_provider_outage_is_waited_out_and_every_job_booked_once(
    outage: OutageStack, start_worker: Callable[..., WorkerProcess]
) -> None:
    ea_tenants = [tenant_for(outage, EA) for _ in range(4)]
    ec_tenant = tenant_for(outage, EC)
    for name in ("cb-a", "cb-b"):
        start_worker(name, 4, **outage.env)
    warm = [outage.enqueue(invoice(EA, t, f"{t}-warm")) for t in ea_tenants]
    assert {j.state for j in settled_all(warm, 120)} == {"booked"}

    outage.ea.faults.update({"outage": True})  # 503 everywhere, the token endpoint too
    started = time.monotonic()
    keys = {t: [f"{t}-{n}" for n in range(8)] for t in ea_tenants}
    ids = [outage.enqueue(invoice(EA, t, key)) for t in ea_tenants for key in keys[t]]
    wait_for(lambda: hooks(outage, OPENED), 90, interval=0.5)
    assert 'ledgerpush_provider_circuit_open{provider="eaccounting"} 1.0' in outage.circuit_lines()
    assert "eaccounting is unreachable" in outage.overview()

    # Another provider is not held: e-conomic books while eAccounting is down.
    ec_ids = [outage.enqueue(invoice(EC, ec_tenant, f"{ec_tenant}-{n}")) for n in range(3)]
    assert {j.state for j in settled_all(ec_ids, 120)} == {"booked"}

    seen = watch_without_dead_letters(ids, until=started + SERVE_503_FOR)
    outage.refuse_connections()
    seen |= watch_without_dead_letters(ids, until=time.monotonic() + REFUSE_FOR)
    assert ("retry_scheduled", OUTAGE) in seen, seen
    outage.accept_connections()
    outage.ea.faults.update({"outage": False})

    jobs = settled_all(ids, 240)
    assert [j.state for j in jobs] == ["booked"] * len(ids), {(j.state, j.error_code) for j in jobs}
    # Probes and requests in flight as it opened failed, and were not counted as retries.
    held = [a for i in ids for a in attempts_of(i) if (a.error or {}).get("code") == OUTAGE]
    assert held and all(a.outcome == "retry_scheduled" for a in held)
    for tenant in ea_tenants:
        booked = remote(outage, EA, tenant)["booked"]
        assert sorted(booked) == sorted([f"{tenant}-warm", *keys[tenant]])
        assert all(len(documents) == 1 for documents in booked.values()), booked
    wait_for(lambda: hooks(outage, CLOSED_HOOK), 30, interval=0.5)
    assert stays(lambda: len(hooks(outage, OPENED)) == len(hooks(outage, CLOSED_HOOK)) == 1, 3)
    [opened], [closed] = hooks(outage, OPENED), hooks(outage, CLOSED_HOOK)
    assert opened["data"]["provider"] == closed["data"]["provider"] == "eaccounting"
    assert closed["data"]["down_seconds"] >= REFUSE_FOR
    assert 'ledgerpush_provider_circuit_open{provider="eaccounting"} 0.0' in outage.circuit_lines()


def watch_without_dead_letters(ids: list[str], until: float) -> set[tuple[str, str | None]]:
    """Poll the jobs until `until`; none may fail meanwhile. Returns the (state, code)
    pairs seen."""
    seen: set[tuple[str, str | None]] = set()
    while time.monotonic() < until:
        for job_id in ids:
            job = find_job(job_id)
            if job is None:
                continue
            assert job.state != "failed", (job.id, job.error_code, job.error_message)
            seen.add((job.state, job.error_code))
        time.sleep(2.0)
    return seen
