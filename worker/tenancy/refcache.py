"""Per-tenant cache of provider references (fiscal years, VAT codes, layouts, …) in
Redis with a TTL, invalidated explicitly when a reference turns out stale.

A process-local copy avoids a Redis round trip per reference per job. It is bounded, so
a worker's memory does not grow with the tenants it has served: at most
`LEDGERPUSH_REFERENCE_CACHE_MAX_ENTRIES` references (the least recently used go first),
each for at most LOCAL_TTL seconds. Its keys carry the tenant's generation counter from
Redis, read at the start of every job, so an invalidation anywhere is seen everywhere
at the next job.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from cachetools import TTLCache

from worker.settings import get_settings
from worker.transport.redis_client import get_redis

#: Seconds a reference stays in a process's own copy (a `forget` elsewhere is seen after
#: at most this long).
LOCAL_TTL = 30.0
_MISSING = object()


class _LocalCopy:
    """This process's decoded references, bounded by count and age. cachetools caches
    are not thread-safe: every use holds the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: TTLCache[str, Any] = TTLCache(maxsize=1, ttl=LOCAL_TTL)

    def _sized(self) -> TTLCache[str, Any]:
        # Built again (empty) when the settings or LOCAL_TTL changed since it was built.
        size = get_settings().reference_cache_max_entries
        if (self._cache.maxsize, self._cache.ttl) != (size, LOCAL_TTL):
            self._cache = TTLCache(maxsize=size, ttl=LOCAL_TTL)
        return self._cache

    def get(self, key: str) -> Any:
        with self._lock:
            return self._sized().get(key, _MISSING)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._sized()[key] = value

    def discard(self, key: str) -> None:
        with self._lock:
            self._sized().pop(key, None)

    def discard_prefix(self, prefix: str) -> None:
        with self._lock:
            cache = self._sized()
            for key in [k for k in cache if k.startswith(prefix)]:
                cache.pop(key, None)

    def stats(self) -> dict[str, int]:
        with self._lock:
            cache = self._sized()
            cache.expire()
            return {"entries": len(cache), "max_entries": int(cache.maxsize)}


_local = _LocalCopy()


def local_stats() -> dict[str, int]:
    """How many references this process holds decoded, and the most it may."""
    return _local.stats()


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
        value = _local.get(key)
        if value is not _MISSING:
            return value
        value = self._shared(key)
        if value is None:
            if exclusive:
                with get_redis().lock(f"lp:reflock:{key}", timeout=60, blocking_timeout=65):
                    value = self._shared(key)
                    if value is None:
                        value = self._store(key, load(), ttl)
            else:
                value = self._store(key, load(), ttl)
        _local.put(key, value)
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
        _local.put(key, value)

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
    _local.discard(key)


def forget_prefix(tenant_id: str, prefix: str) -> int:
    """Drop every cached reference of the tenant whose name starts with `prefix`;
    returns how many were dropped."""
    base = f"lp:ref:{tenant_id}:{_generation(tenant_id)}:"
    keys = list(get_redis().scan_iter(f"{base}{prefix}*"))
    if keys:
        get_redis().delete(*keys)
    _local.discard_prefix(base + prefix)
    return len(keys)


def cached_names(tenant_id: str) -> list[str]:
    prefix = f"lp:ref:{tenant_id}:{_generation(tenant_id)}:"
    return sorted(k.decode().removeprefix(prefix) for k in get_redis().scan_iter(prefix + "*"))
