"""Jobs sent but not yet received by a worker, so that a message Redis lost is sent again.

Celery's Redis transport takes a message off its queue with BRPOP and only then records
it as unacknowledged. A worker killed between the two loses the message: it is in no
queue, in no unacked hash, and — since workers create the ledger row — not in the ledger
either. `ledgerpush chaos` lost about one job in four worker kills this way.

So every job message ledgerpush publishes (Python `enqueue`, `ledgerpush enqueue`,
`POST /api/jobs`, resends, retries: Celery's `before_task_publish`) is first written
here, per queue, with Redis's clock and a token that the message carries in its headers
(`lp_outbox`). When a worker receives that message —
kombu has then recorded it as unacknowledged, so a crash can no longer lose it — the
entry goes, and the queue's *seen* mark rises to the time the job was sent. A queue is
first in, first out: once a message sent later has been received, every message sent
earlier has been taken off the queue too (and when the queue is empty, every one sent so
far has). An entry older than that by the reconciler's grace belongs to a message lost
on its way; the reconciler sends the job again (or drops the entry if the job is in the
ledger after all). Only the message an entry was written for moves the mark: restored
messages do not, as they do not queue behind the others. A job with an entry has a
message on its way, so the reconciler does not send it again for being overdue.
Jobs pushed onto Redis by other producers (raw LPUSH) bypass this: for them a worker
crash in that window still loses the message.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

from redis.exceptions import RedisError

from worker.redis_client import get_redis

log = logging.getLogger("ledgerpush.outbox")
HEADER = "lp_outbox"
_TOKEN = 32  # uuid4().hex, the first characters of an entry
QUEUES_KEY = "lp:outbox:queues"
_RECORD = """
local now = redis.call('TIME')
local ts = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ts, ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""
# ARGV[2]: the received message's token; "" when the job reached the ledger some other
# way (the entry goes, the mark stays).
_RECEIVED = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 0 end
local ts = redis.call('ZSCORE', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then
  if string.sub(entry, 1, 32) ~= ARGV[2] then return 0 end
  local seen = tonumber(redis.call('GET', KEYS[3]) or '0')
  if ts and tonumber(ts) > seen then redis.call('SET', KEYS[3], ts) end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


def queue_for(kind: str) -> str:
    from worker.app import QUEUE_FOR_TASK, TASK_FOR_KIND

    return QUEUE_FOR_TASK[TASK_FOR_KIND[kind]]


def _keys(queue: str) -> list[str]:
    return [f"lp:outbox:{queue}", f"lp:outbox:sent:{queue}", f"lp:outbox:seen:{queue}"]


def record(queue: str, job_id: str, kind: str, payload: dict[str, Any]) -> dict[str, str]:
    """Before a job's message is published: remember it until a worker receives it.
    Returns the headers the message must carry."""
    token = uuid.uuid4().hex
    entry = token + json.dumps({"kind": kind, "payload": payload})
    get_redis().eval(_RECORD, 3, *_keys(queue)[:2], QUEUES_KEY, job_id, entry, queue)
    return {HEADER: token}


def on_before_publish(
    sender: str | None = None,
    body: Any = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """Celery's `before_task_publish`, in whichever process publishes a job message:
    record it and put the token into the message's (modifiable) headers. A Redis error
    stops the publish, which would fail anyway."""
    from worker.app import QUEUE_FOR_TASK

    if sender not in QUEUE_FOR_TASK or headers is None or not routing_key:
        return
    try:
        payload = body[0][0]
        job_id, kind = str(headers["id"]), str(payload["kind"])
    except (TypeError, LookupError):
        return  # not a job message as ledgerpush publishes them
    headers.update(record(routing_key, job_id, kind, payload))


def queues() -> list[str]:
    raw = get_redis().smembers(QUEUES_KEY)
    return sorted(q.decode() if isinstance(q, bytes) else str(q) for q in raw)  # type: ignore[union-attr]


def pending(job_ids: list[str]) -> set[str]:
    """The jobs among `job_ids` whose latest message has not been received yet."""
    if not job_ids:
        return set()
    names = queues()
    pipe = get_redis().pipeline(transaction=False)
    for queue in names:
        for job_id in job_ids:
            pipe.hexists(_keys(queue)[0], job_id)
    found = pipe.execute()
    return {job_ids[i % len(job_ids)] for i, present in enumerate(found) if present}


def accepted(queue: str, job_id: str, token: str = "") -> bool:
    """Forget the job: its message (the one carrying `token`) was received, or the job
    is in the ledger (no token). True if an entry went."""
    return bool(get_redis().eval(_RECEIVED, 3, *_keys(queue), job_id, token))


# Jobs whose entry this process removed when their message was received: the pipeline
# need not clear it again once the job is in the ledger (one Redis call per job less).
# Bounded: a job that never reaches the pipeline (revoked, worker stopped) is forgotten.
_cleared_on_receipt: dict[str, None] = {}
_CLEARED_MAX = 10_000
_cleared_lock = threading.Lock()


def cleared_on_receipt(job_id: str) -> bool:
    """True (once) if this process removed the job's entry when its message arrived."""
    with _cleared_lock:
        return _cleared_on_receipt.pop(job_id, False) is None


def on_task_received(request: Any = None, **_: Any) -> None:
    """Celery's `task_received` signal, in the consumer, right after kombu recorded the
    message as unacknowledged: from here on the visibility timeout brings it back. (A
    message may wait long after this for a free thread: it is not lost meanwhile.)"""
    if request is None:
        return
    message = getattr(request, "message", None)
    token = ((getattr(message, "headers", None) or {}) if message else {}).get(HEADER)
    queue = (getattr(request, "delivery_info", None) or {}).get("routing_key")
    if not token or not queue:
        return
    try:
        removed = accepted(str(queue), str(request.id), str(token))
    except RedisError as exc:  # the pipeline clears it when the job reaches the ledger
        log.warning("could not clear the outbox entry of job %s: %s", request.id, exc)
        return
    if removed:
        with _cleared_lock:
            if len(_cleared_on_receipt) >= _CLEARED_MAX:
                del _cleared_on_receipt[next(iter(_cleared_on_receipt))]
            _cleared_on_receipt[str(request.id)] = None


def overdue(queue: str, grace: float, limit: int = 500) -> list[tuple[str, str, dict[str, Any]]]:
    """Jobs sent more than `grace` seconds before the latest message received from
    `queue`: taken off the queue without being received, or never published."""
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
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        entry = json.loads(text[_TOKEN:])
        found.append((job_id, str(entry["kind"]), dict(entry["payload"])))
    return found
