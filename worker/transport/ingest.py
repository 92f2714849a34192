"""The plain ingest list: `LPUSH ledgerpush.ingest '<job JSON>'` from any language, no
Celery envelope to get wrong.

A drainer takes one entry at a time with `BLMOVE` from `ledgerpush.ingest` into its own
processing list (`ledgerpush.ingest.processing.<drainer>`), so an entry is always in
Redis, in one list or the other, until it is handled:

1. read with the safe loader (worker/safejson.py); not UTF-8, not JSON, too large, too
   deep, NaN/Infinity, huge numbers, not an object: the entry goes to the poison list
   `ledgerpush.poison` with the reason (and leaves the processing list in the same
   transaction);
2. validated against the job contract; a job that breaks it is kept in the ledger as a
   `failed` job with reason `invalid_payload` naming the fields, as on the Celery path
   (unless the ledger has a job with its tenant and key: then it goes to the poison
   list rather than fail that job);
3. recorded in the ledger (`received`), then published through `worker.transport.producer.send`,
   the path of the Python helper: the tenant's fair share and the outbox apply;
4. removed from the processing list.

A drainer killed anywhere in between leaves its entry in its processing list. Every
drainer beats a heartbeat (`lp:ingest:drainers`, Redis's clock); any drainer, at start
and every few seconds, moves the entries of drainers silent for `HEARTBEAT_TIMEOUT`
back onto the ingest list, where they are taken again. Taking one twice is harmless: the
ledger's (tenant, idempotency key) uniqueness makes the second record find the first,
and a job already recorded is published again only while it has not started and no
message of it is on its way (the outbox). A ledger or broker that is unreachable leaves
the entry where it is; the drainer tries it again with backoff, without poisoning it.

Where it runs: a thread in every worker process (a Celery bootstep), on by default
(`LEDGERPUSH_INGEST_DRAINER=false` turns it off), so a deployment that runs workers
drains the list with nothing more to start, and it scales and fails with the workers;
`ledgerpush ingest` runs a drainer on its own.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from celery import bootsteps
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from worker import safejson
from worker.jobs import JobValidationError, job_id_for, parse_job
from worker.ledger import store
from worker.ledger.models import RECEIVED
from worker.pipeline import _record_invalid
from worker.settings import get_settings
from worker.transport import outbox, poison
from worker.transport.producer import send
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.ingest")
INGEST_QUEUE = "ledgerpush.ingest"
POISON_QUEUE = poison.POISON_KEY
PROCESSING_PREFIX = f"{INGEST_QUEUE}.processing."
DRAINERS_KEY = "lp:ingest:drainers"
HEARTBEAT_TIMEOUT = 15.0
HEARTBEAT_EVERY = 1.0
RECOVER_EVERY = 5.0
BLOCK_SECONDS = 1.0
MAX_BACKOFF = 30.0
# The ledger or broker is away: the entry stays in the processing list and is tried again.
UNAVAILABLE = (RedisError, BrokerError, SQLAlchemyError, OSError)

_BEAT = """
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
return 1
"""
# KEYS[1]: the drainers' heartbeats, KEYS[2]: the ingest list. ARGV: timeout, prefix.
# The oldest entry taken ends up where the next BLMOVE takes from (the right).
_RECOVER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local moved = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))) do
  local list = ARGV[2] .. id
  while redis.call('LMOVE', list, KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
  redis.call('ZREM', KEYS[1], id)
end
return moved
"""


def to_poison(raw: bytes, reason: str, processing: str | None = None) -> None:
    """Move the entry to the poison list (worker/transport/poison.py), taking it off `processing`
    in the same transaction."""
    refused = poison.PoisonMessage("ingest_refused", reason)
    poison.quarantine(get_redis(), INGEST_QUEUE, raw, refused, taken_from=processing)


def recover(timeout: float = HEARTBEAT_TIMEOUT) -> int:
    """Move the entries of drainers silent for `timeout` seconds back onto the ingest
    list; returns how many."""
    redis: Any = get_redis()
    moved = int(redis.eval(_RECOVER, 2, DRAINERS_KEY, INGEST_QUEUE, timeout, PROCESSING_PREFIX))
    if moved:
        log.warning("recovered %s ingest entries of a drainer that stopped", moved)
    return moved


