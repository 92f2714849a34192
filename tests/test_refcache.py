"""The reference cache's in-process copy is bounded by count and age, in this process and
in a worker process that serves more tenants than the bound, and an invalidation (a new
generation in Redis) is still seen at the next job."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from redis import Redis

from tests.conftest import WorkerProcess, connect_ea_tenant, invoice_job, unique, wait_for
from worker.ledger.models import Job
from worker.ledger.store import find_job
from worker.settings import get_settings
from worker.tenancy import refcache
from worker.tenancy.refcache import TenantCache, invalidate
from worker.transport.app import celery_config
from worker.transport.embedded_redis import EmbeddedRedis
from worker.transport.redis_client import get_redis


@pytest.fixture
def bound(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES=3 in this process."""
    monkeypatch.setenv("LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES", "3")
    get_settings.cache_clear()
    yield 3
    monkeypatch.undo()
    get_settings.cache_clear()


def changed_elsewhere(tenant_id: str, name: str, value: Any) -> None:
    """Another process stores a new value of the reference in Redis."""
    get_redis().set(TenantCache(tenant_id)._key(name), json.dumps(value))


def read(tenant_id: str, name: str) -> Any:
    return TenantCache(tenant_id).get(name, lambda: pytest.fail(f"{name} loaded again"))


def test_the_local_copy_drops_the_least_recently_used_past_its_bound(bound: int) -> None:
    tenant = unique("rc")
    for name in ("a", "b", "c", "d", "e"):
        TenantCache(tenant).get(name, lambda n=name: f"{n}-1")  # type: ignore[misc]
    assert refcache.local_stats() == {"entries": bound, "max_entries": bound}
    for name in ("a", "e"):
        changed_elsewhere(tenant, name, f"{name}-2")
    assert read(tenant, "a") == "a-2"  # dropped from this process: read from Redis
    assert read(tenant, "e") == "e-1"  # still this process's copy


def test_the_local_copy_drops_a_reference_past_its_age(
    bound: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refcache, "LOCAL_TTL", 0.3)
    tenant = unique("rc")
    TenantCache(tenant).get("vatcodes", lambda: ["25"])
    changed_elsewhere(tenant, "vatcodes", ["15"])
    assert read(tenant, "vatcodes") == ["25"]
    time.sleep(0.4)
    assert refcache.local_stats()["entries"] == 0
    assert read(tenant, "vatcodes") == ["15"]


def test_a_new_generation_is_seen_at_once_despite_the_local_copy(bound: int) -> None:
    tenant = unique("rc")
    assert TenantCache(tenant).get("accounts", lambda: ["3000"]) == ["3000"]
    invalidate(tenant)  # "Refresh references", from any process
    assert TenantCache(tenant).get("accounts", lambda: ["3001"]) == ["3001"]
    assert read(tenant, "accounts") == ["3001"]


# -- a worker process -----------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[EmbeddedRedis, Celery]]:
    """A Redis of this test alone (so only its worker takes its jobs) and a Celery app on
    it to ask the worker."""
    redis = EmbeddedRedis(tmp_path / "redis").start()
    control = Celery("refcache-tests", set_as_current=False)
    control.conf.update({**celery_config(), "broker_url": redis.url})
    yield redis, control
    control.close()
    redis.stop()


def produce(redis_url: str, payloads: list[dict[str, Any]]) -> list[str]:
    """`worker.transport.producer.enqueue` in a producer process on the given Redis."""
    code = (
        "import json, sys; from worker.transport.producer import enqueue; "
        "print(json.dumps([enqueue(p) for p in json.load(sys.stdin)]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(payloads),
        env={**os.environ, "LEDGERPUSH_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ids: list[str] = json.loads(done.stdout.splitlines()[-1])
    return ids


def settled(job_id: str) -> Job | None:
    job = find_job(job_id)
    return job if job is not None and job.state in ("booked", "failed") else None


def test_a_worker_holds_no_more_references_than_its_bound(
    own_redis: tuple[EmbeddedRedis, Celery], base_env: dict[str, str]
) -> None:
    redis, control = own_redis
    env = {**base_env, "LEDGERPUSH_REDIS_URL": redis.url,
           "LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES": "5"}  # fmt: skip
    worker = WorkerProcess(unique("refcache"), env, concurrency=2).start()
    try:
        tenants = [connect_ea_tenant() for _ in range(3)]
        ids = produce(redis.url, [invoice_job(tenant) for tenant in tenants])
        for job_id in ids:
            job = wait_for(functools.partial(settled, job_id), 60)
            assert job.state == "booked", (job.error_code, job.error_message)
        replies = control.control.broadcast("reference_cache", reply=True, timeout=10)
    finally:
        worker.stop()
    # Each tenant's references, as the worker stored them in its Redis.
    touched = len(Redis.from_url(redis.url).keys("lp:ref:*"))
    assert touched > 5, touched
    assert [stats for reply in replies for stats in reply.values()] == [
        {"entries": 5, "max_entries": 5}
    ]
