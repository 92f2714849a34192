"""Request rate limits shared by every worker through Redis (GCRA in one Lua script).

Each call reserves the next free slot of its key and sleeps until it; a slot further
away than `max_wait` is not reserved and becomes a Transient error with that wait, so
a daily budget that is used up does not block a worker thread for hours.

Within a job's run (`prepaid`), a caller may also give a `hold`, the longest it will
sleep: a slot further away than that is still reserved, and `SlotHeld` hands it to the
caller, who comes back for it later (the pipeline re-queues the job until then,
`remember`ing the slot). The next run of that job, inside `prepaid(slot)`, takes it for
its first call on the same key instead of reserving again: no Redis round trip, and no
slot is wasted. A prepaid slot missed by more than `PREPAID_LATENESS` is dropped and a
new one reserved, so that late runs cannot bunch their calls above the rate. Outside a
job's run (payment sync, operator commands) nobody would come back for a slot, so calls
wait up to `max_wait` as before.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from redis import Redis

from worker.transport.redis_client import get_redis

#: The longest a request waits for its slot before it becomes a retry instead.
MAX_WAIT = 30.0
#: A prepaid slot used later than this is given up and a new one reserved.
PREPAID_LATENESS = 5.0

# KEYS[1]: the limit's key. ARGV: interval ms, burst ms, max wait ms, ttl ms.
# Returns the wait in ms (reserved), or -wait when the wait is above max wait (not reserved).
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - burst - now
if wait < 0 then wait = 0 end
if wait > max_wait then return -wait end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(math.max(tonumber(ARGV[4]), tat + interval - now)))
return wait
"""


@dataclass(frozen=True)
class Rate:
    """`limit` requests per `period` seconds; `burst` of them may come back to back."""

    limit: int
    period: float
    burst: int = 1

    @property
    def interval_ms(self) -> float:
        # Spread over (limit - burst) so that a full burst plus steady traffic stays under
        # `limit` in any window of `period`.
        return self.period * 1000 / max(self.limit - self.burst, 1)

    @property
    def burst_ms(self) -> float:
        return self.interval_ms * max(self.burst - 1, 0)


class RateLimited(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limit: next slot in {wait:.1f}s")
        self.wait = wait


@dataclass(frozen=True)
class Slot:
    """A reserved slot of a limit's key, at `at` (Unix time)."""

    key: str
    at: float


class SlotHeld(Exception):
    """The reserved slot is further away than the caller will sleep: it is the caller's."""

    def __init__(self, slot: Slot) -> None:
        super().__init__(f"rate limit: slot reserved for {slot.at - time.time():.1f}s from now")
        self.slot = slot


@dataclass
class _Run:
    """A job's run: slots may be handed to it, and it may have one paid for already."""

    prepaid: Slot | None


_run: ContextVar[_Run | None] = ContextVar("ledgerpush_rate_limit_run", default=None)


@contextlib.contextmanager
def prepaid(slot: Slot | None) -> Iterator[None]:
    """A job's run: slots beyond a hold may be handed back to it (SlotHeld), and its
    first call on `slot.key` uses `slot` instead of reserving."""
    token = _run.set(_Run(slot))
    try:
        yield
    finally:
        _run.reset(token)


def slots_handed_back() -> bool:
    """Whether this call runs within a job's run, which can come back for its slot."""
    return _run.get() is not None


def _take_prepaid(key: str) -> float | None:
    """Seconds until this run's prepaid slot of `key` (used up now), or None when it
    has none, or missed it by more than PREPAID_LATENESS."""
    run = _run.get()
    slot = run.prepaid if run is not None else None
    if run is None or slot is None or slot.key != key:
        return None
    run.prepaid = None
    wait = slot.at - time.time()
    return max(wait, 0.0) if wait >= -PREPAID_LATENESS else None


def _held_key(job_id: str) -> str:
    return f"lp:rl-held:{job_id}"


def remember(job_id: str, slot: Slot, redis: Redis | None = None) -> None:
    """Keep a job's reserved slot for its next run (only as long as it can be used)."""
    ttl = slot.at - time.time() + PREPAID_LATENESS
    value = json.dumps({"key": slot.key, "at": slot.at})
    (redis or get_redis()).set(_held_key(job_id), value, px=max(int(ttl * 1000), 1))


def remembered(job_id: str, redis: Redis | None = None) -> Slot | None:
    """The slot a job's earlier run reserved and handed on, taken (once)."""
    raw = (redis or get_redis()).getdel(_held_key(job_id))
    if raw is None:
        return None
    data = json.loads(raw)  # type: ignore[arg-type, unused-ignore]
    return Slot(str(data["key"]), float(data["at"]))


class RateLimiter:
    def __init__(self, redis: Redis | None = None) -> None:
        self.redis = redis or get_redis()
        self._script = self.redis.register_script(_GCRA)

    def reserve(self, key: str, rate: Rate, max_wait: float = MAX_WAIT) -> float:
        """Reserve a slot; returns seconds to wait, or raises RateLimited if too far."""
        wait_ms = int(
            self._script(
                keys=[f"lp:rl:{key}"],
                args=[rate.interval_ms, rate.burst_ms, max_wait * 1000, int(rate.period * 1000)],
            )
        )
        if wait_ms < 0:
            raise RateLimited(-wait_ms / 1000)
        return wait_ms / 1000

    def acquire(
        self, key: str, rate: Rate, max_wait: float = MAX_WAIT, hold: float | None = None
    ) -> float:
        """Block until this call may be sent; returns how long it waited. With `hold`, a
        slot further away than that is reserved and raised as SlotHeld instead."""
        wait = _take_prepaid(key)
        if wait is None:
            wait = self.reserve(key, rate, max_wait)
        if hold is not None and wait > hold:
            raise SlotHeld(Slot(key, time.time() + wait))
        if wait > 0:
            time.sleep(wait)
        return wait
