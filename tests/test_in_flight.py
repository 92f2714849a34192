"""A worker's in-flight slots: with `--concurrency N` a worker process has N provider calls
out at once. Nothing in the process (the ledger's connection pool, the HTTP client's pool,
Redis, the rate limiter, fair share) holds it to fewer; the benchmark's scaling with
in-flight slots (bench/throughput.py --slots) rests on this."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import EC_APP, WorkerProcess, invoice_job, unique, wait_for
from tests.test_exactly_once import Stack, module_stack
from worker.ledger.store import find_job
from worker.simulators.common import CONTROL_PREFIX
from worker.simulators.economic import EconomicSimulator
from worker.tenancy.tenants import add_tenant

SLOTS = 32
# Long against the CPU a job needs before its first call, so that even on a busy machine
# every thread is in a call at one moment; below the tests' HTTP timeout (5 s).
LATENCY_MS = 3000


class InFlight:
    """ASGI middleware in front of a simulator: the requests being answered now, and the
    most there were at once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.now = 0
        self.peak = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        self.now += 1  # one event loop: no lock needed
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


class Counted:
    """The simulator as the local stack serves it, its app behind the in-flight counter."""

    def __init__(self, sim: EconomicSimulator, counter: InFlight) -> None:
        self._sim = sim
        self.app = counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)


@pytest.fixture
def slow_economic(tmp_path: Path) -> Iterator[tuple[EconomicSimulator, InFlight, Stack]]:
    """An e-conomic simulator and a Redis of this test's own: no other worker of the test
    session takes its jobs, and its latency slows no other test."""
    sim = EconomicSimulator(app_secret_token=EC_APP[0], app_public_token=EC_APP[1])
    counter = InFlight(sim.app)
    with module_stack(tmp_path / "slots", {}, {"economic": Counted(sim, counter)}) as stack:
        yield sim, counter, stack


def _connect(sim: EconomicSimulator) -> str:
    tenant_id = unique("ec-slots")
    grant = sim.add_agreement("DK", grant_token=f"grant-{tenant_id}")
    add_tenant(tenant_id, "economic", "DK", {"grant_token": grant})
    return tenant_id


def _all_booked(job_ids: list[str]) -> bool:
    jobs = [find_job(job_id) for job_id in job_ids]
    failed = [j for j in jobs if j is not None and j.state == "failed"]
    assert not failed, [(j.error_code, j.error_message) for j in failed]
    return all(j is not None and j.state == "booked" for j in jobs)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_worker_with_32_threads_has_32_provider_calls_in_flight(
    slow_economic: tuple[EconomicSimulator, InFlight, Stack],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    sim, counter, stack = slow_economic
    tenants = [_connect(sim) for _ in range(8)]
    start_worker("slots", SLOTS, **stack.env)
    # Warm-up without latency: references and the customer are cached per tenant.
    warm = [stack.enqueue(invoice_job(t, country="DK")) for t in tenants]
    wait_for(lambda: _all_booked(warm), timeout=90, interval=0.2)

    sim.faults.update({"latency_ms": LATENCY_MS})
    counter.peak = 0
    jobs = [
        stack.enqueue(invoice_job(tenants[i % len(tenants)], country="DK"))
        for i in range(2 * SLOTS)
    ]
    wait_for(lambda: _all_booked(jobs), timeout=240, interval=0.5)

    assert counter.peak == SLOTS
