"""Poison messages: whatever arrives on a ledgerpush queue that no task can run.

Each raw message is checked as the worker takes it off its Redis list (worker/transport/broker.py),
before kombu or Celery parse it: a message that would crash the worker, vanish with a
log line, or be redelivered forever is moved instead to the Redis list `ledgerpush.poison`
with its raw bytes, its queue, the time and the reason, and the worker logs one line.
A body that decodes but breaks the job contract is not poison: the job task keeps it
as a failed job with reason `invalid_payload`.

An entry is one JSON object (newest first, `LPUSH`):
`{"id", "queue", "at", "reason", "detail", "size", "raw"}`, with `raw_base64` instead of
`raw` when the bytes are not UTF-8. Operators download, fix and re-inject entries from
the dashboard's dead letters; each action is kept in an audit list.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import inspect
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kombu.exceptions import DecodeError
from kombu.serialization import loads as kombu_loads

from worker.settings import get_settings
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.poison")
POISON_KEY = "ledgerpush.poison"
QUEUE_PREFIX = "ledgerpush."  # the queues whose messages are checked
TOTAL_KEY = "lp:poison:total"  # hash: reason -> messages ever poisoned
BURST_KEY = "lp:poison:burst"  # present while poison keeps arriving
BURSTS_KEY = "lp:poison:bursts"  # bursts ever begun (one alert each)
AUDIT_KEY = "lp:poison:audit"
AUDIT_KEEP = 1000
BURST_QUIET_SECONDS = 900  # a burst ends after this long without a poison message
MAX_DEPTH = 64  # a job is about 6 levels deep; deeper is an attack or a bug
ACCEPTED_CONTENT = "application/json"
DETAIL_MAX = 1000
MAX_JOB_GUESS_BYTES = 1_048_576  # larger entries are not searched for a job to prefill
_SCAN_CHUNK = 200

REASONS = {
    "oversized": "larger than LEDGERPUSH_MAX_MESSAGE_BYTES",
    "not_json": "not a JSON text",
    "too_deep": f"JSON nested deeper than {MAX_DEPTH} levels",
    "wrong_envelope": "not a Celery message envelope",
    "not_base64": "body is not valid base64",
    "undecodable_body": "body cannot be decoded as JSON",
    "unknown_task": "names a task this worker does not have",
    "wrong_arguments": "arguments do not fit the task",
    "rejected_by_celery": "Celery could not take the message",
    "ingest_refused": "an entry of the ingest list that is not a job (worker/transport/ingest.py)",
}


class PoisonMessage(Exception):
    """A message no task can run; `reason` is a key of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:DETAIL_MAX]


class EntryNotFound(LookupError):
    """No poison entry with this id (already re-injected or discarded)."""


@dataclass(frozen=True)
class Entry:
    id: str
    queue: str
    at: str
    reason: str
    detail: str
    size: int
    raw: bytes

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")


# --- the check -------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit` in a JSON text, counted
    without recursion (strings left out)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # an ordinary message: no need to scan
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _json(text: str, what: str, reason: str) -> Any:
    if too_deep(text):
        raise PoisonMessage("too_deep", f"the {what} nests deeper than {MAX_DEPTH} levels")
    try:
        return kombu_loads(text, ACCEPTED_CONTENT, "utf-8", accept=[ACCEPTED_CONTENT])  # type: ignore[no-untyped-call]
    except (DecodeError, ValueError, RecursionError) as exc:
        raise PoisonMessage(reason, f"the {what} is not JSON: {exc}") from None


