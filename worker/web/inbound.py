"""`POST /webhooks/{provider}`: an accounting system's notifications (worker/ops/inbound.py).
Public (the sender signs instead), answered at once; the work happens in a task."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from worker.ops import inbound
from worker.web.access import public

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/{provider}", dependencies=public(), include_in_schema=False)
async def receive(provider: str, request: Request) -> JSONResponse:
    body = await request.body()
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        queued = inbound.receive(provider, headers, body)
    except inbound.Refused as exc:
        return JSONResponse({"error": str(exc)}, status_code=401)
    return JSONResponse({"queued": queued}, status_code=202 if queued else 200)
