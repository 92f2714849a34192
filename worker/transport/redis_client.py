"""The process-wide Redis connection pool for locks, caches, leases and rate limits, and
the batch that sends several modules' commands in one round trip."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

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


#: Gets the answers of the commands a module queued on a `Batch` (each an exception if
#: that command failed, or all of them if Redis could not be reached).
Finish = Callable[[list[Any]], None]


def nothing_queued(answers: list[Any]) -> None:
    """The `Finish` of a module that had nothing to queue."""


class Batch:
    """Commands of several modules in one round trip: a pipeline, not a transaction (each
    module's commands stay in order, other clients' commands may come in between). A
    module queues its commands and hands back what to do with their answers; the
    module's own keys and error handling stay in the module."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.pipe = (client or get_redis()).pipeline(transaction=False)
        self._finishes: list[tuple[int, int, Finish]] = []

    def add(self, queue: Callable[[Pipeline], Finish]) -> None:
        start = len(self.pipe)
        finish = queue(self.pipe)
        self._finishes.append((start, len(self.pipe), finish))

    def send(self) -> None:
        """One round trip for everything queued, then each module's `Finish`."""
        finishes, self._finishes = self._finishes, []
        answers: list[Any] = []
        if len(self.pipe):
            try:
                answers = self.pipe.execute(raise_on_error=False)
            except RedisError as exc:
                answers = [exc] * len(self.pipe)
                self.pipe.reset()
        for start, end, finish in finishes:
            finish(answers[start:end])


def queue_script(pipe: Pipeline, script: Script, keys: list[Any], args: list[Any]) -> None:
    """A registered script's EVALSHA on `pipe`. (Calling the script with `client=pipe`
    would make redis-py ask SCRIPT EXISTS before every execute: one more round trip.)"""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def script_answer(
    answer: Any, script: Script, keys: list[Any], args: list[Any], client: redis.Redis
) -> Any:
    """The answer of a script queued with `queue_script`; the script is run on its own
    (loading it) if Redis did not know it (restarted or flushed meanwhile)."""
    if isinstance(answer, NoScriptError):
        return script(keys=keys, args=args, client=client)
    if isinstance(answer, Exception):
        raise answer
    return answer
