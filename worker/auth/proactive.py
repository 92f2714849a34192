"""Proactive refresh: the beat task finds the tokens that expire soon, of the providers
whose spec has a proactive refresh (eAccounting's one-hour tokens), and schedules each
tenant's refresh at a stable, spread-out offset, so thousands of tenants never hit the
token endpoint in the same second."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import zlib
from typing import Any

from worker.auth.tokens import refresh_single_flight
from worker.ledger import tenancy
from worker.ledger.models import utcnow
from worker.providers import registry
from worker.settings import get_settings
from worker.tasknames import REFRESH_TENANT_TASK
from worker.tenancy import tenants
from worker.transport import dispatch
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.auth.proactive")
SAFETY_MARGIN = 60.0
SCHEDULED_GRACE = 60.0  # how long after its due time a scheduled refresh may still run


def expiring_tenants(window: float) -> list[tuple[str, float]]:
    """(tenant id, seconds until its access token expires) for tokens inside the window."""
    horizon = utcnow() + dt.timedelta(seconds=window)
    rows = tenancy.connected_tokens_expiring_before(_refreshed_providers(), horizon)
    now = utcnow()
    return [(tenant_id, _seconds_between(now, expires)) for tenant_id, expires in rows if expires]


def _refreshed_providers() -> list[str]:
    return [spec.name for spec in registry.specs() if spec.proactive_refresh_ref]


def _seconds_between(now: dt.datetime, expires: dt.datetime) -> float:
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    return (expires - now).total_seconds()


def spread_delay(tenant_id: str, seconds_left: float) -> float:
    """A stable offset per tenant inside the time that is left before expiry."""
    room = max(seconds_left - SAFETY_MARGIN, 0.0)
    return (zlib.crc32(tenant_id.encode()) % 10_000) / 10_000 * room


def refresh_expiring_tokens() -> int:
    """The beat task: schedule a refresh of each tenant whose token expires soon."""
    return len(schedule_refreshes(float(get_settings().refresh_window_seconds)))


def schedule_refreshes(window: float) -> list[str]:
    """Schedule one refresh per tenant inside the window; the tenants scheduled.

    The beat ticks every minute and a tenant stays inside the window for several ticks:
    a Redis marker per tenant, kept until a little after its refresh is due, makes
    that one scheduled refresh, not one per tick. Should the refresh not happen (a
    lost message, a failure), the marker expires and the next tick schedules again."""
    redis = get_redis()
    scheduled = []
    for tenant_id, seconds_left in expiring_tenants(window):
        delay = spread_delay(tenant_id, seconds_left)
        keep = math.ceil(delay + SCHEDULED_GRACE)
        if not redis.set(scheduled_key(tenant_id), 1, nx=True, ex=keep):
            continue  # already scheduled by an earlier tick
        dispatch.send(REFRESH_TENANT_TASK, (tenant_id,), countdown=delay)
        scheduled.append(tenant_id)
    if scheduled:
        log.info("scheduled proactive refresh of %d tenants", len(scheduled))
    return scheduled


def scheduled_key(tenant_id: str) -> str:
    return f"lp:refresh-scheduled:{tenant_id}"


def refresh_if_expiring(tenant_id: str) -> bool:
    """Refresh unless someone already did; True when a refresh happened."""
    window = float(get_settings().refresh_window_seconds)

    def still_needed(current: dict[str, Any]) -> bool:
        return float(current.get("expires_at") or 0) < time.time() + window

    refresh = registry.spec_for(tenants.get_tenant(tenant_id).provider).proactive_refresh
    if refresh is None:
        return False
    before: dict[str, Any] = {}
    after = refresh_single_flight(tenant_id, before, refresh, still_needed=still_needed)
    return bool(after.get("expires_at")) and float(after["expires_at"]) > time.time() + window
