"""`POST /api/jobs:batch`: up to 500 jobs in one request, each accepted or refused on its
own (a bad job never fails the others), answered with one result per job in order."""

from __future__ import annotations

import logging
from typing import Any

from kombu.exceptions import OperationalError as BrokerError
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from worker import safejson
from worker.jobs import FieldError, JobValidationError
from worker.web.schemas import FieldProblem
from worker.web.submit import submit

log = logging.getLogger("ledgerpush.web")
MAX_JOBS = 500
MAX_BATCH_BYTES = 16_000_000
UNAVAILABLE = "not enqueued: the broker or the ledger is unreachable; send this job again"


class BatchItemOut(BaseModel):
    """`status` as the single-job route would answer: 201 new, 200 seen before (nothing is
    sent twice), 422 refused (`errors` names each field), 503 not enqueued (send again)."""

    index: int = Field(description="The job's position in the request, from 0")
    status: int
    id: str | None = None
    tenant_id: str | None = None
    idempotency_key: str | None = None
    kind: str | None = None
    state: str | None = None
    created: bool | None = None
    errors: list[FieldProblem] | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class BatchRefused(ValueError):
    """The request as a whole is unusable (not JSON, no `jobs` list, too many jobs)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.error = FieldError(field=field, message=message)


def read_batch(body: bytes) -> list[Any]:
    """The jobs of the request body `{"jobs": [...]}`, each still to be validated."""
    try:
        data = safejson.parse(body, MAX_BATCH_BYTES)
    except safejson.UnsafeJSON as exc:
        raise BatchRefused("(body)", exc.problems[0].message) from None
    except ValueError as exc:  # json.JSONDecodeError
        raise BatchRefused("(body)", "the body must be JSON") from exc
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise BatchRefused("jobs", 'the body must be an object {"jobs": [<job>, ...]}')
    if not 1 <= len(jobs) <= MAX_JOBS:
        raise BatchRefused("jobs", f"must hold 1 to {MAX_JOBS} jobs, not {len(jobs)}")
    return jobs


def submit_batch(jobs: list[Any], created_by_key: int | None = None) -> BatchOut:
    """`created_by_key`: the API key sending the batch, recorded on each new job."""
    return BatchOut(
        results=[_submit_one(index, job, created_by_key) for index, job in enumerate(jobs)]
    )


def _submit_one(index: int, job: Any, created_by_key: int | None) -> BatchItemOut:
    refused = safejson.problems(job)
    if refused:
        return _invalid(index, [FieldProblem(field=p.field, message=p.message) for p in refused])
    try:
        sub = submit(job, created_by_key=created_by_key)
    except JobValidationError as exc:
        return _invalid(index, [FieldProblem(field=e.field, message=e.message) for e in exc.errors])
    except (RedisError, BrokerError, SQLAlchemyError, OSError) as exc:
        log.warning("batch job %s not enqueued: %s", index, exc)
        return BatchItemOut(
            index=index, status=503, errors=[FieldProblem(field="(job)", message=UNAVAILABLE)]
        )
    return BatchItemOut(index=index, status=201 if sub.created else 200, **sub.answer())


def _invalid(index: int, errors: list[FieldProblem]) -> BatchItemOut:
    return BatchItemOut(index=index, status=422, errors=errors)
