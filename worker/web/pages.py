"""Dashboard pages: overview, jobs, job detail, dead letters, bulk retry."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from redis.exceptions import RedisError

from worker.auth import app_credentials
from worker.explain import explain, explain_error, explain_job
from worker.jobs import INVALID_PAYLOAD, KINDS
from worker.ledger import store
from worker.ledger.models import (
    BOOKED,
    CANCELLED,
    DISABLED,
    JOB_STATES,
    WAITING_FOR_REAUTH,
    utcnow,
)
from worker.ledger.queries import (
    JobFilter,
    dead_letter_groups,
    error_codes,
    find_jobs,
    providers_of,
    recent_dead_letters,
    states_since,
    tenant_health,
    throughput,
)
from worker.ops import alerts, circuit, operations
from worker.tenancy.tenants import PROVIDERS, find_tenant, list_tenants
from worker.web.access import JOBS_OPERATE, JOBS_READ, allow
from worker.web.auth import Principal, require_auth
from worker.web.poison_pages import poison_context
from worker.web.queries import queue_depths, reserved_messages
from worker.web.templating import flash, render
from worker.web.tenant_pages import retry_all_blocker, shareable_connect_link

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])
READ = allow(JOBS_READ)
OPERATE = allow(JOBS_OPERATE)
Action = Literal["retry", "replay", "cancel"]
ACTIONS = {"retry": operations.retry, "replay": operations.replay, "cancel": operations.cancel}
ACTION_TEXT = {
    "retry": (
        "Retry now",
        "Run the job again now, continuing where it stopped. Remote results already "
        "recorded are kept.",
    ),
    "replay": (
        "Replay",
        "Start the job again from the beginning (after a fix to the mapping, tenant or "
        "references). Results already written remotely are kept and an unfinished write is "
        "looked up before it is repeated, so no second document is created.",
    ),
    "cancel": (
        "Cancel",
        "Mark the job cancelled: it will not be booked. Only jobs that wrote nothing to the "
        "accounting system can be cancelled.",
    ),
}


def _overview_data() -> dict[str, Any]:
    now = utcnow()
    buckets = throughput(60)
    health = tenant_health()
    return {
        "states": JOB_STATES,
        "last_hour": states_since(now - dt.timedelta(hours=1)),
        "last_day": states_since(now - dt.timedelta(days=1)),
        "queues": queue_depths(),
        "reserved": reserved_messages(),
        "throughput": buckets,
        "booked_hour": sum(buckets),
        "peak": max(buckets) if buckets else 0,
        "attention": [h for h in health if h.needs_attention],
        "dead_letters": recent_dead_letters(8),
        "circuits": _circuits_to_show(),
        "explain": explain_job,
        "now": now,
        "app_credentials": app_credentials.current(),
    }


def _circuits_to_show() -> list[circuit.Status]:
    """Open circuits, and closed ones still letting their held jobs through."""
    try:
        return [status for status in circuit.statuses() if status.is_open or status.held]
    except RedisError:
        return []


@router.get("/", response_class=HTMLResponse, dependencies=READ)
def overview(request: Request) -> Response:
    return render(request, "overview.html", _overview_data())


@router.get("/overview/live", response_class=HTMLResponse, dependencies=READ)
def overview_live(request: Request) -> Response:
    """The part of the overview htmx reloads every few seconds."""
    return render(request, "_overview_live.html", _overview_data())


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _choice(value: str | None, allowed: tuple[str, ...]) -> str | None:
    return value if value in allowed else None


@router.get("/jobs", response_class=HTMLResponse, dependencies=READ)
def jobs(
    request: Request,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    provider: str | None = None,
    kind: str | None = None,
    state: str | None = None,
    error_code: Annotated[str | None, Query(max_length=100)] = None,
    key: Annotated[str | None, Query(max_length=200)] = None,
    since: str | None = None,
    until: str | None = None,
    sort: str = "created",
    order: str = "desc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    f = JobFilter(
        tenant=tenant or None,
        provider=_choice(provider, PROVIDERS),
        kind=_choice(kind, KINDS),
        state=_choice(state, JOB_STATES),
        error_code=error_code or None,
        key=key or None,
        since=_date(since),
        until=_date(until),
        sort=sort
        if sort in ("created", "updated", "tenant", "key", "kind", "state", "attempts")
        else "created",
        order="asc" if order == "asc" else "desc",
        page=page,
        per_page=per_page,
    )
    context = {
        "f": f,
        "result": find_jobs(f),
        "states": JOB_STATES,
        "kinds": KINDS,
        "providers": PROVIDERS,
        "tenants": [t.id for t in list_tenants()],
        "codes": error_codes(),
    }
    return render(request, "jobs.html", context)


def available_actions(job: Any) -> dict[str, str]:
    """The actions that can help this job, by name, with what each would do; the others
    are not offered (worker/ops/operations.py refuses them anyway, with the reason)."""
    if job.state in (BOOKED, CANCELLED) or job.purged_at is not None:
        return {}
    offered = dict.fromkeys(ACTION_TEXT, "")
    if job.state not in operations.RETRYABLE:
        offered.pop("retry")
    if job.error_code == INVALID_PAYLOAD:
        offered.pop("retry", None)
        offered.pop("replay")
    if job.state not in operations.CANCELLABLE:
        offered.pop("cancel")
    return {action: ACTION_TEXT[action][0] for action in offered}


def _reconnect_link(job: Any) -> str | None:
    """The link the tenant's user opens to reconnect, for a parked job's page."""
    return shareable_connect_link(job.tenant_id)[0] if job.state == WAITING_FOR_REAUTH else None


def _held_by_disable(job: Any) -> bool:
    """A parked job whose tenant an operator disabled: enabling it, not a reconnect, helps."""
    if job.state != WAITING_FOR_REAUTH:
        return False
    tenant = find_tenant(job.tenant_id)
    return tenant is not None and tenant.connection_state == DISABLED


def _job_context(job_id: str) -> dict[str, Any] | None:
    job = store.find_job(job_id)
    if job is None:
        return None
    attempts = store.attempts_of(job.id)
    disabled = _held_by_disable(job)
    return {
        "offered": available_actions(job),
        "connect_link": None if disabled else _reconnect_link(job),
        "tenant_disabled": disabled,
        "job": job,
        "provider": providers_of([job]).get(job.tenant_id),
        "plain": explain_job(job, tenant_disabled=disabled),
        "events": store.events_of(job.id),
        "attempts": attempts,
        "provider_said": _last_provider_answer(attempts),
        "explain_error": explain_error,
        "actions": ACTION_TEXT,
    }


def _last_provider_answer(attempts: list[Any]) -> str | None:
    """The accounting system's own words in the latest attempt that got an answer."""
    for attempt in reversed(attempts):
        original = (attempt.error or {}).get("original")
        if original:
            return str(original)
    return None


