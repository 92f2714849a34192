"""Request rate limits shared by every worker through Redis (GCRA in one Lua script).

Each call reserves the next free slot of its key and sleeps until it; a slot further
away than `max_wait` is not reserved and becomes a Transient error with that wait, so
a daily budget that is used up does not block a worker thread for hours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

from worker.transport.redis_client import get_redis

#: The longest a request waits for its slot before it becomes a retry instead.
MAX_WAIT = 30.0

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

    def acquire(self, key: str, rate: Rate, max_wait: float = MAX_WAIT) -> float:
        """Block until this call may be sent; returns how long it waited."""
        wait = self.reserve(key, rate, max_wait)
        if wait > 0:
            time.sleep(wait)
        return wait
