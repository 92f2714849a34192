"""A circuit breaker per accounting system, shared by every worker through Redis.

One tenant's 503s are its own business: its jobs are retried as usual. When requests to
one provider fail with 5xx, time-outs or refused connections (its token endpoint
included) for several tenants at once, the provider is down: the circuit *opens*, and
jobs for that provider are held (`retry_scheduled`, code `provider_outage`) without an
attempt being counted, so an outage of any length dead-letters nothing.

- closed: jobs run. A provider failure is noted per tenant; when within
  `LEDGERPUSH_CIRCUIT_WINDOW_SECONDS` at least `CIRCUIT_MIN_FAILURES` failures from
  `CIRCUIT_MIN_TENANTS` distinct tenants make up `CIRCUIT_FAILURE_RATIO` of the requests
  seen (answered ones count from the first failure on), the circuit opens (one alert).
- open: jobs are held until `CIRCUIT_OPEN_SECONDS` have passed since the last failure.
- half-open: then exactly one job (a Redis key set NX, expiring with the job's lease)
  runs as the probe; every other job stays held. When the probe's request is answered,
  the circuit closes (one alert); when it fails, the circuit stays open for another period.

After closing, held jobs are let through oldest first (by the time the ledger accepted
them), `CIRCUIT_RELEASE_BATCH` at a time, and then take their rate-limit slots as usual.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.commands.core import Script
from redis.exceptions import RedisError

from worker.ops import alerts
from worker.providers import registry
from worker.providers.base import Call, ProviderError, Transient
from worker.settings import Settings, get_settings
from worker.transport.redis_client import (
    Finish,
    get_redis,
    nothing_queued,
    queue_script,
    script_answer,
)

log = logging.getLogger("ledgerpush.circuit")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
#: Error codes that say the provider (not the tenant, not the job) failed to answer.
OUTAGE_CODES = frozenset(
    {
        "provider_unavailable",  # 5xx
        "timeout",
        "connection_error",
        "token_endpoint_error",
        "token_endpoint_unreachable",
    }
)
#: A held job that has not come back for this long is no longer waited for when
#: releasing (its message was lost or it was cancelled); the reconciler finds it.
STALE_HELD_MS = 120_000
_scripts: dict[str, Script] = {}

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Answers are counted per request: a run that failed after some answered requests adds
# those as successes, so a provider failing a few requests in a hundred never trips.
_ADD_ANSWERS = """
local function add_answers(hash, zset, job, count, window, now)
  if count < 1 then return end
  local last = redis.call('HINCRBY', hash, 'seq', count)
  for seq = last - count + 1, last do redis.call('ZADD', zset, now, job .. ':' .. seq) end
  redis.call('PEXPIRE', zset, window)
end
"""

# KEYS: state hash, failures, failing tenants, successes, probe.
# ARGV: tenant, job id, window ms, min tenants, min failures, ratio, open ms, reason,
# requests of this run that were answered.
_FAILURE = (
    _NOW
    + _ADD_ANSWERS
    + """
if redis.call('HGET', KEYS[1], 'state') == 'open' then
  if redis.call('GET', KEYS[5]) == ARGV[2] then
    redis.call('DEL', KEYS[5])
    redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[7]), 'reason', ARGV[8])
    return 'reopened'
  end
  return 'open'
end
local from = now - tonumber(ARGV[3])
for i = 2, 4 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', from) end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('ZADD', KEYS[2], now, ARGV[2] .. ':' .. seq)
redis.call('ZADD', KEYS[3], now, ARGV[1])
for i = 2, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
add_answers(KEYS[1], KEYS[4], ARGV[2], tonumber(ARGV[9]), ARGV[3], now)
local failures = redis.call('ZCARD', KEYS[2])
local answered = failures + redis.call('ZCARD', KEYS[4])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) and failures >= tonumber(ARGV[5])
    and failures >= tonumber(ARGV[6]) * answered then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now,
             'open_until', now + tonumber(ARGV[7]), 'reason', ARGV[8])
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  return 'opened'
end
return 'closed'
"""
)

# KEYS: state hash, failures, successes, probe. ARGV: job id, window ms, answered requests.
# Returns the time the circuit opened (ms) when this success closed it, else 0.
_SUCCESS = (
    _NOW
    + _ADD_ANSWERS
    + """
if redis.call('HGET', KEYS[1], 'state') == 'open' then
  if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
  local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at')) or now
  redis.call('DEL', KEYS[1], KEYS[4])
  return opened
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  add_answers(KEYS[1], KEYS[3], ARGV[1], tonumber(ARGV[3]), ARGV[2], now)
end
return 0
"""
)

# KEYS: state hash, probe, held (job -> age score), seen (job -> last hold).
# ARGV: job id, age score, probe ttl ms, release batch, stale ms.
# Returns {verdict, wait ms}: go, probe, hold (circuit open) or release (wait your turn).
_ADMIT = (
    _NOW
    + """
