"""Payment sync over 500 tenants against simulators of its own, counting their calls:
a tenant with no open invoice costs none; eAccounting is paced within its 600 requests a
minute, read in its strictest way (one budget for the whole client, across companies);
e-conomic never goes past an agreement's fair-use budget (made small here so that it
binds), and a tenant whose sync would go past it is deferred, never refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import EA_CLIENT, EC_APP, unique
from worker.ledger.db import session
from worker.ledger.models import TrackedInvoice
from worker.ops import payment_sync
from worker.providers.base import Transient
from worker.simulators.eaccounting import local as eaccounting

EA_OPEN = 200  # eAccounting tenants with one open invoice each: one call each
EC_WITHIN = 40  # e-conomic tenants whose two open invoices fit the burst of the budget
EC_OVER = 10  # ... and ones with three: the third call would overspend
IDLE = 500 - EA_OPEN - EC_WITHIN - EC_OVER  # no open invoice: no call
EA_LIMIT = 600  # requests a minute, per client and endpoint (Visma's)
EC_BUDGET = 4  # calls a day per agreement in this test (e-conomic's is 50,000)
WORKER_THREADS = 8
#: A call reserves its slot, then travels: on two busy cores, arrivals bunch a little.
ARRIVAL_JITTER = 1.0


@dataclass
class Books:
    """Simulators of this test alone, so that every call they count is the sync's."""

    ea: Any
    ec: Any

    def ea_tenant(self) -> str:
        from worker.tenancy.tenants import add_tenant

        tenant = unique("ea-no")
        add_tenant(tenant, "eaccounting", "NO", **eaccounting.connect(self.ea, tenant, "NO"))
        return tenant

    def ec_tenant(self, booked_invoices: int) -> str:
        """An e-conomic tenant with booked invoices ledgerpush watches."""
        from worker.tenancy.tenants import add_tenant

        tenant = unique("ec-dk")
        grant = self.ec.add_agreement("DK", grant_token=f"grant-{tenant}")
        add_tenant(tenant, "economic", "DK", {"grant_token": grant})
        numbers = list(range(1, booked_invoices + 1))
        with self.ec.lock:
            for number in numbers:
                booked = {"bookedInvoiceNumber": number, "remainder": Decimal("100")}
                self.ec.agreements[grant].booked[number] = booked
        track(tenant, [str(n) for n in numbers])
        return tenant

    def ec_calls(self, tenant: str) -> int:
        return sum(self.ec.agreements[f"grant-{tenant}"].calls.values())


@pytest.fixture
def books(monkeypatch: pytest.MonkeyPatch) -> Iterator[Books]:
    """ledgerpush and the simulators agree on the strictest reading of each limit."""
    from worker.settings import get_settings
    from worker.simulators.common import SimulatorServer
    from worker.simulators.eaccounting import EAccountingSimulator
    from worker.simulators.economic import EconomicSimulator

    ea = EAccountingSimulator(
        client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1],
        rate_limit_per_minute=EA_LIMIT, rate_limit_scope="client",
    )  # fmt: skip
    ec = EconomicSimulator(
        app_secret_token=EC_APP[0], app_public_token=EC_APP[1], rate_limit_per_day=EC_BUDGET
    )
    servers = [SimulatorServer(ea.app).start(), SimulatorServer(ec.app).start()]
    monkeypatch.setenv("LEDGERPUSH_EACCOUNTING_API_URL", f"{servers[0].url}/v2")
    monkeypatch.setenv("LEDGERPUSH_ECONOMIC_API_URL", servers[1].url)
    monkeypatch.setenv("LEDGERPUSH_EACCOUNTING_RATE_SCOPE", "client")
    monkeypatch.setenv("LEDGERPUSH_EACCOUNTING_RATE_PER_MINUTE", str(EA_LIMIT))
    monkeypatch.setenv("LEDGERPUSH_ECONOMIC_CALLS_PER_DAY", str(EC_BUDGET))
    get_settings.cache_clear()
    try:
        yield Books(ea, ec)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        for server in servers:
            server.stop()


def track(tenant_id: str, remote_ids: list[str]) -> None:
    with session() as db:
        for remote_id in remote_ids:
            db.add(
                TrackedInvoice(
                    tenant_id=tenant_id, job_id=unique("job"), idempotency_key=unique("key"),
                    remote_id=remote_id, currency="DKK", remaining="100.00", paid=False,
                )
            )  # fmt: skip


def sync(tenant_id: str) -> str:
    """One tenant's sync as the worker task runs it: done, or deferred (retried later)."""
    try:
        payment_sync.sync_tenant(tenant_id)
    except Transient:
        return "deferred"
    return "synced"


def test_sync_of_500_tenants_stays_within_the_limits_and_idle_tenants_cost_nothing(
    books: Books,
) -> None:
    ea_open = [books.ea_tenant() for _ in range(EA_OPEN)]
    for tenant in ea_open:
        track(tenant, ["00000000-0000-0000-0000-000000000001"])
    ec_within = [books.ec_tenant(2) for _ in range(EC_WITHIN)]
    ec_over = [books.ec_tenant(3) for _ in range(EC_OVER)]
    idle = [books.ea_tenant() for _ in range(IDLE // 2)]
    idle += [books.ec_tenant(0) for _ in range(IDLE - len(idle))]
    watched = set(payment_sync.tenants_with_open_invoices())
    assert not watched.intersection(idle)
    assert watched.issuperset(ea_open + ec_within + ec_over)

    with ThreadPoolExecutor(WORKER_THREADS) as pool:
        assert set(pool.map(sync, idle)) == {"synced"}  # as "sync now" would
        assert books.ea.log.total == books.ec.log.total == 0
        open_ones = ea_open + ec_within + ec_over
        started = time.monotonic()
        outcomes = dict(zip(open_ones, pool.map(sync, open_ones), strict=True))
    took = time.monotonic() - started

    assert books.ea.log.snapshot()["by_endpoint"] == {"GET /v2/customerinvoices": EA_OPEN}
    assert books.ea.log.by_status == {200: EA_OPEN}  # no 429
    _assert_paced(books.ea, took)
    assert books.ec.log.by_status == {200: 2 * (EC_WITHIN + EC_OVER)}  # no 429
    assert {books.ec_calls(t) for t in ec_within + ec_over} == {2}  # within EC_BUDGET
    assert {outcomes[t] for t in ea_open + ec_within} == {"synced"}
    assert {outcomes[t] for t in ec_over} == {"deferred"}
    deferred = payment_sync.sync_status(ec_over[0])
    assert "rate limit" in (deferred["last_error"] or "") and deferred["open_invoices"] == 3
    assert payment_sync.sync_status(idle[0])["next_sync_at"] is None


def _assert_paced(ea_sim: Any, took: float) -> None:
    """The simulator's own record of the client's calls to the endpoint: never more than
    a burst plus the even pace of 600 a minute, in any stretch of time."""
    [stamps] = [list(hits) for hits in ea_sim.limiter._hits.values()]
    assert len(stamps) == EA_OPEN
    burst = EA_LIMIT // 20
    interval = 60.0 / (EA_LIMIT - burst)
    for first in range(len(stamps)):
        for last in range(first + burst, len(stamps)):
            span = stamps[last] - stamps[first]
            allowed = burst + (span + ARRIVAL_JITTER) / interval + 1
            assert last - first + 1 <= allowed, (first, last, span)
    # Paced, not bunched: the whole sync took about what the pace allows.
    assert took >= (EA_OPEN - burst) * interval * 0.8