def _not_found(request: Request, what: str) -> Response:
    return render(request, "message.html", {"title": "Not found", "text": what}, 404)


@router.get("/jobs/{job_id}", response_class=HTMLResponse, dependencies=READ)
def job_detail(request: Request, job_id: str) -> Response:
    context = _job_context(job_id)
    if context is None:
        return _not_found(request, f"There is no job with id {job_id}.")
    return render(request, "job.html", context)


@router.get("/jobs/{job_id}/live", dependencies=READ)
def job_live(job_id: str, seen: Annotated[str, Query(max_length=64)] = "") -> Response:
    """Polled by an open job page: 204 while nothing changed, else htmx reloads the page."""
    job = store.find_job(job_id)
    if job is None or job.updated_at.isoformat() == seen:
        return Response(status_code=204)
    return Response(status_code=200, headers={"HX-Refresh": "true"})


@router.get("/jobs/{job_id}/{action}", response_class=HTMLResponse, dependencies=OPERATE)
def confirm_action(request: Request, job_id: str, action: Action) -> Response:
    job = store.find_job(job_id)
    if job is None:
        return _not_found(request, f"There is no job with id {job_id}.")
    title, text = ACTION_TEXT[action]
    return render(
        request, "confirm_action.html", {"job": job, "action": action, "title": title, "text": text}
    )


@router.post("/jobs/{job_id}/{action}", dependencies=OPERATE)
def do_action(
    request: Request,
    job_id: str,
    action: Action,
    principal: Annotated[Principal, Depends(require_auth)],
) -> Response:
    try:
        ACTIONS[action](job_id, principal.actor)
    except store.JobNotFound:
        return _not_found(request, f"There is no job with id {job_id}.")
    except operations.ActionRefused as exc:
        context = _job_context(job_id) or {}
        refusal = f"{ACTION_TEXT[action][0]} refused: {exc}"
        return render(request, "job.html", {**context, "refusal": refusal}, 409)
    flash(request, f"{ACTION_TEXT[action][0]}: done by {principal.actor}.")
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/dead-letters", response_class=HTMLResponse, dependencies=READ)
def dead_letters(request: Request) -> Response:
    groups = dead_letter_groups()
    context = {
        "groups": groups,
        "blocked": {
            g.code: retry_all_blocker(*operations.bulk_candidates(None, g.code)) for g in groups
        },
        "explain": explain,
        "total": sum(g.count for g in groups),
        "deliveries": [(d, *alerts.subject_of(d)) for d in alerts.list_deliveries(limit=20)],
        **poison_context(),
    }
    return render(request, "dead_letters.html", context)


@router.post("/webhooks/{delivery_id}/resend", dependencies=OPERATE)
def resend_webhook(
    request: Request, delivery_id: int, principal: Annotated[Principal, Depends(require_auth)]
) -> Response:
    try:
        alerts.resend(delivery_id, principal.actor)
    except alerts.NotResendable as exc:
        flash(request, f"Not re-sent: {exc}", "error")
    else:
        flash(request, f"Webhook delivery {delivery_id} queued again by {principal.actor}.")
    return RedirectResponse("/dead-letters#webhooks", status_code=303)


@router.get("/bulk", response_class=HTMLResponse, dependencies=READ)
def bulk_preview(
    request: Request,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
    error_code: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    tenant, error_code = tenant or None, error_code or None
    candidates, skipped = (
        operations.bulk_candidates(tenant, error_code) if tenant or error_code else ([], [])
    )
    context = {
        "tenant": tenant,
        "error_code": error_code,
        "candidates": candidates,
        "skipped": skipped,
        "chosen": bool(tenant or error_code),
        "tenants": [h.tenant.id for h in tenant_health() if h.failed_now],
        "codes": error_codes(),
    }
    return render(request, "bulk.html", context)


@router.post("/bulk/retry", dependencies=OPERATE)
def bulk_retry(
    request: Request,
    principal: Annotated[Principal, Depends(require_auth)],
    tenant: Annotated[str, Form(max_length=64)] = "",
    error_code: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        count = operations.bulk_retry(principal.actor, tenant or None, error_code or None)
    except operations.ActionRefused as exc:
        flash(request, f"Bulk retry refused: {exc}", "error")
        return RedirectResponse("/bulk", status_code=303)
    flash(request, f"Bulk retry: {count} failed jobs sent again by {principal.actor}.")
    query = "?" + urlencode({"tenant": tenant}) if tenant else ""
    return RedirectResponse("/jobs" + query if count else "/dead-letters", status_code=303)
