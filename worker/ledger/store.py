"""The few functions that change the ledger. Every state change leaves a JobEvent.

The functions a job runs through on every delivery (`accept_job`, `begin_attempt`,
`advance`, `end_attempt`) are written as Core statements on one connection: the same
rows and events as the ORM would write, at a fraction of its CPU per commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from worker.ledger import events as ledger_events
from worker.ledger import tenancy
from worker.ledger.db import engine, read_connection, read_session, session
from worker.ledger.models import (
    BOOKED,
    CANCELLED,
    FAILED,
    RECEIVED,
    TERMINAL_STATES,
    Attempt,
    Job,
    JobEvent,
    Tenant,
    utcnow,
)


class JobNotFound(LookupError):
    pass


class JobChanged(RuntimeError):
    """The job is no longer in the state the caller read (`begin_attempt(unchanged=…)`)."""


JOBS: Table = Job.__table__  # type: ignore[assignment]
EVENTS: Table = JobEvent.__table__  # type: ignore[assignment]
ATTEMPTS: Table = Attempt.__table__  # type: ignore[assignment]
# Built once: a statement executed with a parameter dict compiles its SET/VALUES from the
# dict's keys, and SQLAlchemy caches that compilation per set of keys.
_INSERT_JOB = insert(JOBS)
_INSERT_EVENT = insert(EVENTS)
_INSERT_ATTEMPT = insert(ATTEMPTS)
_JOB_STATE = select(JOBS.c.state, JOBS.c.attempts).where(JOBS.c.id == bindparam("b_id"))
_JOB_STATE_LOCKED = _JOB_STATE.with_for_update()
# Also whether updated_at is still `b_at` (compared in SQL, as written; every change sets it).
_JOB_STATE_SINCE = (
    select(JOBS.c.state, JOBS.c.attempts, JOBS.c.updated_at == bindparam("b_at"))
    .where(JOBS.c.id == bindparam("b_id"))
    .with_for_update()
)
_UPDATE_JOB = update(JOBS).where(JOBS.c.id == bindparam("b_id"))
_JOB_ROW = select(*JOBS.c).where(JOBS.c.id == bindparam("b_id"))
_UPDATE_ATTEMPT = update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("b_id"))


def accept_job(
    job_id: str,
    tenant_id: str,
    idempotency_key: str,
    kind: str,
    payload: dict[str, Any],
    enqueued_at: dt.datetime | None = None,
    created_by_key: int | None = None,
) -> tuple[Job, bool]:
    """Insert the job row, or return the existing one for this (tenant, key).

    Uniqueness is the database's: when two workers race, one insert fails and
    that worker reads the winner's row.
    """
    row = _new_job_row(
        job_id, tenant_id, idempotency_key, kind, payload, enqueued_at, created_by_key
    )
    job, created, _ = _accept(row, read_tenant=False)
    return job, created


def accept_job_with_tenant(
    job_id: str,
    tenant_id: str,
    idempotency_key: str,
    kind: str,
    payload: dict[str, Any],
    enqueued_at: dt.datetime | None = None,
    created_by_key: int | None = None,
) -> tuple[Job, bool, Tenant | None]:
    """`accept_job`, and the job's tenant (None if there is none) read in the same
    transaction: every delivery reads it, and a transaction of its own costs a commit."""
    row = _new_job_row(
        job_id, tenant_id, idempotency_key, kind, payload, enqueued_at, created_by_key
    )
    return _accept(row, read_tenant=True)


def _new_job_row(
    job_id: str,
    tenant_id: str,
    idempotency_key: str,
    kind: str,
    payload: dict[str, Any],
    enqueued_at: dt.datetime | None,
    created_by_key: int | None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": job_id,
        "tenant_id": tenant_id,
        "idempotency_key": idempotency_key,
        "kind": kind,
        "payload": payload,
        "state": RECEIVED,
        "remote": {},
        "attempts": 0,
        "enqueued_at": enqueued_at,
        "created_by_key": created_by_key,
        "created_at": now,
        "updated_at": now,
    }


def _accept(row: dict[str, Any], read_tenant: bool) -> tuple[Job, bool, Tenant | None]:
    # Insert first: a new job is the common case, so it costs one transaction; a
    # redelivered one fails the insert and is read instead.
    job_id = row["id"]
    tenant: Tenant | None = None
    try:
        with engine().begin() as conn:
            conn.execute(_INSERT_JOB, row)
            conn.execute(
                _INSERT_EVENT,
                {
                    "job_id": job_id,
                    "from_state": None,
                    "to_state": RECEIVED,
                    "note": "accepted",
                    "at": row["created_at"],
                },
            )
            if read_tenant:
                tenant = tenancy.read_tenant(conn, row["tenant_id"])
    except IntegrityError:
        with engine().begin() as conn:
            winner = _read_job(conn, job_id)
            if read_tenant:
                tenant = tenancy.read_tenant(conn, row["tenant_id"])
        if winner is None:
            raise
        return winner, False, tenant
    return Job(**row), True, tenant


def find_job(job_id: str) -> Job | None:
    """The job as a detached object (as the ORM would hand it out after its session)."""
    with read_connection() as conn:
        return _read_job(conn, job_id)


def _read_job(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(_JOB_ROW, {"b_id": job_id}).first()
    if row is None:
        return None
    job = Job(**row._asdict())
    make_transient_to_detached(job)
    return job


def get_job(job_id: str) -> Job:
    job = find_job(job_id)
    if job is None:
        raise JobNotFound(f"no job with id {job_id}")
    return job


def find_job_by_key(tenant_id: str, idempotency_key: str) -> Job | None:
    with read_session() as db:
        return db.scalars(
            select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == idempotency_key)
        ).first()


def transition(
    job_id: str,
    to_state: str,
    *,
    actor: str = "worker",
    note: str | None = None,
    **changes: Any,
) -> Job:
    """Move a job to `to_state`, setting any other columns given, in one transaction."""
    with session() as db:
        job = db.get(Job, job_id, with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        wrote_event = _apply(db, job, to_state, actor, note, changes)
    if wrote_event:
        ledger_events.written()
    return job


def _apply(
    db: Session, job: Job, to_state: str, actor: str, note: str | None, changes: dict[str, Any]
) -> bool:
    """Returns whether the change wrote an outbound event (in the same transaction)."""
    from_state = job.state
    for name, value in changes.items():
        setattr(job, name, value)
    job.state = to_state
    job.updated_at = utcnow()
    if to_state in TERMINAL_STATES:
        job.finished_at = utcnow()
        job.next_retry_at = None
    if from_state != to_state or note:
        db.add(
            JobEvent(
                job_id=job.id, from_state=from_state, to_state=to_state, actor=actor, note=note
            )
        )
    if to_state == from_state or to_state not in ledger_events.OUTCOME_STATES:
        return False
    row = {column.name: getattr(job, column.name) for column in JOBS.c}
    return ledger_events.record_job_outcome(db.connection(), row, from_state, to_state)


def update_job(job_id: str, **changes: Any) -> Job:
    """Change columns without a state change (remote ids, intents)."""
    with session() as db:
        job = db.get(Job, job_id, with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job with id {job_id}")
        for name, value in changes.items():
            setattr(job, name, value)
        job.updated_at = utcnow()
        return job


def fail_job(
    job_id: str,
    category: str,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    actor: str = "worker",
) -> Job:
    return transition(
        job_id,
        FAILED,
        actor=actor,
        note=f"{code}: {message}",
        error_category=category,
        error_code=code,
        error_message=message,
        error_fields=fields,
    )


def advance(
    job_id: str,
    to_state: str,
    *,
    note: str | None = None,
    begin: AttemptStart | None = None,
    end_attempt: tuple[int, list[dict[str, Any]]] | None = None,
    settled: tuple[str, dict[str, Any]] | None = None,
    **changes: Any,
) -> tuple[int, int] | None:
    """`transition` for the pipeline's hot path, whose callers need no Job back: the same
    columns, timestamps and event, without loading the row into the ORM. With `begin`, a
    new attempt is counted first in the same transaction (what `begin_attempt` would
    write in one more, its state change and event included) and (attempt row id, attempt
    number) returned. With `end_attempt` (attempt row id, its calls), that attempt ends
    with outcome `to_state` in the same transaction (what `end_attempt` would write in
    one more). With `settled` (a state and the job's remote results), the previous
    step's result is recorded first in the same transaction, with its own event, as
    `advance(state, remote=..., intent=None)` would have in one more; that state must not
    be one whose arrival makes an outcome event (only the final step's result does, and
    no step follows it)."""
    now = utcnow()
    started: tuple[int, int] | None = None
    moves: list[dict[str, Any]] = []
    values = {**changes, "b_id": job_id, "state": to_state, "updated_at": now}
    with engine().begin() as conn:
        if end_attempt is not None:
            attempt_id, calls = end_attempt
            conn.execute(
                _UPDATE_ATTEMPT,
                {"b_id": attempt_id, "ended_at": now, "outcome": to_state, "calls": calls},
            )
        if begin is not None:
            attempt_id, number, from_state = _start_attempt(conn, job_id, begin, now)
            started, values["attempts"] = (attempt_id, number), number
            if begin.state is not None and begin.state != from_state:
                moves.append(_event(job_id, from_state, begin.state, None, now))
                from_state = begin.state
        else:
            found = conn.execute(_JOB_STATE_LOCKED, {"b_id": job_id}).scalar()
            if found is None:
                raise JobNotFound(f"no job with id {job_id}")
            from_state = str(found)
        if to_state in TERMINAL_STATES:
            values.update(finished_at=now, next_retry_at=None)
        if settled is not None:
            done, values["remote"] = settled
            if done in ledger_events.OUTCOME_STATES:
                raise ValueError(f"a result that moves the job to {done} is committed alone")
            if from_state != done:
                moves.append(_event(job_id, from_state, done, None, now))
            from_state = done
        conn.execute(_UPDATE_JOB, values)
        if from_state != to_state or note:
            moves.append(_event(job_id, from_state, to_state, note, now))
        if moves:
            conn.execute(_INSERT_EVENT, moves)
        wrote_event = from_state != to_state and to_state in ledger_events.OUTCOME_STATES
        if wrote_event:
            row = dict(conn.execute(_JOB_ROW, {"b_id": job_id}).mappings().one())
            wrote_event = ledger_events.record_job_outcome(conn, row, from_state, to_state)
    if wrote_event:
        ledger_events.written()
    return started


def _event(
    job_id: str, from_state: str, to_state: str, note: str | None, at: dt.datetime
) -> dict[str, Any]:
    """A job event row as the worker writes it (`advance`, `begin_attempt`)."""
    return {
        "job_id": job_id,
        "from_state": from_state,
        "to_state": to_state,
        "actor": "worker",
        "note": note,
        "at": at,
    }


@dataclass(frozen=True)
class AttemptStart:
    """A new attempt, counted in the transaction of the job's next change (see `advance`):
    `state` is the job's state once it starts (None: unchanged); with `unchanged_since`
    (the `updated_at` the caller read), `JobChanged` is raised and nothing written if the
    job changed since."""

    worker: str
    state: str | None = None
    unchanged_since: dt.datetime | None = None


def begin_attempt(
    job_id: str,
    worker: str,
    to_state: str | None = None,
    *,
    unchanged_since: dt.datetime | None = None,
) -> tuple[int, int]:
    """Count a new attempt, and move the job to `to_state` if given, in one transaction;
    returns (attempt row id, attempt number). See `AttemptStart` for `unchanged_since`."""
    now = utcnow()
    with engine().begin() as conn:
        attempt_id, number, from_state = _start_attempt(
            conn, job_id, AttemptStart(worker, to_state, unchanged_since), now
        )
        values: dict[str, Any] = {"b_id": job_id, "attempts": number, "updated_at": now}
        if to_state is not None:
            values["state"] = to_state
            if to_state in TERMINAL_STATES:
                values.update(finished_at=now, next_retry_at=None)
        conn.execute(_UPDATE_JOB, values)
        if to_state is not None and to_state != from_state:
            conn.execute(_INSERT_EVENT, _event(job_id, from_state, to_state, None, now))
        return attempt_id, number


def _start_attempt(
    conn: Connection, job_id: str, start: AttemptStart, now: dt.datetime
) -> tuple[int, int, str]:
    """Lock the job's row and insert its next attempt's row; returns (attempt row id,
    attempt number, the job's state as found). The caller writes the job's count."""
    found: Any
    if start.unchanged_since is None:
        found = conn.execute(_JOB_STATE_LOCKED, {"b_id": job_id}).first()
    else:
        found = conn.execute(
            _JOB_STATE_SINCE, {"b_id": job_id, "b_at": start.unchanged_since}
        ).first()
    if found is None:
        raise JobNotFound(f"no job with id {job_id}")
    if start.unchanged_since is not None and not found[2]:
        raise JobChanged(f"job {job_id} changed since it was read")
    number = found[1] + 1
    attempt = {"job_id": job_id, "number": number, "worker": start.worker, "started_at": now}
    key = conn.execute(_INSERT_ATTEMPT, {**attempt, "calls": []}).inserted_primary_key
    assert key is not None
    return int(key[0]), number, str(found[0])


def end_attempt(
    attempt_id: int, outcome: str, calls: list[dict[str, Any]], error: dict[str, Any] | None
) -> None:
    values: dict[str, Any] = {"b_id": attempt_id, "ended_at": utcnow(), "outcome": outcome}
    values["calls"] = calls
    if error is not None:
        values["error"] = error
    with engine().begin() as conn:
        conn.execute(_UPDATE_ATTEMPT, values)


def payment_with_open_write(tenant_id: str, invoice_key: str, exclude: str) -> str | None:
    """Another payment job of the tenant's invoice `invoice_key` whose write has an
    intent but no result (running, crashed, or waiting for an operator), if any."""
    query = select(JOBS.c.id, JOBS.c.payload, JOBS.c.intent).where(
        JOBS.c.tenant_id == tenant_id,
        JOBS.c.kind == "payment",
        JOBS.c.id != exclude,
        JOBS.c.state.not_in((BOOKED, CANCELLED)),
    )
    with read_connection() as conn:
        for job_id, payload, intent in conn.execute(query):
            paid = (payload or {}).get("payment") or {}
            if intent and paid.get("invoice_idempotency_key") == invoice_key:
                return str(job_id)
    return None


def list_jobs(
    tenant_id: str | None = None, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[Job]:
    query = select(Job).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    if tenant_id:
        query = query.where(Job.tenant_id == tenant_id)
    if state:
        query = query.where(Job.state == state)
    with read_session() as db:
        return list(db.scalars(query))


def count_by_state(tenant_id: str | None = None) -> dict[str, int]:
    query = select(Job.state, func.count()).group_by(Job.state)
    if tenant_id:
        query = query.where(Job.tenant_id == tenant_id)
    with read_session() as db:
        return {state: count for state, count in db.execute(query).tuples()}


def attempts_of(job_id: str) -> list[Attempt]:
    with read_session() as db:
        return list(
            db.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.id))
        )


def events_of(job_id: str) -> list[JobEvent]:
    with read_session() as db:
        return list(
            db.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        )
