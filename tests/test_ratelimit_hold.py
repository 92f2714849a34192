"""A rate-limit slot further away than LEDGERPUSH_RATE_LIMIT_HOLD_SECONDS is kept by its
job, which is handed back until then without using a retry (real Redis, real worker)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EA_CLIENT, WorkerProcess, invoice_job, unique, wait_for
from tests.test_exactly_once import module_stack
from worker.devtools.localstack import connect
from worker.ledger.store import attempts_of, find_job
from worker.providers.base import SLOT_RESERVED_CODE
from worker.simulators.eaccounting import EAccountingSimulator
from worker.transport import ratelimit
from worker.transport.ratelimit import Rate, RateLimiter, Slot, SlotHeld, prepaid
from worker.transport.redis_client import get_redis

ONE_A_SECOND = Rate(60, 60.0, burst=1)


def _tat(key: str) -> Any:
    """The limiter's state of `key`: changes exactly when a slot is reserved."""
    return get_redis().get(f"lp:rl:{key}")


def test_a_slot_beyond_the_hold_is_reserved_and_handed_to_the_caller() -> None:
    key, limiter = unique("rl"), RateLimiter()
    assert limiter.acquire(key, ONE_A_SECOND, hold=0.5) == 0
    before = _tat(key)
    with pytest.raises(SlotHeld) as held:
        limiter.acquire(key, ONE_A_SECOND, hold=0.5)
    assert held.value.slot.key == key
    assert 0.5 < held.value.slot.at - time.time() <= 1.1
    assert _tat(key) != before  # reserved: the next caller queues behind it
    assert limiter.reserve(key, ONE_A_SECOND) > 1.0


def test_a_prepaid_slot_is_used_once_without_reserving() -> None:
    key, other, limiter = unique("rl"), unique("rl"), RateLimiter()
    limiter.reserve(key, ONE_A_SECOND)
    before = _tat(key)
    with prepaid(Slot(key, time.time() + 0.2)):
        assert limiter.acquire(other, ONE_A_SECOND) == 0  # another key: not its slot
        started = time.monotonic()
        waited = limiter.acquire(key, ONE_A_SECOND, hold=0.5)
        assert 0 < waited <= 0.2 and time.monotonic() - started >= waited
        assert _tat(key) == before  # the prepaid slot, not a new reservation
        with pytest.raises(SlotHeld):  # used up: the next call reserves (one interval on)
            limiter.acquire(key, ONE_A_SECOND, hold=0.5)
    assert _tat(key) != before


def test_a_prepaid_slot_missed_by_more_than_the_lateness_is_reserved_anew() -> None:
    key, limiter = unique("rl"), RateLimiter()
    limiter.reserve(key, ONE_A_SECOND)
    before = _tat(key)
    late = time.time() - ratelimit.PREPAID_LATENESS - 1
    with prepaid(Slot(key, late)), pytest.raises(SlotHeld):
        limiter.acquire(key, ONE_A_SECOND, hold=0.5)
    assert _tat(key) != before
    # Slightly late is still used, at once.
    with prepaid(Slot(key, time.time() - 1)):
        assert limiter.acquire(key, ONE_A_SECOND, hold=0.5) == 0


def test_a_remembered_slot_is_taken_once() -> None:
    job_id = unique("job")
    slot = Slot(unique("rl"), time.time() + 3)
    ratelimit.remember(job_id, slot)
    assert ratelimit.remembered(job_id) == slot
    assert ratelimit.remembered(job_id) is None


def _booked_references(sim: Any, tenant: str) -> Counter[str]:
    company = sim.state_dump()[tenant]
    return Counter(str(i["YourReference"]) for i in company["invoices"])


def test_jobs_wait_for_their_reserved_slots_without_using_retries(
    start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """Twenty calls a minute per endpoint (one each 3.2 s) and a hold of 0.5 s: all but
    the first job find their slots too far away, keep them and come back."""
    # A Redis and a simulator of this test's own: no other worker of the session (at the
    # default rate) takes these jobs.
    ea_sim = EAccountingSimulator(client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1])
    with module_stack(tmp_path / "hold", {}, {"eaccounting": ea_sim}) as stack:
        start_worker(
            "hold",
            8,
            **stack.env,
            LEDGERPUSH_EACCOUNTING_RATE_PER_MINUTE="20",
            LEDGERPUSH_RATE_LIMIT_HOLD_SECONDS="0.5",
        )
        tenant = unique("ea-hold")
        connect(stack.local, "eaccounting", tenant, "NO")
        throttled_before = ea_sim.log.snapshot()["by_status"].get("429", 0)
        keys = [unique("h") for _ in range(4)]
        jobs = [invoice_job(tenant, key, your_reference=key) for key in keys]
        ids = [stack.enqueue(job) for job in jobs]
        _wait_and_check(ids, jobs, tenant, ea_sim, throttled_before)


def _wait_and_check(
    ids: list[str], jobs: list[dict[str, Any]], tenant: str, ea_sim: Any, throttled_before: int
) -> None:
    def settled() -> bool:
        return all((j := find_job(i)) is not None and j.state in ("booked", "failed") for i in ids)

    assert wait_for(settled, 180, interval=0.5)
    rows = [find_job(i) for i in ids]
    assert [r.state for r in rows if r] == ["booked"] * 4, [
        (r.state, r.error_code, r.error_message) for r in rows if r
    ]
    codes = [(a.error or {}).get("code") for i in ids for a in attempts_of(i)]
    assert SLOT_RESERVED_CODE in codes
    assert set(codes) <= {None, SLOT_RESERVED_CODE}, codes
    # Not counted as failures: no retry horizon was started.
    assert all(r is not None and r.retrying_since is None for r in rows)
    assert _booked_references(ea_sim, tenant) == Counter(j["idempotency_key"] for j in jobs)
    assert ea_sim.log.snapshot()["by_status"].get("429", 0) == throttled_before