def check(raw: bytes, tasks: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """The envelope of a message that a worker with `tasks` can run; PoisonMessage if not."""
    if len(raw) > max_bytes:
        raise PoisonMessage("oversized", f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PoisonMessage("not_json", f"the message is not UTF-8 text: {exc}") from None
    envelope = _json(text, "message", "not_json")
    properties = _envelope_properties(envelope)
    body = _body(envelope, properties)
    name, args, kwargs = _task_call(envelope, body)
    task = tasks.get(name)
    if task is None:
        raise PoisonMessage("unknown_task", f"no task named {name!r}")
    _check_arguments(name, task, args, kwargs)
    return dict(envelope)


def _envelope_properties(envelope: Any) -> dict[str, Any]:
    if not isinstance(envelope, dict):
        raise PoisonMessage("wrong_envelope", f"a JSON {type(envelope).__name__}, not an object")
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        raise PoisonMessage("wrong_envelope", "no 'properties' object")
    tag = properties.get("delivery_tag")
    if not isinstance(tag, str | int) or isinstance(tag, bool) or tag == "":
        raise PoisonMessage("wrong_envelope", "'properties.delivery_tag' is missing")
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not {"exchange", "routing_key"} <= info.keys():
        raise PoisonMessage(
            "wrong_envelope", "'properties.delivery_info' needs 'exchange' and 'routing_key'"
        )
    if not isinstance(envelope.get("headers", {}), dict):
        raise PoisonMessage("wrong_envelope", "'headers' is not an object")
    return properties


def _body(envelope: dict[str, Any], properties: dict[str, Any]) -> Any:
    body = envelope.get("body")
    if not isinstance(body, str) or not body:
        raise PoisonMessage("wrong_envelope", "'body' is missing or not a string")
    content_type = envelope.get("content-type")
    if content_type != ACCEPTED_CONTENT:
        raise PoisonMessage(
            "undecodable_body",
            f"content-type {content_type!r}, only {ACCEPTED_CONTENT} is accepted",
        )
    encoding = properties.get("body_encoding")
    if encoding == "base64":
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PoisonMessage("not_base64", f"the body is not base64: {exc}") from None
    elif encoding in (None, ""):
        data = body.encode("utf-8")
    else:
        raise PoisonMessage("wrong_envelope", f"unknown body_encoding {encoding!r}")
    charset = envelope.get("content-encoding") or "utf-8"
    try:
        text = data.decode(charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise PoisonMessage("undecodable_body", f"the body is not {charset}: {exc}") from None
    return _json(text, "body", "undecodable_body")


def _task_call(envelope: dict[str, Any], body: Any) -> tuple[str, Any, Any]:
    headers = envelope.get("headers") or {}
    if "task" in headers:  # Celery message protocol 2
        if not headers.get("id"):
            raise PoisonMessage("wrong_envelope", "'headers.id' (the task id) is missing")
        if not isinstance(body, list | tuple) or len(body) != 3:
            raise PoisonMessage(
                "wrong_arguments", "the body must be [args, kwargs, embed], a list of three"
            )
        args, kwargs, embed = body
        if not isinstance(embed, dict | None):
            raise PoisonMessage("wrong_arguments", "the body's third item must be an object")
        return str(headers["task"]), args, kwargs
    if isinstance(body, dict) and "task" in body and body.get("id"):  # protocol 1
        return str(body["task"]), body.get("args", []), body.get("kwargs", {})
    raise PoisonMessage("wrong_envelope", "no task name ('headers.task')")


def _check_arguments(name: str, task: Any, args: Any, kwargs: Any) -> None:
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise PoisonMessage("wrong_arguments", "args must be a list and kwargs an object")
    try:
        _signature(name, task).bind(*args, **kwargs)
    except TypeError as exc:
        raise PoisonMessage("wrong_arguments", f"{name}: {exc}") from None


@functools.cache
def _signature(name: str, task: Any) -> inspect.Signature:
    return inspect.signature(task.run)


def known_tasks() -> Mapping[str, Any]:
    """The tasks a ledgerpush worker runs (imported here too, outside a worker)."""
    from worker.transport.app import app  # the app imports this module through its broker transport

    app.loader.import_default_modules()
    tasks: Mapping[str, Any] = app.tasks
    return tasks


# --- the list --------------------------------------------------------------------------


def quarantine(
    redis: Any, queue: str, raw: bytes, poison: PoisonMessage, taken_from: str | None = None
) -> str:
    """Move a raw message to the poison list (and off the list `taken_from`, in the same
    transaction), count it, and raise an alert when it starts a burst. Returns the
    entry's id."""
    entry_id = uuid.uuid4().hex
    at = dt.datetime.now(dt.UTC).isoformat()
    entry: dict[str, Any] = {
        "id": entry_id,
        "queue": queue,
        "at": at,
        "reason": poison.reason,
        "detail": poison.detail,
        "size": len(raw),
    }
    try:
        entry["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["raw_base64"] = base64.b64encode(raw).decode("ascii")
    pipe = redis.pipeline()
    pipe.lpush(POISON_KEY, json.dumps(entry))
    pipe.hincrby(TOTAL_KEY, poison.reason, 1)
    pipe.set(BURST_KEY, at, nx=True, ex=BURST_QUIET_SECONDS)
    pipe.expire(BURST_KEY, BURST_QUIET_SECONDS)
    if taken_from:
        pipe.lrem(taken_from, 1, raw)
    starts_burst = pipe.execute()[2]
    log.warning(
        "poison message on %s moved to %s as %s (%s: %s)",
        queue,
        POISON_KEY,
        entry_id,
        poison.reason,
        poison.detail,
    )
    if starts_burst:
        redis.incr(BURSTS_KEY)
        _alert_in_background(queue, poison.reason)
    return entry_id


def _alert_in_background(queue: str, reason: str) -> None:
    """The alert writes to the ledger and publishes a webhook task: not in the consumer's
    loop, which must go on taking messages."""

    def send() -> None:
        from worker.ops import alerts  # alerts send by name through the app, which imports this

        try:
            alerts.poison_messages(queue, reason)
        except Exception as exc:
            log.warning("could not raise the poison-message alert: %s: %s", type(exc).__name__, exc)

    threading.Thread(target=send, name="poison-alert", daemon=True).start()


def _entry(raw: bytes | str) -> Entry:
    data = json.loads(raw)
    if "raw" in data:
        message = str(data["raw"]).encode("utf-8")
    else:
        message = base64.b64decode(str(data.get("raw_base64", "")))
    return Entry(
        id=str(data["id"]),
        queue=str(data.get("queue", "")),
        at=str(data.get("at", "")),
        reason=str(data.get("reason", "")),
        detail=str(data.get("detail", "")),
        size=int(data.get("size", len(message))),
        raw=message,
    )


def _redis() -> Any:
    return get_redis()


def count() -> int:
    return int(_redis().llen(POISON_KEY))


def bursts() -> int:
    return int(_redis().get(BURSTS_KEY) or 0)


def totals() -> dict[str, int]:
    raw: dict[Any, Any] = _redis().hgetall(TOTAL_KEY)
    return {_text(k): int(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entries(limit: int = 50) -> list[Entry]:
    """The newest entries first."""
    return [_entry(raw) for raw in _redis().lrange(POISON_KEY, 0, limit - 1)]


def _stored(entry_id: str) -> Iterator[bytes]:
    prefix = json.dumps({"id": entry_id})[:-1].encode()
    redis, start = _redis(), 0
    while chunk := redis.lrange(POISON_KEY, start, start + _SCAN_CHUNK - 1):
        yield from (raw for raw in chunk if raw.startswith(prefix))
        start += _SCAN_CHUNK


def get(entry_id: str) -> Entry:
    for raw in _stored(entry_id):
        return _entry(raw)
    raise EntryNotFound(f"no poison message {entry_id}; it was re-injected or discarded")


# Take the entry off the poison list and, in the same step, push a message onto a queue
# (none when ARGV[2] is empty): a message is never in neither place, nor in both.
_TAKE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[2]) end
return 1
"""


def take(entry_id: str, message: bytes = b"") -> Entry:
    """Remove the entry from the list (and push `message` onto its queue); only one
    operator can take it."""
    for raw in _stored(entry_id):
        entry = _entry(raw)
        if _redis().eval(_TAKE, 2, POISON_KEY, entry.queue, raw, message):
            return entry
    raise EntryNotFound(f"no poison message {entry_id}; it was re-injected or discarded")


def reinject(entry_id: str, actor: str, fixed: bytes | None = None) -> Entry:
    """Push the message (or its fixed version) back onto its queue, once it passes the
    check. PoisonMessage says why it still would not; nothing changes then."""
    entry = get(entry_id)
    message = entry.raw if fixed is None else fixed
    check(message, known_tasks(), get_settings().max_message_bytes)
    taken = take(entry_id, message)
    audit(actor, "reinjected" if fixed is None else "reinjected after fixing", taken)
    return taken


def discard(entry_id: str, actor: str) -> Entry:
    taken = take(entry_id)
    audit(actor, "discarded", taken)
    return taken


def audit(actor: str, action: str, entry: Entry) -> None:
    record = {
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "actor": actor,
        "action": action,
        "entry": entry.id,
        "queue": entry.queue,
        "reason": entry.reason,
    }
    pipe = _redis().pipeline()
    pipe.lpush(AUDIT_KEY, json.dumps(record))
    pipe.ltrim(AUDIT_KEY, 0, AUDIT_KEEP - 1)
    pipe.execute()
    log.info("poison message %s %s by %s", entry.id, action, actor)


def audit_trail(limit: int = 20) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in _redis().lrange(AUDIT_KEY, 0, limit - 1)]


def job_in(entry: Entry) -> str | None:
    """The job a poison message seems to carry, as JSON text for an operator to fix:
    the first argument of a Celery message, or the message itself when it is a bare
    job object. None when there is nothing recognisable."""
    if entry.size > MAX_JOB_GUESS_BYTES:
        return None
    try:
        found = _job_candidate(entry.raw.decode("utf-8"))
    except (PoisonMessage, UnicodeDecodeError):
        return None
    return json.dumps(found, indent=2, ensure_ascii=False, default=str) if found else None


def _job_candidate(text: str) -> dict[str, Any] | None:
    message = _json(text, "message", "not_json")
    if not isinstance(message, dict):
        return None
    if "tenant_id" in message or "kind" in message:
        return message
    body = message.get("body")
    if not isinstance(body, str):
        return None
    try:
        decoded = _json(base64.b64decode(body, validate=True).decode(), "body", "not_json")
    except (binascii.Error, ValueError):
        return None
    if isinstance(decoded, list) and decoded and isinstance(decoded[0], list) and decoded[0]:
        first = decoded[0][0]
        return first if isinstance(first, dict) else None
    return None
