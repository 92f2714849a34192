"""Sign-in throttling that slows guessing down without letting anyone lock an operator out.

Failures are counted per client address and per (address, username), in Redis so every
web process shares them. Past a few free failures each further one holds that address
(or that address and username) for a delay that doubles, up to `MAX_DELAY`; while held,
sign-in from there is refused before the password is checked. Nothing is counted per
username alone, so wrong passwords sent from elsewhere never stop the right one.
"""

from __future__ import annotations

import hashlib

from worker.transport.redis_client import get_redis

FREE_PER_ADDRESS = 20
FREE_PER_PAIR = 5
BASE_DELAY_MS = 1000
MAX_DELAY_MS = 15 * 60 * 1000
#: Failures are forgotten this long after the last one.
WINDOW_SECONDS = 3600


def _scopes(address: str, username: str) -> list[tuple[str, int]]:
    pair = hashlib.sha256(f"{address}\n{username}".encode()).hexdigest()
    by_address = hashlib.sha256(address.encode()).hexdigest()
    return [(f"addr:{by_address}", FREE_PER_ADDRESS), (f"pair:{pair}", FREE_PER_PAIR)]


def wait_seconds(address: str, username: str) -> float:
    """How long sign-in from this address for this username is still held (0: not)."""
    redis = get_redis()
    waits = [int(redis.pttl(f"lp:web:signin:hold:{s}")) for s, _ in _scopes(address, username)]  # type: ignore[arg-type, unused-ignore]
    return max([w for w in waits if w > 0], default=0) / 1000


def delay_ms(failures: int, free: int) -> int:
    """0 for the free failures, then 1 s, 2 s, 4 s … up to MAX_DELAY_MS."""
    over = failures - free
    if over <= 0:
        return 0
    return int(min(BASE_DELAY_MS * 2 ** min(over - 1, 30), MAX_DELAY_MS))


def record_failure(address: str, username: str) -> None:
    redis = get_redis()
    for scope, free in _scopes(address, username):
        counter = f"lp:web:signin:fails:{scope}"
        pipe = redis.pipeline()
        pipe.incr(counter)
        pipe.expire(counter, WINDOW_SECONDS)
        failures = int(pipe.execute()[0])
        delay = delay_ms(failures, free)
        if delay:
            redis.set(f"lp:web:signin:hold:{scope}", "1", px=delay)


def record_success(address: str, username: str) -> None:
    """The pair starts afresh; the address keeps its count (one success must not wipe
    out the failures an address made guessing other usernames)."""
    scope = _scopes(address, username)[1][0]
    get_redis().delete(f"lp:web:signin:fails:{scope}", f"lp:web:signin:hold:{scope}")


def forget(address: str, username: str) -> None:
    """Drop the failures and holds of this address and this (address, username)."""
    keys = [
        f"lp:web:signin:{kind}:{s}"
        for s, _ in _scopes(address, username)
        for kind in ("fails", "hold")
    ]
    get_redis().delete(*keys)
