"""GET /metrics: Prometheus text built from shared state at scrape time.

The worker runs in other processes (and machines), so nothing here comes from this
process's memory: gauges are read from the ledger and Redis; attempt outcomes are
counted from Attempt rows; provider call counts and latencies are folded from the
`calls` of attempts that ended since the last fold into Redis counters (under a lock,
so any number of web processes expose the same monotonic counters).
"""

from __future__ import annotations

import datetime as dt
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
from sqlalchemy import func, select

from worker import poison
from worker.auth.tokens import REFRESH_FAILURES, REFRESHES
from worker.ledger.db import session
from worker.ledger.models import Attempt, Job, Tenant, WebhookDelivery, utcnow
from worker.redis_client import get_redis
from worker.web.queries import queue_depths, reserved_messages

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FOLD_LAG = dt.timedelta(seconds=15)
FIRST_FOLD_WINDOW = dt.timedelta(hours=24)
CURSOR = "lp:metrics:calls_folded_until"
CALLS = "lp:metrics:calls"
LATENCY = "lp:metrics:latency"


def _decode(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _calls_since(since: dt.datetime, until: dt.datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    query = (
        select(Attempt.calls, Tenant.provider)
        .join(Job, Job.id == Attempt.job_id)
        .outerjoin(Tenant, Tenant.id == Job.tenant_id)
        .where(Attempt.ended_at > since, Attempt.ended_at <= until)
    )
    with session() as db:
        rows = list(db.execute(query).tuples())
    for calls, provider in rows:
        for call in calls or []:
            if isinstance(call, dict):
                yield provider or "unknown", call


def fold_calls() -> None:
    """Add the calls of attempts ended since the last fold to the Redis counters."""
    redis = get_redis()
    lock = redis.lock("lp:metrics:fold", timeout=30, blocking_timeout=5)
    if not lock.acquire():
        return
    try:
        until = utcnow() - FOLD_LAG
        raw = redis.get(CURSOR)
        since = dt.datetime.fromisoformat(_decode(raw)) if raw else until - FIRST_FOLD_WINDOW
        pipe = redis.pipeline()
        for provider, call in _calls_since(since, until):
            _count_call(pipe, provider, call)
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
    raw: dict[Any, Any] = get_redis().hgetall(name)  # type: ignore[assignment]
    return {_decode(k): _decode(v) for k, v in raw.items()}


class LedgerCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        fold_calls()
        yield from self._jobs()
        yield self._attempts()
        yield from self._calls()
        yield from self._tokens()
        yield self._tenants()
        yield from self._queues()
        yield self._webhooks()
        yield from self._poison()

    def _jobs(self) -> Iterator[Metric]:
        provider = func.coalesce(Tenant.provider, Job.provider, "unknown")
        query = (
            select(Job.state, provider, func.count())
            .outerjoin(Tenant, Tenant.id == Job.tenant_id)
            .group_by(Job.state, provider)
        )
        gauge = GaugeMetricFamily(
            "ledgerpush_jobs",
            "Jobs in the ledger by state and provider",
            labels=["state", "provider"],
        )
        with session() as db:
            for state, prov, count in db.execute(query).tuples():
                gauge.add_metric([state, prov], count)
        yield gauge

    def _attempts(self) -> Metric:
        counter = CounterMetricFamily(
            "ledgerpush_attempts", "Finished job attempts by outcome", labels=["outcome"]
        )
        query = (
            select(Attempt.outcome, func.count())
            .where(Attempt.outcome.is_not(None))
            .group_by(Attempt.outcome)
        )
        with session() as db:
            for outcome, count in db.execute(query).tuples():
                counter.add_metric([outcome or "unknown"], count)
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
            counter = CounterMetricFamily(name, text, labels=["tenant"])
            for tenant, count in sorted(_hash(key).items()):
                counter.add_metric([tenant], float(count))
            yield counter

    def _tenants(self) -> Metric:
        gauge = GaugeMetricFamily(
            "ledgerpush_tenants",
            "Tenants by provider and connection state",
            labels=["provider", "connection_state"],
        )
        query = select(Tenant.provider, Tenant.connection_state, func.count()).group_by(
            Tenant.provider, Tenant.connection_state
        )
        with session() as db:
            for provider, state, count in db.execute(query).tuples():
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

    def _webhooks(self) -> Metric:
        gauge = GaugeMetricFamily(
            "ledgerpush_webhook_deliveries", "Alert webhook deliveries by status", labels=["status"]
        )
        query = select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
        with session() as db:
            for status, count in db.execute(query).tuples():
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
