"""Jobs sent but not yet accepted by a worker, so that a message Redis lost is sent again.

Celery's Redis transport takes a message off its queue with BRPOP and only then records
it as unacknowledged. A worker killed between the two loses the message: it is in no
queue, in no unacked hash, and — since workers create the ledger row — not in the ledger
either. `ledgerpush chaos` lost about one job in four worker kills this way.

So every job ledgerpush sends (Python `enqueue`, `ledgerpush enqueue`, `POST /api/jobs`,
resends) is first written here with Redis's clock, per queue; the worker that accepts it
into the ledger removes it and raises the queue's *seen* mark to the time the job was
sent. A queue is first in, first out: once a job sent later has been accepted, every job
sent earlier has been taken off the queue too (and when the queue is empty, every job
sent so far has). One still here, older than that by the reconciler's grace, was lost on
its way; the reconciler sends it again (and drops entries whose job is in the ledger
after all). Jobs pushed onto Redis by other producers
(raw LPUSH) bypass this: for them a worker crash in that window still loses the message.
"""

from __future__ import annotations

import json
from typing import Any

from worker.redis_client import get_redis

_RECORD = """
local now = redis.call('TIME')
local ts = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ts, ARGV[1])
return tostring(ts)
"""
_ACCEPTED = """
local ts = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not ts then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
local seen = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ts) > seen then redis.call('SET', KEYS[3], ts) end
return 1
"""


def queue_for(kind: str) -> str:
    from worker.app import QUEUE_FOR_TASK, TASK_FOR_KIND

    return QUEUE_FOR_TASK[TASK_FOR_KIND[kind]]


def _keys(queue: str) -> list[str]:
    return [f"lp:outbox:{queue}", f"lp:outbox:sent:{queue}", f"lp:outbox:seen:{queue}"]


def record(queue: str, job_id: str, kind: str, payload: dict[str, Any]) -> None:
    """Before a job is published: remember it until a worker accepts it."""
    entry = json.dumps({"kind": kind, "payload": payload})
    get_redis().eval(_RECORD, 2, *_keys(queue)[:2], job_id, entry)


def accepted(queue: str, job_id: str) -> None:
    """The job is in the ledger: forget it, and mark how far the queue has been read."""
    get_redis().eval(_ACCEPTED, 3, *_keys(queue), job_id)


def overdue(queue: str, grace: float, limit: int = 500) -> list[tuple[str, str, dict[str, Any]]]:
    """Jobs sent more than `grace` seconds before the latest one accepted from `queue`:
    taken off the queue without reaching the ledger, or never published."""
    redis: Any = get_redis()  # redis-py types sync answers as `Awaitable | value`
    entries_key, sent_key, seen_key = _keys(queue)
    seen = float(redis.get(seen_key) or 0)
    if redis.llen(queue) == 0:
        seconds, micros = redis.time()
        seen = seconds + micros / 1_000_000
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in redis.zrangebyscore(sent_key, "-inf", seen - grace, start=0, num=limit)
    ]
    found: list[tuple[str, str, dict[str, Any]]] = []
    for job_id, raw in zip(ids, redis.hmget(entries_key, ids) if ids else [], strict=True):
        if raw is None:
            redis.zrem(sent_key, job_id)
            continue
        entry = json.loads(raw)
        found.append((job_id, str(entry["kind"]), dict(entry["payload"])))
    return found
