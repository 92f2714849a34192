"""Dashboard pages for poison messages (worker/transport/poison.py): look, download, fix and
re-inject, or discard. Every action is audited under the operator's name."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.jobs import JobValidationError
from worker.ops import operations
from worker.transport import poison
from worker.web.access import JOBS_OPERATE, JOBS_READ, allow
from worker.web.auth import Principal, require_auth
from worker.web.templating import flash, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])
PREVIEW_CHARS = 20_000
Mode = Literal["message", "job"]


def poison_context() -> dict[str, object]:
    """What the dead-letters page shows of the poison list."""
    return {
        "poison": poison.entries(50),
        "poison_count": poison.count(),
        "poison_reasons": poison.REASONS,
        "poison_audit": poison.audit_trail(10),
    }


def _not_found(request: Request, exc: Exception) -> Response:
    return render(request, "message.html", {"title": "Not found", "text": str(exc)}, 404)


def _entry_page(
    request: Request, entry: poison.Entry, refusal: str = "", status: int = 200
) -> Response:
    context = {
        "entry": entry,
        "plain": poison.REASONS.get(entry.reason, entry.reason),
        "preview": entry.text[:PREVIEW_CHARS],
        "cut": len(entry.text) > PREVIEW_CHARS,
        "job_text": poison.job_in(entry),
        "refusal": refusal,
    }
    return render(request, "poison.html", context, status)


@router.get("/poison/{entry_id}", response_class=HTMLResponse, dependencies=allow(JOBS_READ))
def poison_entry(request: Request, entry_id: str) -> Response:
    try:
        return _entry_page(request, poison.get(entry_id))
    except poison.EntryNotFound as exc:
        return _not_found(request, exc)


@router.get("/poison/{entry_id}/raw", dependencies=allow(JOBS_READ))
def poison_raw(request: Request, entry_id: str) -> Response:
    """The message's bytes exactly as they were taken off the queue."""
    try:
        entry = poison.get(entry_id)
    except poison.EntryNotFound as exc:
        return _not_found(request, exc)
    filename = f"poison-{entry.id}.bin"
    return Response(
        entry.raw,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post("/poison/{entry_id}/reinject", dependencies=allow(JOBS_OPERATE))
async def poison_reinject(
    request: Request,
    entry_id: str,
    principal: Annotated[Principal, Depends(require_auth)],
    mode: Annotated[Mode, Form()] = "message",
    fixed: Annotated[str, Form()] = "",
    upload: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Re-inject as it is (nothing given), or after fixing: the operator's text or
    uploaded file is either a whole message (`mode=message`) or just the job, which
    ledgerpush then enqueues like any other (`mode=job`)."""
    content = (await upload.read()) if upload is not None and upload.filename else b""
    given = content or fixed.replace("\r\n", "\n").encode()
    try:
        entry = poison.get(entry_id)
        if mode == "job":
            job_id = operations.reinject_poison_job(
                entry_id, principal.actor, given.decode("utf-8")
            )
            flash(request, f"Poison message {entry_id[:8]} enqueued as job {job_id[:8]}.")
            return RedirectResponse(f"/jobs/{job_id}", status_code=303)
        poison.reinject(entry_id, principal.actor, given or None)
    except poison.EntryNotFound as exc:
        return _not_found(request, exc)
    except poison.PoisonMessage as exc:
        return _entry_page(request, entry, f"Not re-injected, still poison: {exc}", 409)
    except JobValidationError as exc:
        return _entry_page(request, entry, f"Not re-injected, the job is invalid: {exc}", 409)
    except UnicodeDecodeError:
        return _entry_page(request, entry, "Not re-injected: the job is not UTF-8 text", 409)
    flash(request, f"Poison message {entry_id[:8]} re-injected onto {entry.queue}.")
    return RedirectResponse("/dead-letters#poison", status_code=303)


@router.post("/poison/{entry_id}/discard", dependencies=allow(JOBS_OPERATE))
def poison_discard(
    request: Request, entry_id: str, principal: Annotated[Principal, Depends(require_auth)]
) -> Response:
    try:
        poison.discard(entry_id, principal.actor)
    except poison.EntryNotFound as exc:
        return _not_found(request, exc)
    flash(request, f"Poison message {entry_id[:8]} discarded by {principal.actor}.")
    return RedirectResponse("/dead-letters#poison", status_code=303)
