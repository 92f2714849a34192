"""Data retention: remove customer personal data from jobs settled long ago.

Kept, because exactly-once needs it: the job row with its tenant, idempotency key, kind,
state, remote ids and unfinished-write intent (a late duplicate with the same key finds
the row and is not booked again; a payment still finds its invoice's remote ids), and
the state history with who did what and when. Removed: the payload (customer, lines,
references, notes), error messages and field details, the notes the worker wrote into
the history, and in attempts the provider's error text and the request paths (lookups
by customer name or e-mail put personal data there); attempt outcomes, status codes and
durations stay.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from worker.ledger.models import Attempt, Job, utcnow
from worker.ledger.retention import due_job_and_attempt_counts, purge_due_batch

log = logging.getLogger("ledgerpush.purge")
BATCH = 500
_DURATION = re.compile(r"^\s*(\d+)\s*([dhw]?)\s*$")
_UNIT_DAYS = {"": 1.0, "d": 1.0, "w": 7.0, "h": 1 / 24}


class PurgeError(ValueError):
    """A bad --older-than value; the message says what is accepted."""


@dataclass(frozen=True)
class PurgeResult:
    cutoff: dt.datetime
    jobs: int
    attempts: int
    dry_run: bool


def parse_age(text: str) -> dt.timedelta:
    """`180d`, `26w`, `36h` or a plain number of days."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) <= 0:
        raise PurgeError(
            f"--older-than: {text!r} is not an age; give a positive number of days "
            "(180d), weeks (26w) or hours (36h)"
        )
    return dt.timedelta(days=int(match.group(1)) * _UNIT_DAYS[match.group(2)])


def purged_payload(job: Job) -> dict[str, Any]:
    """What is left of a payload: what identifies the job, nothing about the customer."""
    return {"tenant_id": job.tenant_id, "idempotency_key": job.idempotency_key, "kind": job.kind}


def is_purged(job: Job) -> bool:
    return job.purged_at is not None


def purge(older_than: dt.timedelta, dry_run: bool = False) -> PurgeResult:
    """Purge jobs settled before now - older_than, in batches (short transactions)."""
    cutoff = utcnow() - older_than
    if dry_run:
        jobs, attempts = due_job_and_attempt_counts(cutoff)
        return PurgeResult(cutoff, jobs, attempts, True)
    jobs = attempts = 0
    while True:
        batch_jobs, batch_attempts = purge_due_batch(cutoff, BATCH, _purge_job, _purge_attempt)
        if not batch_jobs:
            break
        jobs += batch_jobs
        attempts += batch_attempts
    log.info("purged %d jobs and %d attempts settled before %s", jobs, attempts, cutoff)
    return PurgeResult(cutoff, jobs, attempts, False)


def _purge_job(job: Job) -> None:
    job.payload = purged_payload(job)
    job.error_message = None
    job.error_fields = None
    job.purged_at = utcnow()


def _purge_attempt(attempt: Attempt) -> None:
    if attempt.error:
        attempt.error = {k: attempt.error[k] for k in ("category", "code") if k in attempt.error}
    attempt.calls = [
        {k: call[k] for k in ("method", "status", "ms") if k in call}
        for call in attempt.calls or []
        if isinstance(call, dict)
    ]
