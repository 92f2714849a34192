"""Jobs sent but not yet received by a worker, so that a message Redis lost is sent again.

Celery's Redis transport takes a message off its queue with BRPOP and only then records
it as unacknowledged. A worker killed between the two loses the message: it is in no
queue, in no unacked hash, and — since workers create the ledger row — not in the ledger
either. `ledgerpush chaos` lost about one job in four worker kills this way.

So every job message ledgerpush publishes (Python `enqueue`, `ledgerpush enqueue`,
`POST /api/jobs`, resends, retries: Celery's `before_task_publish`) is first written
here, per queue, with Redis's clock and a token that the message carries in its headers
(`lp_outbox`). When a worker receives that message, kombu has recorded it as
unacknowledged; the entry is marked *received* and the queue's *seen* mark rises to the
time the job was sent. The entry itself goes only once the job's row is in the ledger
(the pipeline's accept step): until then the job exists nowhere else that lasts, and a
delivery that fails before the row is written (the database is down) must not be the
end of it. A queue is first in, first out: once a message sent later has been received,
every message sent earlier has been taken off the queue too (and when the queue is
empty, every one sent so far has). An entry older than that by the reconciler's grace
belongs to a message lost on its way — unless it was received within the last
visibility timeout (plus that grace): such a message is kombu's to hand out again, and
only when it has had that long does the reconciler send the job again (or drop the
entry if the job is in the ledger after all). Only the message an entry was written for
moves the mark: restored messages do not, as they do not queue behind the others. A job
with an entry not yet received has a message on its way, so the reconciler does not
send it again for being overdue (a received one is kombu's, as before this module). Jobs pushed onto Redis by other producers (raw LPUSH) bypass this: for
them a worker crash in that window still loses the message.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from redis.client import Pipeline
from redis.exceptions import RedisError

from worker.settings import get_settings
from worker.tasknames import QUEUE_FOR_TASK, TASK_FOR_KIND
from worker.transport.redis_client import get_redis

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
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""
# The message carrying token ARGV[2] was received: raise the seen mark, note the time.
_RECEIVED = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry or string.sub(entry, 1, 32) ~= ARGV[2] then return 0 end
local ts = redis.call('ZSCORE', KEYS[2], ARGV[1])
local seen = tonumber(redis.call('GET', KEYS[3]) or '0')
if ts and tonumber(ts) > seen then redis.call('SET', KEYS[3], ts) end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[4], tonumber(now[1]) + tonumber(now[2]) / 1000000, ARGV[1])
return 1
"""
# The job is in the ledger: its entry goes, whichever message it was written for.
_ACCEPTED = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""


def queue_for(kind: str) -> str:
    return QUEUE_FOR_TASK[TASK_FOR_KIND[kind]]


def _keys(queue: str) -> list[str]:
    """Entries, their send times, the seen mark, receipt times."""
    return [
        f"lp:outbox:{queue}",
        f"lp:outbox:sent:{queue}",
        f"lp:outbox:seen:{queue}",
        f"lp:outbox:received:{queue}",
    ]


def record(queue: str, job_id: str, kind: str, payload: dict[str, Any]) -> dict[str, str]:
    """Before a job's message is published: remember it until a worker receives it.
    Returns the headers the message must carry."""
    token = uuid.uuid4().hex
    entry = token + json.dumps({"kind": kind, "payload": payload})
    entries, sent, _, received = _keys(queue)
    get_redis().eval(_RECORD, 4, entries, sent, QUEUES_KEY, received, job_id, entry, queue)
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
    return sorted(q.decode() if isinstance(q, bytes) else str(q) for q in raw)  # type: ignore[union-attr, unused-ignore]


def pending(job_ids: list[str]) -> set[str]:
    """The jobs among `job_ids` whose latest message has not been received yet."""
    if not job_ids:
        return set()
    pipe = get_redis().pipeline(transaction=False)
    for queue in queues():
        entries, _, _, received = _keys(queue)
        for job_id in job_ids:
            pipe.hexists(entries, job_id)
            pipe.zscore(received, job_id)
    found = pipe.execute()
    # A received message is kombu's now: it is no longer on its way.
    return {
        job_ids[(i // 2) % len(job_ids)]
        for i in range(0, len(found), 2)
        if found[i] and found[i + 1] is None
    }


def accepted(queue: str, job_id: str) -> bool:
    """Forget the job: it is in the ledger now. True if an entry went."""
    return bool(get_redis().eval(_ACCEPTED, 4, *_keys(queue), job_id))


def queue_accepted(pipe: Pipeline, queue: str, job_id: str) -> None:
    """`accepted` as a command of `pipe` (its answer: 1 if an entry went)."""
    pipe.eval(_ACCEPTED, 4, *_keys(queue), job_id)


def on_task_received(request: Any = None, **_: Any) -> None:
    """Celery's `task_received` signal, in the consumer, right after kombu recorded the
    message as unacknowledged: from here on the visibility timeout brings it back. (A
    message may wait long after this for a free thread, or for its countdown.) The entry
    stays until the pipeline has the job's ledger row."""
    if request is None:
        return
    message = getattr(request, "message", None)
    token = ((getattr(message, "headers", None) or {}) if message else {}).get(HEADER)
    queue = (getattr(request, "delivery_info", None) or {}).get("routing_key")
    if not token or not queue:
        return
    try:
        get_redis().eval(_RECEIVED, 4, *_keys(str(queue)), str(request.id), str(token))
    except RedisError as exc:  # the mark rises with the next message received
        log.warning("could not note the receipt of job %s: %s", request.id, exc)


def _not_held(redis: Any, received_key: str, ids: list[str], since: float) -> list[str]:
    """The jobs among `ids` not received after `since` (kombu may still hold those)."""
    if not ids:
        return ids
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.zscore(received_key, job_id)
    received = pipe.execute()
    return [i for i, at in zip(ids, received, strict=True) if at is None or at < since]


def overdue(
    queue: str, grace: float, limit: int = 500, held_for: float | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """Jobs sent more than `grace` seconds before the latest message received from
    `queue`: taken off the queue without being received, or never published, or
    received but not in the ledger `held_for` (default: the visibility timeout) plus
    `grace` seconds later."""
    redis: Any = get_redis()  # redis-py types sync answers as `Awaitable | value`
    entries_key, sent_key, seen_key, received_key = _keys(queue)
    seen = float(redis.get(seen_key) or 0)
    seconds, micros = redis.time()
    now = seconds + micros / 1_000_000
    if redis.llen(queue) == 0:
        seen = now
    if held_for is None:
        held_for = float(get_settings().visibility_timeout)
    ids = [
        i.decode() if isinstance(i, bytes) else str(i)
        for i in redis.zrangebyscore(sent_key, "-inf", seen - grace, start=0, num=limit)
    ]
    ids = _not_held(redis, received_key, ids, now - held_for - grace)
    found: list[tuple[str, str, dict[str, Any]]] = []
    for job_id, raw in zip(ids, redis.hmget(entries_key, ids) if ids else [], strict=True):
        if raw is None:
            redis.zrem(sent_key, job_id)
            continue
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        entry = json.loads(text[_TOKEN:])
        found.append((job_id, str(entry["kind"]), dict(entry["payload"])))
    return found