class Drainer:
    """Takes entries off the ingest list one at a time until `stop` is set."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.processing = PROCESSING_PREFIX + self.name
        self.stop = threading.Event()
        self._beaten = self._recovered = 0.0

    def run(self) -> None:
        log.info("draining %s (processing list %s)", INGEST_QUEUE, self.processing)
        failures = 0
        while not self.stop.is_set():
            try:
                self._tick()
                self.drain_one()
                failures = 0
            except Exception as exc:  # the thread must outlive any error: back off, go on
                failures += 1
                delay = min(MAX_BACKOFF, 0.5 * 2**failures)
                if isinstance(exc, UNAVAILABLE):
                    log.warning("ingest paused %.1fs, ledger or Redis unreachable: %s", delay, exc)
                else:
                    log.exception("ingest paused %.1fs after an unexpected error", delay)
                self.stop.wait(delay)
        self._leave()

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._beaten >= HEARTBEAT_EVERY:
            get_redis().eval(_BEAT, 1, DRAINERS_KEY, self.name)
            self._beaten = now
        if now - self._recovered >= RECOVER_EVERY:
            self._recovered = now
            recover()

    def drain_one(self, block: float = BLOCK_SECONDS) -> bool:
        """Handle this drainer's unfinished entry, or the next one; False if none came."""
        redis: Any = get_redis()
        raw = redis.lindex(self.processing, -1)
        if raw is None:
            raw = redis.blmove(INGEST_QUEUE, self.processing, block, "RIGHT", "LEFT")
        if raw is None:
            return False
        self.handle(bytes(raw))
        return True

    def handle(self, raw: bytes) -> None:
        try:
            outcome = ingest(raw)
        except UNAVAILABLE:
            raise
        except (safejson.UnsafeJSON, Refused) as exc:
            to_poison(raw, str(exc), self.processing)
            return
        except Exception as exc:  # a bug must not stop the list: keep the entry aside
            log.exception("ingest entry could not be handled")
            to_poison(raw, f"could not be ingested: {type(exc).__name__}: {exc}", self.processing)
            return
        redis: Any = get_redis()
        redis.lrem(self.processing, 1, raw)
        log.debug("ingest entry %s", outcome)

    def _leave(self) -> None:
        """Stopping: hand an unfinished entry back and leave the heartbeats."""
        try:
            redis: Any = get_redis()
            while redis.lmove(self.processing, INGEST_QUEUE, "LEFT", "RIGHT"):
                pass
            redis.zrem(DRAINERS_KEY, self.name)
        except RedisError as exc:
            log.warning("ingest drainer %s left without tidying up: %s", self.name, exc)


class Refused(ValueError):
    """The entry cannot be taken as a job (and is kept on the poison list)."""


def ingest(raw: bytes) -> str:
    """Record and publish one entry. Raises UnsafeJSON for an entry that is not a JSON
    object the loader accepts. Returns what happened: sent, already_sent or invalid."""
    data = safejson.loads(raw)
    if not isinstance(data, dict):
        problem = safejson.Problem("(body)", "a job is a JSON object")
        raise safejson.UnsafeJSON([problem])
    try:
        job = parse_job(data)
    except JobValidationError as exc:
        existing = _existing(data)
        if existing:
            # Recording it would fail the valid job of the same tenant and key.
            raise Refused(f"breaks the contract ({exc}), and job {existing} has its key") from None
        _record_invalid(data, exc)
        return "invalid"
    payload = job.model_dump(mode="json")
    row, created = store.accept_job(
        job.job_id, job.tenant_id, job.idempotency_key, job.kind, payload, dt.datetime.now(dt.UTC)
    )
    if created or (row.state == RECEIVED and not _on_its_way(job.job_id)):
        send(payload, job.kind, job.job_id)
        return "sent"
    return "already_sent"


def _existing(data: dict[str, Any]) -> str | None:
    """The id of the ledger's job with this payload's tenant and key, if there is one."""
    tenant, key = data.get("tenant_id"), data.get("idempotency_key")
    if not isinstance(tenant, str) or not isinstance(key, str):
        return None
    job_id = job_id_for(tenant, key)
    return job_id if store.find_job(job_id) is not None else None


def _on_its_way(job_id: str) -> bool:
    return bool(outbox.pending([job_id]))


def start_drainer(name: str | None = None) -> tuple[Drainer, threading.Thread]:
    drainer = Drainer(name)
    thread = threading.Thread(target=drainer.run, name="ledgerpush-ingest", daemon=True)
    thread.start()
    return drainer, thread


class IngestStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Runs a drainer thread beside the worker's pool while the worker runs."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.running: tuple[Drainer, threading.Thread] | None = None

    def start(self, parent: Any) -> None:
        if get_settings().ingest_drainer:
            self.running = start_drainer()

    def stop(self, parent: Any) -> None:
        if self.running is not None:
            drainer, thread = self.running
            drainer.stop.set()
            thread.join(BLOCK_SECONDS + 10)  # the entry in hand, then hand back and leave
