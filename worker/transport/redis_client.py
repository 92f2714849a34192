"""The process-wide Redis connection pool for locks, caches, leases and rate limits."""

from __future__ import annotations

import functools

import redis

from worker.settings import get_settings
from worker.transport.embedded_redis import shared_redis_url


@functools.cache
def redis_url() -> str:
    settings = get_settings()
    return settings.redis_url or shared_redis_url(settings.home)


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(
        redis_url(), socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )
