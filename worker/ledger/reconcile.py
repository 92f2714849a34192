"""The reconciler's read model: jobs that stopped moving."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from worker.ledger.db import read_session
from worker.ledger.models import IN_FLIGHT_STATES, RECEIVED, RETRY_SCHEDULED, Job


def quiet_or_overdue_jobs(
    quiet_since: dt.datetime, retry_overdue_since: dt.datetime, limit: int
) -> list[Job]:
    """Jobs in flight or received and not updated since `quiet_since`, and retries due
    before `retry_overdue_since`; least recently updated first."""
    query = (
        select(Job)
        .where(
            or_(
                Job.state.in_([*IN_FLIGHT_STATES, RECEIVED]) & (Job.updated_at < quiet_since),
                (Job.state == RETRY_SCHEDULED) & (Job.next_retry_at < retry_overdue_since),
            )
        )
        .order_by(Job.updated_at)
        .limit(limit)
    )
    with read_session() as db:
        return list(db.scalars(query))
