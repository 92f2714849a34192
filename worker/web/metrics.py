"""GET /metrics: Prometheus text built from shared state at scrape time.

The worker runs in other processes (and machines), so nothing here comes from this
process's memory. A scrape reads only Redis and small tables: attempt outcomes, provider
call counts and latencies are folded from attempts that ended since the last fold into
Redis counters (under a lock, so any number of web processes expose the same monotonic
counters); the jobs-by-state gauge is an aggregate cached in Redis, recomputed in the
background when older than AGGREGATE_MAX_AGE (counting a large `jobs` table takes
longer than a scrape may). Tenant ids appear in labels only with
LEDGERPUSH_METRICS_TENANT_LABELS=true.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.auth.tokens import REFRESH_FAILURES, REFRESHES
from worker.ledger.metrics import (
    attempts_ended_between,
    job_counts_by_state_and_provider,
    tenant_counts_by_provider_and_state,
    webhook_delivery_counts_by_status,
)
from worker.ledger.models import utcnow
from worker.ops.circuit import statuses
from worker.settings import get_settings
from worker.transport import poison
from worker.transport.redis_client import get_redis
from worker.web.queries import queue_depths, reserved_messages

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FOLD_LAG = dt.timedelta(seconds=15)
FIRST_FOLD_WINDOW = dt.timedelta(hours=24)
CURSOR = "lp:metrics:calls_folded_until"
CALLS = "lp:metrics:calls"
LATENCY = "lp:metrics:latency"
OUTCOMES = "lp:metrics:outcomes"
AGGREGATE = "lp:metrics:aggregate"
AGGREGATE_MAX_AGE = 5.0
_refreshing = threading.Lock()


def _decode(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def fold_calls() -> None:
    """Add the calls and outcomes of attempts ended since the last fold to the Redis
    counters."""
    redis = get_redis()
    lock = redis.lock("lp:metrics:fold", timeout=30, blocking_timeout=5)
    if not lock.acquire():
        return
    try:
        until = utcnow() - FOLD_LAG
        raw = redis.get(CURSOR)
        since = dt.datetime.fromisoformat(_decode(raw)) if raw else until - FIRST_FOLD_WINDOW
        pipe = redis.pipeline()
        for calls, provider, outcome in attempts_ended_between(since, until):
            pipe.hincrby(OUTCOMES, outcome or "unknown", 1)
            for call in calls or []:
                if isinstance(call, dict):
                    _count_call(pipe, provider or "unknown", call)
        pipe.set(CURSOR, until.isoformat())
        pipe.execute()
    finally:
        lock.release()


def _count_call(pipe: Any, provider: str, call: dict[str, Any]) -> None:
    method = str(call.get("method") or "?")
    status = str(call.get("status") or "none")
    pipe.hincrby(CALLS, f"{provider}|{method}|{status}", 1)
    ms = call.get("ms")
    if not isinstance(ms, int | float):
        return
    seconds = ms / 1000
    for bound in BUCKETS:
        if seconds <= bound:
            pipe.hincrby(LATENCY, f"{provider}|{bound}", 1)
    pipe.hincrby(LATENCY, f"{provider}|count", 1)
    pipe.hincrbyfloat(LATENCY, f"{provider}|sum", seconds)


def _hash(name: str) -> dict[str, str]:
    raw: dict[Any, Any] = get_redis().hgetall(name)  # type: ignore[assignment, unused-ignore]
    return {_decode(k): _decode(v) for k, v in raw.items()}


def refresh_aggregate() -> dict[str, Any]:
    """Fold new attempts into the counters and recount jobs and webhook deliveries;
    the result is cached in Redis for every web process."""
    fold_calls()
    data = {
        "at": time.time(),
        "jobs": job_counts_by_state_and_provider(),
        "webhooks": webhook_delivery_counts_by_status(),
    }
    get_redis().set(AGGREGATE, json.dumps(data))
    return data


def _refresh_in_background() -> None:
    def work() -> None:
        try:
            _lower_priority()
            redis = get_redis()
            lock = redis.lock("lp:metrics:aggregate-lock", timeout=120, blocking=False)
            if lock.acquire():
                try:
                    refresh_aggregate()
                finally:
                    lock.release()
        finally:
            _refreshing.release()

    if _refreshing.acquire(blocking=False):
        threading.Thread(target=work, name="metrics-refresh", daemon=True).start()


def _lower_priority() -> None:
    """The recount yields the CPU to scrapes and requests (Linux: per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def cached_aggregate() -> dict[str, Any]:
    """The cached aggregate; a stale one is served while a fresh one is made. Only the
    first scrape (nothing cached yet) waits for the count."""
    raw: Any = get_redis().get(AGGREGATE)
    if raw is None:
        return refresh_aggregate()
    data: dict[str, Any] = json.loads(raw)
    if time.time() - float(data.get("at", 0)) > AGGREGATE_MAX_AGE:
        _refresh_in_background()
    return data


class LedgerCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        aggregate = cached_aggregate()
        yield self._jobs(aggregate["jobs"])
        yield self._attempts()
        yield from self._calls()
        yield from self._tokens()
        yield self._tenants()
        yield from self._queues()
        yield self._webhooks(aggregate["webhooks"])
        yield from _circuits()
        yield from self._poison()

    def _jobs(self, rows: list[list[Any]]) -> Metric:
        gauge = GaugeMetricFamily(
            "ledgerpush_jobs",
            "Jobs in the ledger by state and provider (counted at most a few seconds ago)",
            labels=["state", "provider"],
        )
        for state, provider, count in rows:
            gauge.add_metric([state, provider], count)
        return gauge

    def _attempts(self) -> Metric:
        counter = CounterMetricFamily(
            "ledgerpush_attempts", "Finished job attempts by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(_hash(OUTCOMES).items()):
            counter.add_metric([outcome], float(count))
        return counter

    def _calls(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "ledgerpush_provider_calls",
            "HTTP calls to accounting systems by provider, method and status code",
            labels=["provider", "method", "status"],
        )
        for key, value in sorted(_hash(CALLS).items()):
            calls.add_metric(key.split("|", 2), float(value))
        yield calls
        yield _latency_histogram(_hash(LATENCY))

    def _tokens(self) -> Iterator[Metric]:
        for name, key, text in (
            ("ledgerpush_token_refreshes", REFRESHES, "Access token refreshes by tenant"),
            ("ledgerpush_token_refresh_failures", REFRESH_FAILURES, "Failed token refreshes"),
        ):
            counts = _hash(key)
            if get_settings().metrics_tenant_labels:
                counter = CounterMetricFamily(name, text, labels=["tenant"])
                for tenant, count in sorted(counts.items()):
                    counter.add_metric([tenant], float(count))
            else:
                total = sum(float(count) for count in counts.values())
                counter = CounterMetricFamily(name, text.replace(" by tenant", ""), value=total)
            yield counter

    def _tenants(self) -> Metric:
        gauge = GaugeMetricFamily(
            "ledgerpush_tenants",
            "Tenants by provider and connection state",
            labels=["provider", "connection_state"],
        )
        for provider, state, count in tenant_counts_by_provider_and_state():
            gauge.add_metric([provider, state], count)
        return gauge

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "ledgerpush_queue_depth", "Messages waiting in each Celery queue", labels=["queue"]
        )
        for queue, count in queue_depths().items():
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily(
            "ledgerpush_unacked_messages",
            "Messages reserved by workers and not yet acknowledged",
            value=reserved_messages(),
        )

    def _webhooks(self, rows: list[list[Any]]) -> Metric:
        gauge = GaugeMetricFamily(
            "ledgerpush_webhook_deliveries", "Alert webhook deliveries by status", labels=["status"]
        )
        for status, count in rows:
            gauge.add_metric([status], count)
        return gauge

    def _poison(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(
            "ledgerpush_poison_messages",
            "Messages moved to the poison list since it began, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(poison.totals().items()):
            counter.add_metric([reason], float(count))
        yield counter
        yield CounterMetricFamily(
            "ledgerpush_poison_bursts",
            "Bursts of poison messages (one alert each)",
            value=poison.bursts(),
        )
        yield GaugeMetricFamily(
            "ledgerpush_poison_list_length",
            f"Messages waiting in the poison list ({poison.POISON_KEY}) for an operator",
            value=poison.count(),
        )


def _circuits() -> Iterator[Metric]:
    is_open = GaugeMetricFamily(
        "ledgerpush_provider_circuit_open",
        "1 while an accounting system's circuit is open or half-open (down for many tenants)",
        labels=["provider"],
    )
    held = GaugeMetricFamily(
        "ledgerpush_provider_circuit_held_jobs",
        "Jobs held by an open circuit, or waiting their turn after it closed",
        labels=["provider"],
    )
    for status in statuses():
        is_open.add_metric([status.provider], 1.0 if status.is_open else 0.0)
        held.add_metric([status.provider], float(status.held))
    yield is_open
    yield held


def _latency_histogram(raw: dict[str, str]) -> Metric:
    histogram = HistogramMetricFamily(
        "ledgerpush_provider_call_duration_seconds",
        "Duration of HTTP calls to accounting systems",
        labels=["provider"],
    )
    providers = sorted({key.split("|", 1)[0] for key in raw})
    for provider in providers:
        count = float(raw.get(f"{provider}|count", 0))
        buckets = [(str(b), float(raw.get(f"{provider}|{b}", 0))) for b in BUCKETS]
        buckets.append(("+Inf", count))
        histogram.add_metric([provider], buckets, float(raw.get(f"{provider}|sum", 0)))
    return histogram


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector())
    return generate_latest(registry)
