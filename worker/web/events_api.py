"""The event feed: the same events the webhooks carry, for producers that cannot
receive webhooks. Read in order with a cursor: `GET /api/events?after=<next_cursor>`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from worker.ops import events
from worker.web.access import JOBS_READ, allow
from worker.web.auth import require_auth
from worker.web.schemas import FieldProblems, Problem

router = APIRouter(
    prefix="/api",
    tags=["api"],
    dependencies=[Depends(require_auth)],
    responses={403: {"model": Problem, "description": "the missing scope, named"}},
)


class EventOut(BaseModel):
    cursor: int
    id: str
    type: str
    tenant_id: str
    job_id: str | None
    body: dict[str, Any]


class EventPageOut(BaseModel):
    items: list[EventOut]
    #: Pass as `after` to read on; the same cursor when nothing new has arrived.
    next_cursor: int
    has_more: bool


@router.get(
    "/events",
    response_model=EventPageOut,
    responses={422: {"model": FieldProblems}},
    summary="Events after a cursor, oldest first",
    dependencies=allow(JOBS_READ),
)
def list_events(
    after: Annotated[int, Query(ge=0, le=2**62, description="the last cursor read")] = 0,
    types: Annotated[str | None, Query(max_length=500, description="comma-separated")] = None,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    try:
        chosen = events.parse_types(types)
    except events.EventError as exc:
        message = str(exc).removeprefix("types: ")
        return JSONResponse({"detail": [{"field": "types", "message": message}]}, 422)
    found = events.feed(after, chosen, tenant, limit + 1)
    page = found[:limit]
    items = [
        EventOut(
            cursor=e.id,
            id=e.event_id,
            type=e.type,
            tenant_id=e.tenant_id,
            job_id=e.job_id,
            body=e.payload,
        )
        for e in page
    ]
    next_cursor = page[-1].id if page else after
    return EventPageOut(items=items, next_cursor=next_cursor, has_more=len(found) > limit)
