"""The shared limiter against the real Redis: callers in different threads share a key."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from tests.conftest import unique
from worker.transport.ratelimit import Rate, RateLimited, RateLimiter

ONE_A_SECOND = Rate(60, 60.0, burst=1)


def test_two_threads_on_one_key_are_spaced_by_the_interval() -> None:
    key = unique("rl")
    sent: list[float] = []
    lock = threading.Lock()

    def caller() -> None:
        limiter = RateLimiter()  # each thread its own client, as separate workers would
        for _ in range(3):
            limiter.acquire(key, ONE_A_SECOND)
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=caller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(sent) == 6
    sent.sort()
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    # 60 a minute, burst 1: slots 60/59 s apart (less a little scheduling jitter here).
    assert min(gaps) >= 0.9, gaps
    assert sent[-1] - sent[0] >= 5 * 1.0


def test_a_wait_beyond_max_wait_raises_and_reserves_nothing() -> None:
    key = unique("rl")
    limiter = RateLimiter()
    assert limiter.reserve(key, ONE_A_SECOND) == 0
    with pytest.raises(RateLimited) as caught:
        limiter.reserve(key, ONE_A_SECOND, max_wait=0.5)
    assert 0.5 < caught.value.wait <= 1.1
    # The refused call took no slot: the next one waits one interval, not two.
    assert limiter.reserve(key, ONE_A_SECOND) <= 1.1


def test_keys_do_not_share_a_budget() -> None:
    limiter = RateLimiter()
    first, second = unique("rl"), unique("rl")
    assert limiter.reserve(first, ONE_A_SECOND) == 0
    assert limiter.reserve(second, ONE_A_SECOND) == 0
