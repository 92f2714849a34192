"""Payment sync over 500 tenants against the simulators, counting the simulators' calls:
a tenant with no open invoice costs none; eAccounting is paced within its 600 requests a
minute, read in its strictest way (one budget for the whole client, across companies);
e-conomic never goes past an agreement's fair-use budget (made small here so that it
binds), and a tenant whose sync would go past it is deferred, never refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import connect_ea_tenant, connect_ec_tenant, unique
from tests.web_helpers import make_tenant
from worker import payment_sync
from worker.ledger.db import session
from worker.ledger.models import TrackedInvoice
from worker.providers.base import Transient

EA_OPEN = 200  # eAccounting tenants with one open invoice each: one call each
EC_WITHIN = 40  # e-conomic tenants whose two open invoices fit the burst of the budget
EC_OVER = 10  # ... and ones with three: the third call would overspend
IDLE = 500 - EA_OPEN - EC_WITHIN - EC_OVER  # no open invoice: no call
EA_LIMIT = 600  # requests a minute, per client and endpoint (Visma's)
EC_BUDGET = 4  # calls a day per agreement in this test (e-conomic's is 50,000)
WORKER_THREADS = 8
#: A call reserves its slot, then travels: on two busy cores, arrivals bunch a little.
ARRIVAL_JITTER = 0.5


@pytest.fixture
def strict_limits(monkeypatch: pytest.MonkeyPatch, ea_sim: Any, ec_sim: Any) -> Iterator[None]:
    """ledgerpush and the simulators agree on the strictest reading of each limit."""
    from worker.settings import get_settings

    monkeypatch.setenv("LEDGERPUSH_EACCOUNTING_RATE_SCOPE", "client")
    monkeypatch.setenv("LEDGERPUSH_EACCOUNTING_RATE_PER_MINUTE", str(EA_LIMIT))
    monkeypatch.setenv("LEDGERPUSH_ECONOMIC_CALLS_PER_DAY", str(EC_BUDGET))
    get_settings.cache_clear()
    before = (ea_sim.config.rate_limit_scope, ec_sim.rate_limit_per_day)
    ea_sim.config.rate_limit_scope, ec_sim.rate_limit_per_day = "client", EC_BUDGET
    ea_sim.config.rate_limit_per_minute = EA_LIMIT
    try:
        yield
    finally:
        ea_sim.config.rate_limit_scope, ec_sim.rate_limit_per_day = before
        monkeypatch.undo()
        get_settings.cache_clear()


def track(tenant_id: str, remote_ids: list[str]) -> None:
    with session() as db:
        for remote_id in remote_ids:
            db.add(
                TrackedInvoice(
                    tenant_id=tenant_id, job_id=unique("job"), idempotency_key=unique("key"),
                    remote_id=remote_id, currency="DKK", remaining="100.00", paid=False,
                )
            )  # fmt: skip


def ec_tenant_with_booked(ec_sim: Any, invoices: int) -> str:
    """An e-conomic tenant with `invoices` booked invoices ledgerpush watches."""
    tenant = connect_ec_tenant("DK")
    agreement = ec_sim.agreements[f"grant-{tenant}"]
    numbers = list(range(1, invoices + 1))
    with ec_sim.lock:
        for number in numbers:
            agreement.booked[number] = {"bookedInvoiceNumber": number, "remainder": Decimal("100")}
    track(tenant, [str(n) for n in numbers])
    return tenant


def sync(tenant_id: str) -> str:
    """One tenant's sync as the worker task runs it: done, or deferred (retried later)."""
    try:
        payment_sync.sync_tenant(tenant_id)
    except Transient:
        return "deferred"
    return "synced"


def test_sync_of_500_tenants_stays_within_the_limits_and_idle_tenants_cost_nothing(
    strict_limits: None, ea_sim: Any, ec_sim: Any
) -> None:
    ea_open = [connect_ea_tenant("NO") for _ in range(EA_OPEN)]
    for tenant in ea_open:
        track(tenant, ["00000000-0000-0000-0000-000000000001"])
    ec_within = [ec_tenant_with_booked(ec_sim, 2) for _ in range(EC_WITHIN)]
    ec_over = [ec_tenant_with_booked(ec_sim, 3) for _ in range(EC_OVER)]
    idle = [connect_ea_tenant("NO") for _ in range(IDLE // 2)]
    idle += [make_tenant("economic", "DK") for _ in range(IDLE - len(idle))]
    watched = set(payment_sync.tenants_with_open_invoices())
    assert not watched.intersection(idle)
    assert watched.issuperset(ea_open + ec_within + ec_over)

    ea_calls, ec_calls = ea_sim.log.snapshot(), ec_sim.log.snapshot()
    with ThreadPoolExecutor(WORKER_THREADS) as pool:
        assert set(pool.map(sync, idle)) == {"synced"}
        assert ea_sim.log.total == ea_calls["total"] and ec_sim.log.total == ec_calls["total"]
        open_ones = ea_open + ec_within + ec_over
        started = time.monotonic()
        outcomes = dict(zip(open_ones, pool.map(sync, open_ones), strict=True))
    took = time.monotonic() - started

    assert ea_sim.log.total - ea_calls["total"] == EA_OPEN  # one page each
    assert ea_sim.log.by_status.get(429, 0) == ea_calls["by_status"].get("429", 0)
    _assert_paced(ea_sim, took)
    assert ec_sim.log.by_status.get(429, 0) == ec_calls["by_status"].get("429", 0)
    for tenant in ec_within + ec_over:
        calls = sum(ec_sim.agreements[f"grant-{tenant}"].calls.values())
        assert calls <= EC_BUDGET and calls == 2, (tenant, calls)
    assert {outcomes[t] for t in ea_open + ec_within} == {"synced"}
    assert {outcomes[t] for t in ec_over} == {"deferred"}
    deferred = payment_sync.sync_status(ec_over[0])
    assert "rate limit" in (deferred["last_error"] or "") and deferred["open_invoices"] == 3
    assert payment_sync.sync_status(idle[0])["next_sync_at"] is None


def _assert_paced(ea_sim: Any, took: float) -> None:
    """The simulator's own record of the client's calls to the endpoint: never more than
    a burst plus the even pace of 600 a minute, in any stretch of time."""
    [stamps] = [
        list(hits)
        for key, hits in ea_sim.limiter._hits.items()
        if " * " in key and key.endswith("/customerinvoices")
    ]
    assert len(stamps) >= EA_OPEN
    burst = EA_LIMIT // 20
    interval = 60.0 / (EA_LIMIT - burst)
    recent = stamps[-EA_OPEN:]
    for first in range(len(recent)):
        for last in range(first + burst, len(recent)):
            span = recent[last] - recent[first]
            allowed = burst + (span + ARRIVAL_JITTER) / interval + 1
            assert last - first + 1 <= allowed, (first, last, span)
    # Paced, not bunched: the whole sync took about what the pace allows.
    assert took >= (EA_OPEN - burst) * interval * 0.8
