"""Accepting a job over HTTP with the queue's validation and idempotency.

The job id is derived from (tenant, idempotency key). If the ledger has the row, the
key was seen: answer with that job. If not, the job may still be waiting in the queue
(sent a moment ago, not yet accepted by a worker): a Redis marker `lp:enq:<id>`, set
with SETNX when the job is sent, answers "seen" for that window. A copy sent twice
anyway (marker expired, Python producer) is harmless: the worker accepts the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.jobs import parse_job
from worker.ledger import store
from worker.ledger.models import Job
from worker.providers import limits
from worker.transport.producer import send
from worker.transport.redis_client import get_redis

MARKER_TTL = 24 * 3600
QUEUED = "queued"


@dataclass(frozen=True)
class Submission:
    id: str
    tenant_id: str
    idempotency_key: str
    kind: str
    created: bool
    job: Job | None

    @property
    def state(self) -> str:
        return self.job.state if self.job else QUEUED

    def answer(self) -> dict[str, Any]:
        """What the single-job and the batch routes answer about it."""
        return {"id": self.id, "tenant_id": self.tenant_id,
                "idempotency_key": self.idempotency_key, "kind": self.kind,
                "state": self.state, "created": self.created}  # fmt: skip


def marker_key(job_id: str) -> str:
    return f"lp:enq:{job_id}"


def submit(data: Any, created_by_key: int | None = None) -> Submission:
    """Validate (raises JobValidationError) and enqueue once per (tenant, key);
    `created_by_key` (the API key sending it) is recorded on the job's ledger row."""
    parsed = parse_job(data)
    job_id = parsed.job_id
    seen = Submission(job_id, parsed.tenant_id, parsed.idempotency_key, parsed.kind, False, None)
    existing = store.find_job(job_id)
    if existing is not None:
        return Submission(**{**seen.__dict__, "job": existing})
    limits.check_enqueued(parsed)
    redis = get_redis()
    if not redis.set(marker_key(job_id), "1", nx=True, ex=MARKER_TTL):
        return Submission(**{**seen.__dict__, "job": store.find_job(job_id)})
    try:
        send(parsed.model_dump(mode="json"), parsed.kind, job_id, created_by_key=created_by_key)
    except Exception:
        redis.delete(marker_key(job_id))
        raise
    return Submission(**{**seen.__dict__, "created": True})