local job = ARGV[1]
if redis.call('HGET', KEYS[1], 'state') == 'open' then
  local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until')) or now
  if now >= open_until and redis.call('SET', KEYS[2], job, 'NX', 'PX', ARGV[3]) then
    redis.call('ZREM', KEYS[3], job)
    redis.call('ZREM', KEYS[4], job)
    return {'probe', 0}
  end
  redis.call('ZADD', KEYS[3], 'NX', ARGV[2], job)
  redis.call('ZADD', KEYS[4], now, job)
  return {'hold', math.max(open_until - now, 0)}
end
if redis.call('ZCARD', KEYS[3]) == 0 then return {'go', 0} end
for _, stale in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[5]))) do
  redis.call('ZREM', KEYS[3], stale)
  redis.call('ZREM', KEYS[4], stale)
end
redis.call('ZADD', KEYS[3], 'NX', ARGV[2], job)
if redis.call('ZRANK', KEYS[3], job) < tonumber(ARGV[4]) then
  redis.call('ZREM', KEYS[3], job)
  redis.call('ZREM', KEYS[4], job)
  return {'go', 0}
end
redis.call('ZADD', KEYS[4], now, job)
return {'release', 0}
"""
)

# KEYS: probe. ARGV: job id. A probe that got no answer either way gives its turn up.
_GIVE_UP_PROBE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Admission:
    """`verdict`: go, probe (the one request of a half-open circuit), hold (open) or
    release (closed again, older held jobs go first); `wait` in seconds for the last two."""

    verdict: str
    wait: float = 0.0

    @property
    def held(self) -> bool:
        return self.verdict in ("hold", "release")


@dataclass(frozen=True)
class Status:
    provider: str
    state: str
    opened_at: dt.datetime | None = None
    reason: str | None = None
    held: int = 0

    @property
    def is_open(self) -> bool:
        return self.state != CLOSED


def _keys(provider: str) -> dict[str, str]:
    base = f"lp:circuit:{provider}"
    names = ("failures", "tenants", "successes", "probe", "held", "seen")
    return {"state": base, **{name: f"{base}:{name}" for name in names}}


def is_outage(error: ProviderError) -> bool:
    return isinstance(error, Transient) and error.code in OUTAGE_CODES


def answered(calls: Sequence[Call]) -> int:
    """How many requests of this run the provider answered (below 500)."""
    return sum(1 for call in calls if call.status is not None and call.status < 500)


class Breaker:
    def __init__(
        self, provider: str, redis: Redis | None = None, settings: Settings | None = None
    ) -> None:
        self.provider = provider
        self.keys = _keys(provider)
        self.redis = redis or get_redis()
        self.settings = settings or get_settings()

    def _eval(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return self._script(script)(keys=keys, args=args, client=self.redis)

    def _script(self, text: str) -> Script:
        # Registered once per process (a Script hashes its text when made).
        script = _scripts.get(text)
        if script is None:
            script = _scripts[text] = self.redis.register_script(text)
        return script

    def admit(self, job_id: str, age: float, probe_ttl: float) -> Admission:
        """May this job send requests now? `age`: when it was accepted (epoch seconds)."""
        k = self.keys
        verdict, wait_ms = self._eval(
            _ADMIT,
            [k["state"], k["probe"], k["held"], k["seen"]],
            [
                job_id,
                int(age * 1000),
                int(probe_ttl * 1000),
                self.settings.circuit_release_batch,
                STALE_HELD_MS,
            ],
        )
        return Admission(_text(verdict), int(wait_ms) / 1000)

    def failure(self, tenant_id: str, job_id: str, reason: str, answered: int = 0) -> str:
        """Note a provider failure (after `answered` requests of the run were answered);
        returns opened, reopened, open or closed."""
        s = self.settings
        k = self.keys
        result = self._eval(
            _FAILURE,
            [k["state"], k["failures"], k["tenants"], k["successes"], k["probe"]],
            [
                tenant_id,
                job_id,
                int(s.circuit_window_seconds * 1000),
                s.circuit_min_tenants,
                s.circuit_min_failures,
                s.circuit_failure_ratio,
                int(s.circuit_open_seconds * 1000),
                reason[:300],
                answered,
            ],
        )
        return _text(result)

    def success(self, job_id: str, answered: int = 1) -> float | None:
        """Note `answered` answered requests of a run; returns how long the circuit was
        open if this closed it."""
        return _down_for(self._eval(_SUCCESS, *self._success_call(job_id, answered)))

    def _success_call(self, job_id: str, answered: int) -> tuple[list[str], list[Any]]:
        k = self.keys
        keys = [k["state"], k["failures"], k["successes"], k["probe"]]
        return keys, [job_id, int(self.settings.circuit_window_seconds * 1000), answered]

    def give_up_probe(self, job_id: str) -> None:
        self._eval(_GIVE_UP_PROBE, [self.keys["probe"]], [job_id])

    def status(self) -> Status:
        k = self.keys
        pipe = self.redis.pipeline()
        pipe.hgetall(k["state"])
        pipe.exists(k["probe"])
        pipe.zcard(k["held"])
        fields, probing, held = pipe.execute()
        info = {_text(key): _text(value) for key, value in fields.items()}
        if info.get("state") != OPEN:
            return Status(self.provider, CLOSED, held=int(held))
        opened = dt.datetime.fromtimestamp(int(info["opened_at"]) / 1000, dt.UTC)
        state = HALF_OPEN if probing else OPEN
        return Status(self.provider, state, opened, info.get("reason"), int(held))

    def reset(self) -> None:
        self.redis.delete(*self.keys.values())


def _down_for(opened_ms: Any) -> float | None:
    """How long the circuit was open, from the success script's answer (0: still closed)."""
    if not int(opened_ms):
        return None
    now_ms = dt.datetime.now(dt.UTC).timestamp() * 1000
    return max(now_ms - int(opened_ms), 0) / 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def admit(provider: str, job_id: str, accepted_at: dt.datetime, probe_ttl: float) -> Admission:
    """The pipeline asks before a job's attempt; Redis unreachable: let it run (the
    breaker protects the provider, it must not become a reason to stop)."""
    if not get_settings().circuit_breaker:
        return Admission("go")
    if accepted_at.tzinfo is None:
        accepted_at = accepted_at.replace(tzinfo=dt.UTC)
    try:
        return Breaker(provider).admit(job_id, accepted_at.timestamp(), probe_ttl)
    except RedisError as exc:
        log.warning("circuit of %s not readable (%s); the job runs", provider, exc)
        return Admission("go")


