"""Read-only questions the dashboard and the API ask of Redis (the ledger's read models
are in worker/ledger/queries.py)."""

from __future__ import annotations

from worker.tasknames import QUEUES
from worker.transport.ingest import INGEST_QUEUE
from worker.transport.redis_client import get_redis


def queue_depths() -> dict[str, int]:
    redis = get_redis()
    # The plain ingest list too: jobs pushed there wait in it until a drainer takes them.
    names = (*QUEUES, INGEST_QUEUE)
    return {name: int(redis.llen(name)) for name in names}  # type: ignore[arg-type, unused-ignore]


def reserved_messages() -> int:
    """Messages taken by workers but not acknowledged yet (running or waiting on a countdown)."""
    return int(get_redis().hlen("unacked"))  # type: ignore[arg-type, unused-ignore]
