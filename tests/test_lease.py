"""The lease renewer: one thread keeps every lease of the process alive while its job
runs, whatever order leases of different durations are taken in."""

from __future__ import annotations

import time

from tests.conftest import unique
from worker.transport.lease import JobLease, lease_key
from worker.transport.redis_client import get_redis


def test_a_lease_outlives_its_duration_while_held() -> None:
    lease = JobLease(unique("lease"), seconds=4)
    assert lease.acquire()
    try:
        time.sleep(9)  # more than twice the lease: only renewals keep it
        lease.ensure_held()
        assert get_redis().exists(lease_key(lease.job_id))
    finally:
        lease.release()
    assert not get_redis().exists(lease_key(lease.job_id))


def test_a_shorter_lease_taken_after_a_longer_one_is_renewed_in_time() -> None:
    # The renewer sleeps until the long lease is due (in 20 s); the short one, due
    # sooner, must wake it.
    long = JobLease(unique("lease-long"), seconds=60)
    short = JobLease(unique("lease-short"), seconds=4)
    assert long.acquire()
    try:
        time.sleep(0.5)  # the renewer is waiting for the long lease now
        assert short.acquire()
        try:
            time.sleep(9)
            short.ensure_held()
            assert get_redis().exists(lease_key(short.job_id))
        finally:
            short.release()
        long.ensure_held()
    finally:
        long.release()