def observe(
    provider: str, tenant_id: str, job_id: str, error: ProviderError | None, calls: Sequence[Call]
) -> bool:
    """Feed one run's result to the provider's breaker (alerting on a change); returns
    whether the circuit is open now, for an outage error: the job is held, not retried."""
    if not get_settings().circuit_breaker:
        return False
    breaker = Breaker(provider)
    try:
        answers = answered(calls)
        if error is not None and is_outage(error):
            reason = f"{error.code}: {error.message}"
            state = breaker.failure(tenant_id, job_id, reason, answers)
            if state == "opened":
                _opened(provider, tenant_id, error)
            return state != CLOSED
        if answers:
            down_for = breaker.success(job_id, answers)
            if down_for is not None:
                _closed(provider, down_for)
        else:
            breaker.give_up_probe(job_id)
    except RedisError as exc:
        log.warning("circuit of %s not updated (%s)", provider, exc)
    return False


def queue_observed(pipe: Pipeline, provider: str, job_id: str, calls: Sequence[Call]) -> Finish:
    """`observe` of a run that ended without an outage error, on a batch of the job's
    last commands (nothing waits for its answer)."""
    if not get_settings().circuit_breaker:
        return nothing_queued
    breaker = Breaker(provider)
    answers = answered(calls)
    if answers:
        keys, args = breaker._success_call(job_id, answers)
        script = breaker._script(_SUCCESS)
    else:
        keys, args, script = [breaker.keys["probe"]], [job_id], breaker._script(_GIVE_UP_PROBE)
    queue_script(pipe, script, keys, args)
    return functools.partial(_observed, breaker, bool(answers), (script, keys, args))


def _observed(
    breaker: Breaker,
    success: bool,
    call: tuple[Script, list[Any], list[Any]],
    answers: list[Any],
) -> None:
    try:
        answer = script_answer(answers[0], *call, breaker.redis)
    except RedisError as exc:
        log.warning("circuit of %s not updated (%s)", breaker.provider, exc)
        return
    down_for = _down_for(answer) if success else None
    if down_for is not None:
        _closed(breaker.provider, down_for)


def _opened(provider: str, tenant_id: str, error: ProviderError) -> None:
    log.error("circuit of %s opened: %s (last from tenant %s)", provider, error.code, tenant_id)
    with _alert_errors_logged():
        alerts.provider_circuit_opened(provider, f"{error.code}: {error.message}")


def _closed(provider: str, down_for: float) -> None:
    log.warning("circuit of %s closed after %.0fs: it answers again", provider, down_for)
    with _alert_errors_logged():
        alerts.provider_circuit_closed(provider, down_for)


@contextlib.contextmanager
def _alert_errors_logged() -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # an alert must not fail the job that tripped it
        log.warning("circuit alert not sent: %s: %s", type(exc).__name__, exc)


def statuses() -> list[Status]:
    return [Breaker(provider).status() for provider in registry.names()]
