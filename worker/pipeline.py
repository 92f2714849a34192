"""accept → resolve → draft → book, each step idempotent.

The ledger is the source of truth. Before each remote write the step's *intent* is
committed; after it, the *result*. A run that finds an intent without a result looks
the document up remotely before writing again, so a worker killed between the write
and the record never causes a second document.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from redis.exceptions import LockError, RedisError

from worker import dependents
from worker.jobs import INVALID_PAYLOAD, JobValidationError, job_id_for, parse_job
from worker.ledger import store
from worker.ledger.models import (
    BOOKED,
    BOOKING,
    CANCELLED,
    DRAFTED,
    DRAFTING,
    FAILED,
    RESOLVING,
    RETRY_SCHEDULED,
    TERMINAL_STATES,
    WAITING_FOR_REAUTH,
    Job,
    Tenant,
    utcnow,
)
from worker.logs import log_context
from worker.ops import circuit
from worker.ops.alerts import job_failed
from worker.providers import limits, provider_for
from worker.providers.base import (
    PROVIDER_WAIT_CODES,
    SLOT_RESERVED_CODE,
    AnyJob,
    NeedsReauth,
    NeedsReview,
    NoAnswer,
    NotReady,
    Provider,
    ProviderError,
    ReferenceStale,
    Rejected,
    SlotReserved,
    Step,
    StepContext,
    Transient,
    Unsupported,
)
from worker.settings import Settings, get_settings
from worker.store_outage import describe, is_store_outage
from worker.tenancy import tenants
from worker.tenancy.connections import tenant_needs_reauth
from worker.transport import fairness, outbox, ratelimit, shutdown
from worker.transport.lease import JobLease, LeaseLost
from worker.transport.ratelimit import MAX_WAIT as RATE_LIMIT_MAX_WAIT
from worker.transport.redis_client import Batch, get_redis

log = logging.getLogger("ledgerpush.pipeline")
LEASE_RECHECK_SECONDS = 15.0
HAND_BACK_SECONDS = 1.0
#: A job held by an open provider circuit (worker/ops/circuit.py) shows this error code.
OUTAGE_CODE = "provider_outage"
HELD_REFRESH_SECONDS = 30.0
#: Error codes of attempts that waited rather than failed (besides NotReady's: its invoice,
#: another payment of it): the provider's own waits, an open provider circuit, a worker
#: shutting down or a soft time limit, another copy holding the lease, the ledger away,
#: an unanswered write settling before its lookup. The retry limit counts none of them.
NOT_THE_JOBS_FAILURE = PROVIDER_WAIT_CODES | {
    OUTAGE_CODE, SLOT_RESERVED_CODE, "handed_back", "time_limit", "lease_lost",
    "lease_unknown", "store_unavailable", "write_settling",
}  # fmt: skip
#: A job that gave up while its last write was unconfirmed (failed for review).
UNCONFIRMED_WRITE_CODE = "write_unconfirmed"


class HandedBack(Transient):
    """The worker is shutting down: the job stops before its next remote write."""


@dataclass(frozen=True)
class Outcome:
    state: str
    retry_in: float | None = None


def process(
    payload: Any,
    enqueued_at: float | None = None,
    worker: str = "local",
    queue: str | None = None,
    created_by_key: int | None = None,
    delivery_id: str | None = None,
) -> Outcome:
    """Run one delivery of a job message (taken from `queue`) to completion, a parked
    state, or a retry. `delivery_id`: the message's id, which leaves its tenant's pending
    count (worker/transport/fairness.py) when the delivery ends without a retry."""
    # The job's last Redis commands (waking dependents, the circuit's success, the lease
    # release, the pending count) go in one round trip once the job's state is committed.
    ending = Batch()
    outcome: Outcome | None = None
    try:
        outcome = _deliver(payload, enqueued_at, worker, queue, created_by_key, ending)
    finally:
        if outcome is not None and outcome.retry_in is None and delivery_id is not None:
            ending.add(
                functools.partial(fairness.queue_settled, payload=payload, job_id=delivery_id)
            )
        ending.send()
    return outcome


def _deliver(
    payload: Any,
    enqueued_at: float | None,
    worker: str,
    queue: str | None,
    created_by_key: int | None,
    ending: Batch,
) -> Outcome:
    try:
        job = parse_job(payload)
    except JobValidationError as exc:
        return _record_invalid(payload, exc)
    queued = dt.datetime.fromtimestamp(enqueued_at, dt.UTC) if enqueued_at else None
    row, created, tenant = store.accept_job_with_tenant(
        job.job_id,
        job.tenant_id,
        job.idempotency_key,
        job.kind,
        job.model_dump(mode="json"),
        queued,
        created_by_key,
    )
    with log_context(job_id=row.id, tenant=job.tenant_id, kind=job.kind):
        # The queue it came from: a tenant's backlog overflows to the bulk queue.
        entry_queue = queue or outbox.queue_for(job.kind)
        if row.state in TERMINAL_STATES:
            _accepted(entry_queue, row.id)
            log.info("job already %s; nothing to do", row.state)
            return Outcome(row.state)
        settings = get_settings()
        lease = JobLease(row.id, settings.lease_seconds, max_hold=_max_hold(settings))
        # The outbox entry goes and the lease is taken in one round trip.
        took, (cleared,) = lease.acquire_after(
            functools.partial(outbox.queue_accepted, queue=entry_queue, job_id=row.id)
        )
        if isinstance(cleared, RedisError):
            _not_cleared(row.id, cleared)
        if not took:
            # Another copy of this job is running (redelivery): let it finish first.
            log.info("job is running elsewhere; this copy will look again later")
            return Outcome(row.state, retry_in=LEASE_RECHECK_SECONDS)
        try:
            if created:
                # This delivery inserted the row just now: it is read again only if it
                # changed meanwhile (its first intent checks), which saves a transaction.
                return _run(job, row, tenant, worker, lease, ending, verified=False)
            current = store.get_job(row.id)
            if current.state in TERMINAL_STATES:
                # Cancelled (or finished by another copy) while this one waited for the lease.
                return Outcome(current.state)
            return _run(job, current, tenant, worker, lease, ending)
        finally:
            ending.add(lease.queue_release)


def _max_hold(settings: Settings) -> float:
    """How long a run keeps its lease: the hard time limit, but never while a write it
    started before the soft limit may still be on its way (one request, a token refresh
    and the replay, after a rate-limit wait), or another copy could write beside it."""
    return max(
        float(settings.task_time_limit), settings.task_soft_time_limit + _longest_write(settings)
    )


def _longest_write(settings: Settings) -> float:
    """One request, a token refresh and the replay, after a rate-limit wait."""
    return 3 * settings.http_timeout + RATE_LIMIT_MAX_WAIT


def _accepted(queue: str, job_id: str) -> None:
    """The job is in the ledger now: its outbox entry can go, and only now (best effort;
    if Redis is away, the reconciler finds the ledger row and removes the entry later)."""
    try:
        outbox.accepted(queue, job_id)
    except RedisError as exc:
        _not_cleared(job_id, exc)


def _not_cleared(job_id: str, exc: RedisError) -> None:
    log.warning("could not clear the outbox entry of job %s: %s", job_id, exc)


def _record_invalid(payload: Any, exc: JobValidationError) -> Outcome:
    """Keep a bad payload with its reason instead of dropping it."""
    data = storable(payload)
    tenant_id = str(data.get("tenant_id") or "unknown")[:64]
    # A stable digest (not hash(), salted per process): the same bad payload delivered
    # again, by any process, is the same row.
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    key = str(data.get("idempotency_key") or f"invalid-{digest}")[:200]
    kind = str(data.get("kind") or "unknown")[:20]
    message = str(exc)
    row, _ = store.accept_job(job_id_for(tenant_id, key), tenant_id, key, kind, data)
    if row.payload != data:
        # The key is another job's (a producer sent it again, broken): that job is left as
        # it is, and this payload kept beside it under a key of its own.
        message = f"{message} (sent with the key {key!r} of job {row.id}, left as it is)"
        key = f"invalid-{digest}"
        row, _ = store.accept_job(job_id_for(tenant_id, key), tenant_id, key, kind, data)
    if row.state not in TERMINAL_STATES:
        fields = [e.model_dump() for e in exc.errors]
        _dead_lettered(store.fail_job(row.id, "invalid", INVALID_PAYLOAD, message, fields))
    log.warning("invalid payload kept as failed job %s: %s", row.id, message)
    return Outcome(FAILED)


def storable(payload: Any) -> dict[str, Any]:
    """A payload as any ledger database stores it: NaN and Infinity (which Python's JSON
    reads, but PostgreSQL's json type refuses) become the strings "NaN", "Infinity" and
    "-Infinity"; anything that is not an object is kept as text under "raw"."""
    try:
        data = json.loads(json.dumps(payload, default=str), parse_constant=str)
    except (ValueError, RecursionError):
        data = None
    return data if isinstance(data, dict) else {"raw": str(payload)[:10000]}


def _run(
    job: AnyJob,
    row: Job,
    tenant: Tenant | None,
    worker: str,
    lease: JobLease,
    ending: Batch,
    verified: bool = True,
) -> Outcome:
    """`tenant`: the job's, read with its acceptance. `verified`: `row` was read while
    this copy held the lease; if not, it is read again before any change that depends
    on it."""
    if not verified and (tenant is None or tenants.needs_reauth(tenant)):
        row, verified = store.get_job(row.id), True
        if row.state in TERMINAL_STATES:
            return Outcome(row.state)
    if tenant is None:
        _dead_lettered(store.fail_job(
            row.id, "rejected", "unknown_tenant",
            f"no tenant {job.tenant_id!r} is configured; add it with `ledgerpush tenants add`",
        ))  # fmt: skip
        return Outcome(FAILED)
    with log_context(provider=tenant.provider):
        checked = _within_limits(job, row, tenant)
        if checked is None:
            return Outcome(FAILED)
        job, rounding = checked
        if tenants.needs_reauth(tenant):
            return _park(row, tenant)
        admission = circuit.admit(
            tenant.provider, row.id, row.created_at, _max_hold(get_settings())
        )
        if admission.held:
            return _hold_for_outage(row if verified else store.get_job(row.id), admission)
        # The attempt is counted (and the job moved to RESOLVING) with the first intent,
        # in its transaction; a run that ends before any write counts it on its own.
        start = store.AttemptStart(worker, RESOLVING, None if verified else row.updated_at)
        attempt = _Attempt(row.id, start, row.attempts + 1)
        try:
            return _attempt(job, row, tenant, lease, attempt, rounding, ending)
        except store.JobChanged:
            # An operator changed the job between its insert and its first write.
            row = store.get_job(row.id)
            if row.state in TERMINAL_STATES:
                return Outcome(row.state)
            return Outcome(row.state, retry_in=HAND_BACK_SECONDS)


def _attempt(
    job: AnyJob,
    row: Job,
    tenant: Tenant,
    lease: JobLease,
    attempt: _Attempt,
    rounding: list[dict[str, str]],
    ending: Batch,
) -> Outcome:
    provider = provider_for(tenant)
    error: ProviderError | None = None
    observed = False
    try:
        with ratelimit.prepaid(_reserved_slot(row)):
            outcome = _drive(job, row, tenant, provider, lease, attempt, rounding, ending)
    except LeaseLost as exc:
        # Another copy holds the job now: leave the ledger to it and look again later.
        log.warning("stopped before a remote write: %s", exc.message)
        error = exc
        outcome = Outcome(store.get_job(row.id).state, retry_in=LEASE_RECHECK_SECONDS)
    except ProviderError as exc:
        error, observed = exc, True
        attempt.begun()
        if circuit.observe(tenant.provider, tenant.id, row.id, exc, provider.calls):
            outcome = _held_after_failure(row, tenant.provider, exc)
            error = Transient(f"held for the outage: {exc.message}", OUTAGE_CODE, exc.original)
        else:
            outcome = _handle_error(row, tenant, exc, attempt.number, provider)
    except store.JobChanged:
        raise  # before any write of this run: nothing of it to record (see _run)
    except Exception as exc:
        if is_store_outage(exc):
            # Not the job's failure: the task waits for the store (tasks/runner.py).
            _end_attempt_quietly(attempt, provider, exc)
            raise
        log.exception("unexpected error while processing job")
        error = Transient(f"internal error: {type(exc).__name__}", "internal_error")
        attempt.begun()
        outcome = _handle_error(row, tenant, error, attempt.number, provider)
    if not observed:
        ending.add(functools.partial(
            circuit.queue_observed, provider=tenant.provider, job_id=row.id,
            calls=provider.calls,
        ))  # fmt: skip
    if attempt.id is None and isinstance(error, LeaseLost):
        return outcome  # no attempt of this copy's to record: the lease holder runs the job
    if error is not None or not attempt.ended:
        store.end_attempt(
            attempt.begun(),
            outcome.state,
            [c.as_dict() for c in provider.calls],
            error.as_dict() if error else None,
        )
    return outcome


def _reserved_slot(row: Job) -> ratelimit.Slot | None:
    """The rate-limit slot the job's last run reserved and handed back for (SlotReserved)."""
    if row.error_code != SLOT_RESERVED_CODE:
        return None
    try:
        return ratelimit.remembered(row.id)
    except RedisError:
        return None  # its calls reserve anew


def _keep_slot(job_id: str, exc: SlotReserved) -> None:
    try:
        ratelimit.remember(job_id, ratelimit.Slot(exc.limit_key, exc.at))
    except RedisError as error:
        log.warning("reserved rate-limit slot not kept (%s); the next run reserves anew", error)


def _within_limits(
    job: AnyJob, row: Job, tenant: Tenant
) -> tuple[AnyJob, list[dict[str, str]]] | None:
    """The job as it will be sent (unit prices rounded if the tenant asks for it) and the
    rounding done; None once a job its provider would refuse has failed, before any write.
    A job that has written something already is not failed by a changed mapping."""
    started = bool(row.remote or row.intent)
    try:
        sent, rounded = limits.enforce(job, tenant.provider, tenant.country, dict(tenant.mapping))
    except JobValidationError as exc:
        if started:
            return job, []
        fields = [e.model_dump() for e in exc.errors]
        _dead_lettered(store.fail_job(row.id, "invalid", limits.LIMIT_CODE, str(exc), fields))
        log.warning("job breaks a limit of %s: %s", tenant.provider, exc)
        return None
    return sent, [r.as_dict() for r in rounded]


def _end_attempt_quietly(attempt: _Attempt, provider: Provider, exc: Exception) -> None:
    """Record why the attempt stopped (the job is sent again), if the ledger can be
    written at all and the attempt was counted; the job's own state stays as it was."""
    if attempt.id is None:
        return
    error = Transient(f"the ledger or Redis is unreachable: {describe(exc)}", "store_unavailable")
    calls = [c.as_dict() for c in provider.calls]
    with contextlib.suppress(Exception):
        store.end_attempt(attempt.id, RETRY_SCHEDULED, calls, error.as_dict())


def _park(row: Job, tenant: Tenant) -> Outcome:
    log.info("job waits for the tenant's re-authorization")
    if row.state != WAITING_FOR_REAUTH:
        store.transition(
            row.id,
            WAITING_FOR_REAUTH,
            note=f"tenant needs re-authorization: {tenant.connection_reason}",
        )
    return Outcome(WAITING_FOR_REAUTH)


def _context(job: AnyJob, row: Job, tenant: Tenant) -> StepContext:
    return StepContext(
        job=job,
        tenant_id=tenant.id,
        country=tenant.country,
        mapping=dict(tenant.mapping),
        remote=dict(row.remote),
        related=_related(job),
    )


def _related(job: AnyJob) -> dict[str, Any]:
    """The booked invoice a credit note or payment refers to; waits until it is booked."""
    if job.kind == "invoice":
        return {}
    key = (
        job.credit_note.original_idempotency_key
        if job.kind == "credit_note"
        else job.payment.invoice_idempotency_key
    )
    original = store.find_job_by_key(job.tenant_id, key)
    if original is None or original.state not in (BOOKED, FAILED, CANCELLED):
        # Woken up when the invoice settles (worker/dependents.py); read again after
        # registering, so a settle in between is not missed.
        dependents.wait_for_invoice(job.tenant_id, key, job.job_id)
        original = store.find_job_by_key(job.tenant_id, key)
    if original is not None and original.state in (FAILED, CANCELLED):
        field = (
            "credit_note.original_idempotency_key"
            if job.kind == "credit_note"
            else "payment.invoice_idempotency_key"
        )
        raise Rejected(
            f"invoice {key!r} is {original.state} and will not be booked as it is; book it "
            "(retry or replay it), then retry this job",
            "invoice_not_bookable",
            fields=[{"field": field, "message": f"invoice job is {original.state}"}],
        )
    if original is None or original.state != BOOKED:
        state = "not received" if original is None else original.state
        raise NotReady(f"invoice {key!r} is not booked yet ({state})", "invoice_not_booked")
    if job.kind == "credit_note" and original.purged_at is not None:
        raise Rejected(
            f"invoice {key!r} is booked but its data was purged (data retention), so the "
            "credit note cannot copy its customer and lines; credit it in the accounting "
            "system directly",
            "invoice_purged",
            fields=[{"field": "credit_note.original_idempotency_key", "message": "purged"}],
        )
    return {"invoice": original.remote, "invoice_payload": original.payload}


@dataclass
class _Unrecorded:
    """A step's result not in the ledger yet: the next step's intent commits it in the
    same transaction (one commit fewer), or it is committed alone before anything else
    (an error, a step that waits for its slot or looks up an earlier write)."""

    state: str
    remote: dict[str, Any]


@dataclass
class _Attempt:
    """This run's attempt: counted (`id` set) with its first intent, or on its own by
    `begun()` before any other change a run makes to the job; `ended` once the final
    step's result ended it too."""

    job_id: str
    start: store.AttemptStart
    number: int
    id: int | None = None
    ended: bool = False
    unrecorded: _Unrecorded | None = None

    def begun(self) -> int:
        """The attempt's row id, counting the attempt now if no intent did."""
        if self.id is None:
            s = self.start
            self.id, self.number = store.begin_attempt(
                self.job_id, s.worker, s.state, unchanged_since=s.unchanged_since
            )
        return self.id

    def start_with(self) -> store.AttemptStart | None:
        """What the next intent's transaction counts: this attempt, until it is counted."""
        return self.start if self.id is None else None

    def counted(self, started: tuple[int, int] | None) -> None:
        if started is not None:
            self.id, self.number = started

    def record(self, job_id: str) -> None:
        """Commit the result that waits for the next step's intent, alone."""
        pending, self.unrecorded = self.unrecorded, None
        if pending is not None:
            store.advance(job_id, pending.state, remote=pending.remote, intent=None)


def _drive(
    job: AnyJob,
    row: Job,
    tenant: Tenant,
    provider: Provider,
    lease: JobLease,
    attempt: _Attempt,
    rounding: list[dict[str, str]],
    ending: Batch,
) -> Outcome:
    if shutdown.requested():
        raise HandedBack("the worker is shutting down; the job continues elsewhere", "handed_back")
    ctx = _context(job, row, tenant)
    if rounding:
        ctx.remote.setdefault("rounding", rounding)  # kept with the first step's result
    plan = provider.prepare(ctx)
    try:
        for step in plan.steps:
            if step.name in ctx.remote:
                continue
            final = plan.is_final(step)
            ctx.remote[step.name] = _run_step(
                row, step, final, ctx, provider, row.intent, lease, attempt
            )
            row.intent = None
    finally:
        # A step's result waits for the next step's intent; if that never comes, the
        # result is committed on its own (the remote document exists either way).
        attempt.record(row.id)
    if row.error_category or row.error_code or row.error_message:
        # The last step's result already moved the job to BOOKED; only an earlier
        # attempt's error needs clearing (one more transaction, on retried jobs only).
        attempt.begun()
        store.transition(row.id, BOOKED, error_category=None, error_code=None, error_message=None)
    _mark_success(tenant.id)
    log.info("job booked: %s", ctx.remote)
    if job.kind == "invoice":
        ending.add(functools.partial(
            dependents.queue_wake, tenant_id=job.tenant_id, invoice_key=job.idempotency_key
        ))  # fmt: skip
    return Outcome(BOOKED)


# Tenants whose success this process marked within SUCCESS_MARK_SECONDS: `tenants.mark_success`
# writes at most that often (a Redis flag), so asking Redis once per job is not needed either.
# Bounded, so a worker serving many tenants does not grow with them.
_recent_success_marks: TTLCache[str, bool] = TTLCache(
    maxsize=4096, ttl=tenants.SUCCESS_MARK_SECONDS, timer=time.monotonic
)
_recent_success_marks_lock = threading.Lock()


def _mark_success(tenant_id: str) -> None:
    with _recent_success_marks_lock:
        if tenant_id in _recent_success_marks:
            return
        _recent_success_marks[tenant_id] = True
    tenants.mark_success(tenant_id)


def _run_step(
    row: Job,
    step: Step,
    final: bool,
    ctx: StepContext,
    provider: Provider,
    intent: dict[str, Any] | None,
    lease: JobLease,
    attempt: _Attempt,
) -> dict[str, Any]:
    if (intent and intent.get("step") == step.name) or step.serialise_on is not None:
        attempt.record(row.id)
    if intent and intent.get("step") == step.name:
        attempt.begun()  # before the lookup may record what it finds
        ctx.intent_at = dt.datetime.fromisoformat(intent["at"])
        ctx.intent = intent
        if not intent.get("answered"):
            _let_write_settle(step.name, ctx.intent_at)
        found = _recover(row, step, final, ctx)
        if found is not None:
            return found
    if step.serialise_on is None:
        return _write(row, step, final, ctx, provider, lease, attempt)
    with _write_slot(ctx.job.tenant_id, step.serialise_on, row):
        return _write(row, step, final, ctx, provider, lease, attempt)


def _step_states(final: bool) -> tuple[str, str]:
    """The job's state while a step's write is out, and once its result is recorded."""
    return (BOOKING, BOOKED) if final else (DRAFTING, DRAFTED)


@contextlib.contextmanager
def _write_slot(tenant_id: str, key: str, row: Job) -> Iterator[None]:
    """One write serialised on `key` (a payment's invoice) in flight at a time. A payment
    lookup may only be able to compare the invoice's remaining amount, and could then take
    a same-sized payment of another job for its own while both are in flight. Writers
    take a Redis lock per key, and none writes while another job on the key has a write
    with an unknown result (the ledger: it may have crashed, or wait for an operator's
    review); those wait as NotReady, which does not use up retries."""
    lock = get_redis().lock(
        f"lp:payment-slot:{tenant_id}:{key}",
        timeout=_longest_write(get_settings()),
        blocking_timeout=HAND_BACK_SECONDS,
    )
    if not lock.acquire():
        raise NotReady(f"another payment of invoice {key!r} is being written", "payment_in_flight")
    try:
        other = store.payment_with_open_write(tenant_id, key, exclude=row.id)
        if other is not None:
            raise NotReady(
                f"payment job {other} of invoice {key!r} has a write whose result is not known "
                "yet; this payment waits until it is",
                "payment_in_flight",
            )
        yield
    finally:
        with contextlib.suppress(LockError, RedisError):
            lock.release()


def _write(
    row: Job,
    step: Step,
    final: bool,
    ctx: StepContext,
    provider: Provider,
    lease: JobLease,
    attempt: _Attempt,
) -> dict[str, Any]:
    running, done = _step_states(final)
    _before_write(lease)
    started = utcnow()
    ctx.intent_at = started
    ctx.intent = {"step": step.name, "at": started.isoformat(), **step.intent(ctx)}
    # The intent, after the previous step's result if that is not committed yet: both in
    # one transaction, still before this step's write.
    pending, attempt.unrecorded = attempt.unrecorded, None
    settled = None if pending is None else (pending.state, pending.remote)
    begin = attempt.start_with()
    attempt.counted(store.advance(row.id, running, intent=ctx.intent, settled=settled, begin=begin))
    ctx.record_progress = functools.partial(_record_progress, row.id, ctx)
    sent_before = len(provider.calls)
    try:
        result: dict[str, Any] = step.write(ctx)
    except ProviderError as exc:
        if len(provider.calls) == sent_before:
            # No request of this write went out (its rate-limit slot is further away, a
            # token could not be had): no lookup is needed on its return, the intent goes.
            store.update_job(row.id, intent=None)
        elif not isinstance(exc, NoAnswer):
            # The server answered: nothing of this write can still be on its way.
            store.update_job(row.id, intent={**ctx.intent, "answered": True})
        raise
    remote = {**ctx.remote, step.name: result}
    if not final:
        # Committed with the next step's intent (or alone, see _Attempt.record).
        attempt.unrecorded = _Unrecorded(done, remote)
        return result
    # The result of the final step (BOOKED) also ends the attempt: one transaction.
    end = (attempt.begun(), [c.as_dict() for c in provider.calls])
    store.advance(row.id, done, remote=remote, intent=None, end_attempt=end)
    attempt.ended = True
    return result


def _record_progress(job_id: str, ctx: StepContext, progress: dict[str, Any]) -> None:
    ctx.intent = {**ctx.intent, **progress}
    store.update_job(job_id, intent=ctx.intent)


def _let_write_settle(step: str, intent_at: dt.datetime) -> None:
    """A write whose answer was lost may still be applied by the server after we stopped
    waiting (a request timed out, the worker died mid-request). Looking it up before
    then finds nothing, and writing again would make two: so wait until it has settled."""
    settings = get_settings()
    settle = settings.write_settle_seconds
    if settle is None:
        settle = 3 * settings.http_timeout
    wait = (intent_at + dt.timedelta(seconds=settle) - utcnow()).total_seconds()
    if wait > 0:
        raise Transient(
            f"the last {step} may still be landing remotely; looking it up in {wait:.0f}s",
            "write_settling",
            retry_after=wait,
        )


def _before_write(lease: JobLease) -> None:
    """Only the lease holder writes; a worker that is shutting down, or a job past its
    soft time limit (the thread pool enforces none), stops here and continues later."""
    if shutdown.requested():
        raise HandedBack("the worker is shutting down; the job continues elsewhere", "handed_back")
    if lease.held_for() > get_settings().task_soft_time_limit:
        raise HandedBack(
            "the job ran past LEDGERPUSH_TASK_SOFT_TIME_LIMIT; it continues in a new run",
            "time_limit",
        )
    lease.ensure_held()


def _recover(row: Job, step: Step, final: bool, ctx: StepContext) -> dict[str, Any] | None:
    """An earlier run wrote the intent but not the result: did the write happen?"""
    candidates = step.lookup(ctx)
    if len(candidates) > 1:
        raise NeedsReview(
            f"{len(candidates)} remote documents could be the result of step {step.name!r}; "
            "check them and cancel or replay this job",
            candidates,
        )
    if not candidates:
        return None
    _, done = _step_states(final)
    log.info("step %s had already happened remotely: %s", step.name, candidates[0])
    store.transition(
        row.id, done, remote={**ctx.remote, step.name: candidates[0]}, intent=None,
        note=f"recovered the result of {step.name} by lookup",
    )  # fmt: skip
    return candidates[0]


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    settings = get_settings()
    delay = min(
        settings.retry_backoff_max, settings.retry_backoff_base * 2.0 ** max(attempt - 1, 0)
    )
    jittered = delay * random.uniform(0.5, 1.0)
    return max(jittered, retry_after or 0.0)


def _handle_error(
    row: Job, tenant: Tenant, exc: ProviderError, attempt: int, provider: Provider
) -> Outcome:
    error = {"error_category": exc.category, "error_code": exc.code, "error_message": exc.message}
    if isinstance(exc, NeedsReauth):
        tenant_needs_reauth(tenant.id, exc.message)
        # An authorization refusal means the write was not done: drop its intent, or on
        # resume the lookup could adopt a look-alike document another job wrote meanwhile.
        store.transition(row.id, WAITING_FOR_REAUTH, note=exc.message, intent=None, **error)
        log.warning("job waits for the tenant's re-authorization: %s", exc.message)
        return Outcome(WAITING_FOR_REAUTH)
    if isinstance(exc, Rejected | Unsupported | NeedsReview):
        fields = exc.fields if isinstance(exc, Rejected) else None
        if isinstance(exc, NeedsReview):
            fields = [{"field": "candidate", "message": str(c)} for c in exc.candidates]
        failed = store.fail_job(row.id, exc.category, exc.code, exc.message, fields)
        log.warning("job failed: %s: %s", exc.code, exc.message)
        _dead_lettered(failed)
        return Outcome(FAILED)
    if isinstance(exc, ReferenceStale):
        if row.error_category == exc.category:
            # Already retried once on fresh references: the reference is really gone.
            exc = Rejected(f"{exc.message} (also after refreshing references)", exc.code)
            return _handle_error(row, tenant, exc, attempt, provider)
        provider.invalidate_references()
    retry_after = exc.retry_after if isinstance(exc, Transient) else None
    # Waiting for an invoice or a rate-limit slot, or handing back at shutdown, is not
    # the job failing.
    since = row.retrying_since
    if not isinstance(exc, NotReady | HandedBack | SlotReserved):
        since = _aware(since) or utcnow()  # the first counted failure starts the horizon
        gave_up = _gave_up(row.id, attempt, since)
        if gave_up:
            return _give_up(row.id, exc, gave_up)
    if isinstance(exc, HandedBack):
        delay = HAND_BACK_SECONDS
    elif isinstance(exc, SlotReserved):
        _keep_slot(row.id, exc)
        delay = max(exc.at - time.time(), 0.0)
    elif isinstance(exc, ReferenceStale):
        delay = 0.5
    else:
        delay = backoff_seconds(attempt, retry_after)
    store.transition(
        row.id,
        RETRY_SCHEDULED,
        note=f"{exc.code}: {exc.message}; retry in {delay:.1f}s",
        next_retry_at=utcnow() + dt.timedelta(seconds=delay),
        retrying_since=since,
        **error,
    )
    log.warning("attempt %s: %s; retry in %.1fs", attempt, exc.message, delay)
    return Outcome(RETRY_SCHEDULED, retry_in=delay)


def _hold_for_outage(row: Job, admission: circuit.Admission) -> Outcome:
    """The provider's circuit is open (or held jobs are being let through, oldest first):
    wait without starting an attempt, so no retry is spent."""
    if row.state in TERMINAL_STATES:
        return Outcome(row.state)
    wait = admission.wait + random.uniform(0.5, min(get_settings().circuit_open_seconds, 5.0))
    if admission.verdict == "release":
        wait = random.uniform(0.5, 2.0)
    retry_at = utcnow() + dt.timedelta(seconds=wait)
    if row.state == RETRY_SCHEDULED and row.error_code == OUTAGE_CODE:
        # Written again only now and then: enough to keep the reconciler from taking the
        # held job for a lost retry (LOST_RETRY_GRACE), few writes while many are held.
        if _older_than(row.next_retry_at, HELD_REFRESH_SECONDS):
            store.update_job(row.id, next_retry_at=retry_at)
    else:
        message = (
            "the accounting system is unreachable for many tenants (circuit open); "
            "the job waits without using a retry"
        )
        store.transition(
            row.id, RETRY_SCHEDULED, note=f"{OUTAGE_CODE}: {message}", next_retry_at=retry_at,
            error_category="transient", error_code=OUTAGE_CODE, error_message=message,
        )  # fmt: skip
    log.info("provider outage: job held, next look in %.1fs", wait)
    return Outcome(RETRY_SCHEDULED, retry_in=wait)


def _give_up(job_id: str, exc: ProviderError, why: str) -> Outcome:
    """The job's dead letter. With a write still unconfirmed (its intent open: the lookup
    never got an answer), the document may exist remotely: it is failed for review, which
    cancel refuses and replay resolves by the lookup, never as a plain failure."""
    intent = store.get_job(job_id).intent
    if intent:
        step = intent.get("step", "last")
        message = (
            f"{why}: {exc.message}; its {step} write went out and no lookup has confirmed "
            "what became of it: it may have been applied in the accounting system"
        )
        failed = store.fail_job(job_id, NeedsReview.category, UNCONFIRMED_WRITE_CODE, message)
    else:
        failed = store.fail_job(job_id, exc.category, exc.code, f"{why}: {exc.message}")
    log.warning("job failed: %s: %s", why, exc.message)
    _dead_lettered(failed)
    return Outcome(FAILED)


def _retries_spent(job_id: str, attempts: int) -> int:
    """Attempts that waited on something outside the job (see NOT_THE_JOBS_FAILURE) do not
    count toward the retry limit."""
    # The latest `attempts` rows: a replay starts the count again, its rows stay.
    latest = store.attempts_of(job_id)[-attempts:] if attempts > 0 else []
    return attempts - sum(1 for a in latest if _waited(a.error or {}))


def _waited(error: dict[str, Any]) -> bool:
    return error.get("category") == NotReady.category or error.get("code") in NOT_THE_JOBS_FAILURE


def _older_than(moment: dt.datetime | None, seconds: float) -> bool:
    if moment is None:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment < utcnow() - dt.timedelta(seconds=seconds)


def _held_after_failure(row: Job, provider: str, exc: ProviderError) -> Outcome:
    """This run failed while (or by) the circuit opening: held like the others, never
    dead-lettered for it."""
    log.warning("%s failed during its outage (%s): job held", provider, exc.message)
    job = store.get_job(row.id)
    wait = get_settings().circuit_open_seconds
    return _hold_for_outage(job, circuit.Admission("hold", wait))


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands timestamps back without their zone; they are UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment and moment.tzinfo is None else moment


def _gave_up(job_id: str, attempt: int, since: dt.datetime) -> str | None:
    """Why a job's transient failures end in a dead letter now, if they do: its retry
    horizon (counted from its first failure) has passed, or, when LEDGERPUSH_MAX_RETRIES
    is set, its attempts ran out first (those held by an open circuit not counted)."""
    settings = get_settings()
    limit = settings.max_retries
    if limit is not None and attempt > limit and _retries_spent(job_id, attempt) > limit:
        return f"gave up after {attempt} attempts"
    elapsed = utcnow() - since
    if elapsed.total_seconds() >= settings.retry_horizon:
        return (
            f"gave up after {attempt} attempts over {_duration(elapsed)} (LEDGERPUSH_RETRY_HORIZON)"
        )
    return None


def _duration(span: dt.timedelta) -> str:
    minutes, seconds = divmod(int(span.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def _dead_lettered(job: Job) -> None:
    job_failed(job)
    if job.kind == "invoice":
        # Its credit notes and payments fail now too, instead of waiting out backoffs.
        dependents.wake(job.tenant_id, job.idempotency_key)
