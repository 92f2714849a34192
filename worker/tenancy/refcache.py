"""Per-tenant cache of provider references (fiscal years, VAT codes, layouts, …) in
Redis with a TTL, invalidated explicitly when a reference turns out stale.

A process-local copy avoids a Redis round trip per reference per job; it is checked
against a per-tenant generation counter in Redis, so an invalidation anywhere is seen
everywhere at the next job.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from worker.settings import get_settings
from worker.transport.redis_client import get_redis

_local: dict[str, tuple[float, int, Any]] = {}
_local_lock = threading.Lock()
LOCAL_TTL = 30.0


def _generation(tenant_id: str) -> int:
    raw: bytes | None = get_redis().get(f"lp:refgen:{tenant_id}")  # type: ignore[assignment]
    return int(raw or 0)


class TenantCache:
    """The reference cache of one tenant, for the duration of one job."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.generation = _generation(tenant_id)

    def _key(self, name: str) -> str:
        return f"lp:ref:{self.tenant_id}:{self.generation}:{name}"

    def get(
        self, name: str, load: Callable[[], Any], ttl: int | None = None, exclusive: bool = False
    ) -> Any:
        """The cached value, or `load()`'s. With `exclusive`, one worker at a time loads
        it, so a find-or-create (customer, article) never creates twice in a race."""
        key = self._key(name)
        now = time.monotonic()
        with _local_lock:
            hit = _local.get(key)
        if hit and hit[0] > now:
            return hit[2]
        value = self._shared(key)
        if value is None:
            if exclusive:
                with get_redis().lock(f"lp:reflock:{key}", timeout=60, blocking_timeout=65):
                    value = self._shared(key)
                    if value is None:
                        value = self._store(key, load(), ttl)
            else:
                value = self._store(key, load(), ttl)
        with _local_lock:
            _local[key] = (now + LOCAL_TTL, self.generation, value)
        return value

    @staticmethod
    def _shared(key: str) -> Any:
        raw: bytes | None = get_redis().get(key)  # type: ignore[assignment]
        return None if raw is None else json.loads(raw)

    @staticmethod
    def _store(key: str, value: Any, ttl: int | None) -> Any:
        seconds = get_settings().reference_cache_ttl if ttl is None else ttl
        if seconds:
            get_redis().set(key, json.dumps(value, default=str), ex=seconds)
        return value

    def put(self, name: str, value: Any, ttl: int | None = None) -> None:
        seconds = get_settings().reference_cache_ttl if ttl is None else ttl
        key = self._key(name)
        if seconds:
            get_redis().set(key, json.dumps(value, default=str), ex=seconds)
        with _local_lock:
            _local[key] = (time.monotonic() + LOCAL_TTL, self.generation, value)

    def invalidate(self) -> None:
        invalidate(self.tenant_id)
        self.generation = _generation(self.tenant_id)


def invalidate(tenant_id: str) -> None:
    """Drop every cached reference of the tenant (old generations expire by TTL)."""
    get_redis().incr(f"lp:refgen:{tenant_id}")


def forget(tenant_id: str, name: str) -> None:
    """Drop one cached reference of the tenant (its other references stay). Another
    process's local copy lives on for at most LOCAL_TTL seconds."""
    key = f"lp:ref:{tenant_id}:{_generation(tenant_id)}:{name}"
    get_redis().delete(key)
    with _local_lock:
        _local.pop(key, None)


def forget_prefix(tenant_id: str, prefix: str) -> int:
    """Drop every cached reference of the tenant whose name starts with `prefix`;
    returns how many were dropped."""
    base = f"lp:ref:{tenant_id}:{_generation(tenant_id)}:"
    keys = list(get_redis().scan_iter(f"{base}{prefix}*"))
    if keys:
        get_redis().delete(*keys)
    with _local_lock:
        for key in [k for k in _local if k.startswith(base + prefix)]:
            del _local[key]
    return len(keys)


def cached_names(tenant_id: str) -> list[str]:
    prefix = f"lp:ref:{tenant_id}:{_generation(tenant_id)}:"
    return sorted(k.decode().removeprefix(prefix) for k in get_redis().scan_iter(prefix + "*"))
