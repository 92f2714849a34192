"""Tenant pages: connection health, mapping editor, cached references, connect link."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.auth.connect import connect_url
from worker.jobs import INVALID_PAYLOAD
from worker.ledger import store
from worker.ledger.queries import tenant_health
from worker.ops import payment_sync
from worker.ops.operations import bulk_candidates
from worker.providers.registry import spec_for
from worker.tenancy import binding
from worker.tenancy.connections import parked_jobs, resume_parked_jobs
from worker.tenancy.mapping import MappingError, validate_key
from worker.tenancy.refcache import cached_names, invalidate
from worker.tenancy.tenant_admin import disable_tenant, enable_tenant, remove_tenant
from worker.tenancy.tenants import TenantError, UnknownTenant, update_mapping
from worker.web.access import JOBS_OPERATE, JOBS_READ, TENANTS_ADMIN, allow
from worker.web.auth import Principal, require_auth
from worker.web.operator_connect import connected_by_operator
from worker.web.schemas import connect_path
from worker.web.templating import flash, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])
log = logging.getLogger("ledgerpush.web")
CONNECT_LINK_DAYS = 7


def provider_keys(provider: str) -> tuple[list[str], list[str]]:
    """The mapping keys this provider reads: plain ones, and `<prefix>.<rate>` ones."""
    keys = spec_for(provider).mapping
    return sorted(keys.plain), [f"{p}.<rate>" for p in keys.rated]


def shareable_connect_link(tenant_id: str) -> tuple[str | None, str]:
    """The signed link `ledgerpush tenants connect-url` prints, for the copy button; or
    None and, for a provider without a consent page (Visma.net), how it is connected."""
    try:
        return connect_url(tenant_id, ttl=CONNECT_LINK_DAYS * 24 * 3600), ""
    except ValueError as exc:  # the provider's connect flow has no consent page
        return None, str(exc)
    except (LookupError, RuntimeError) as exc:  # e.g. no client id configured
        log.warning("no connect link for tenant %s: %s", tenant_id, exc)
        return None, ""


def retry_all_blocker(retried: list[Any], skipped: list[Any]) -> str:
    """Why "retry all" would send nothing again ("" when it would send some)."""
    if retried:
        return ""
    reasons = set()
    for job in skipped:
        if job.error_code == INVALID_PAYLOAD:
            reasons.add("invalid payloads are fixed at the producer and sent with a new key")
        elif job.purged_at is not None:
            reasons.add("purged jobs are sent again with a new key")
        else:
            reasons.add("the tenant must reconnect first")
    return "; ".join(sorted(reasons))


def _retry_all(tenant_id: str) -> tuple[bool, str]:
    retried, skipped = bulk_candidates(tenant_id)
    return bool(retried), retry_all_blocker(retried, skipped)


@router.get("/tenants", response_class=HTMLResponse, dependencies=allow(JOBS_READ))
def tenants(request: Request) -> Response:
    by_operator = connected_by_operator()
    context = {
        "rows": tenant_health(),
        "connect_path": connect_path,
        "operator_connect": by_operator,
        "added_by_operator": [spec_for(name) for name in by_operator],
    }
    return render(request, "tenants.html", context)


def mapping_text(mapping: dict[str, Any]) -> str:
    return "\n".join(f"{key} = {value}" for key, value in sorted(mapping.items()))


def parse_mapping_text(text: str) -> tuple[dict[str, Any], list[str]]:
    """`key = value` per line; every bad line is reported, not just the first."""
    mapping: dict[str, Any] = {}
    errors = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            errors.append(f"line {number} ({line!r}): expected key = value")
            continue
        try:
            clean = validate_key(key.strip())
        except (MappingError, InvalidOperation) as exc:
            errors.append(f"line {number}: {exc}")
            continue
        if value.strip():
            mapping[clean] = value.strip()
    return mapping, errors


def _tenant_context(tenant_id: str) -> dict[str, Any] | None:
    found = tenant_health(tenant_id)
    if not found:
        return None
    health = found[0]
    plain_keys, rate_keys = provider_keys(health.tenant.provider)
    key_help = spec_for(health.tenant.provider).mapping.help()
    retryable, blocker = _retry_all(tenant_id) if health.failed_now else (False, "")
    link, no_consent_page = shareable_connect_link(tenant_id)
    return {
        "connect_link": link,
        "no_consent_page": no_consent_page,
        "connect_link_days": CONNECT_LINK_DAYS,
        "retryable_now": retryable,
        "retry_blocker": blocker,
        "h": health,
        "t": health.tenant,
        "mapping_text": mapping_text(health.tenant.mapping or {}),
        "references": cached_names(tenant_id),
        "parked": len(parked_jobs(tenant_id)),
        "connect_path": connect_path(tenant_id, health.tenant.provider),
        "operator_connect": connected_by_operator().get(health.tenant.provider),
        "plain_keys": plain_keys,
        "rate_keys": rate_keys,
        "key_help": key_help,
        "recent": store.list_jobs(tenant_id=tenant_id, limit=10),
        "errors": [],
        "company": binding.bound_company(health.tenant),
        "refused": binding.Company.from_record(health.tenant.company_refused),
        "events": binding.events(tenant_id, limit=20),
        "payments": payment_sync.sync_status(tenant_id),
    }


def _missing(request: Request, tenant_id: str) -> Response:
    return render(
        request,
        "message.html",
        {"title": "Not found", "text": f"There is no tenant {tenant_id}."},
        404,
    )


def _tenant_page(
    request: Request,
    tenant_id: str,
    template: str = "tenant.html",
    status: int = 200,
    **changes: Any,
) -> Response:
    """A page about the tenant (`changes` added to its context), or 404."""
    context = _tenant_context(tenant_id)
    if context is None:
        return _missing(request, tenant_id)
    context.update(changes)
    return render(request, template, context, status)


def _back_to_tenant(request: Request, tenant_id: str, message: str, anchor: str = "") -> Response:
    flash(request, message)
    return RedirectResponse(f"/tenants/{tenant_id}{anchor}", status_code=303)


@router.get("/tenants/{tenant_id}", response_class=HTMLResponse, dependencies=allow(JOBS_READ))
def tenant_detail(request: Request, tenant_id: str) -> Response:
    return _tenant_page(request, tenant_id)


@router.post("/tenants/{tenant_id}/mapping", dependencies=allow(TENANTS_ADMIN))
def save_mapping(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(require_auth)],
    mapping: Annotated[str, Form(max_length=20000)] = "",
) -> Response:
    parsed, errors = parse_mapping_text(mapping)
    if not errors:
        try:
            update_mapping(tenant_id, parsed, replace=True)
        except UnknownTenant:
            return _missing(request, tenant_id)
        except MappingError as exc:
            errors = [str(exc)]
    if errors:
        return _tenant_page(request, tenant_id, status=422, errors=errors, mapping_text=mapping)
    invalidate(tenant_id)
    log.info("mapping of tenant %s set to %s by %s", tenant_id, parsed, principal.actor)
    return _back_to_tenant(
        request,
        tenant_id,
        "Mapping saved; cached references dropped so the next job resolves afresh.",
    )


@router.post("/tenants/{tenant_id}/references/refresh", dependencies=allow(JOBS_OPERATE))
def refresh_references(
    request: Request, tenant_id: str, principal: Annotated[Principal, Depends(require_auth)]
) -> Response:
    if not tenant_health(tenant_id):
        return _missing(request, tenant_id)
    invalidate(tenant_id)
    log.info("cached references of tenant %s dropped by %s", tenant_id, principal.actor)
    message = "Cached references dropped; they are fetched again by the next job."
    return _back_to_tenant(request, tenant_id, message)


@router.post("/tenants/{tenant_id}/payments/sync", dependencies=allow(JOBS_OPERATE))
def sync_payments_now(
    request: Request, tenant_id: str, principal: Annotated[Principal, Depends(require_auth)]
) -> Response:
    if not tenant_health(tenant_id):
        return _missing(request, tenant_id)
    payment_sync.queue_sync(tenant_id)
    log.info("payment sync of tenant %s asked for by %s", tenant_id, principal.actor)
    message = "Payment sync queued; reload in a few seconds to see its result."
    return _back_to_tenant(request, tenant_id, message, "#payment-sync")


@router.get(
    "/tenants/{tenant_id}/rebind", response_class=HTMLResponse, dependencies=allow(TENANTS_ADMIN)
)
def confirm_rebind(request: Request, tenant_id: str) -> Response:
    context = _tenant_context(tenant_id)
    if context is None:
        return _missing(request, tenant_id)
    if context["refused"] is None:
        message = "There is no refused company to move this tenant to."
        return _back_to_tenant(request, tenant_id, message)
    return render(request, "tenant_rebind.html", context)


@router.post("/tenants/{tenant_id}/rebind", dependencies=allow(TENANTS_ADMIN))
def rebind(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(require_auth)],
    company_id: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """`company_id` is the company the confirmation page named: if another refused connect
    replaced it meanwhile, the move is refused rather than made to a company not shown."""
    try:
        _, new = binding.rebind(tenant_id, principal.actor, expected=company_id)
    except UnknownTenant:
        return _missing(request, tenant_id)
    except TenantError as exc:
        return _tenant_page(request, tenant_id, status=409, errors=[str(exc)])
    message = f"Moved to {new.label()} by {principal.actor}; connect the tenant again."
    return _back_to_tenant(request, tenant_id, message)


@router.get(
    "/tenants/{tenant_id}/company-sharing",
    response_class=HTMLResponse,
    dependencies=allow(TENANTS_ADMIN),
)
def confirm_sharing(request: Request, tenant_id: str) -> Response:
    return _tenant_page(request, tenant_id, "tenant_sharing.html")


@router.post("/tenants/{tenant_id}/company-sharing", dependencies=allow(TENANTS_ADMIN))
def company_sharing(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(require_auth)],
    allow: Annotated[str, Form(max_length=5)] = "yes",
) -> Response:
    try:
        binding.allow_sharing(tenant_id, principal.actor, allowed=allow == "yes")
    except UnknownTenant:
        return _missing(request, tenant_id)
    verdict = "may" if allow == "yes" else "may no longer"
    message = f"Tenant {verdict} bind a company another tenant is bound to."
    return _back_to_tenant(request, tenant_id, message)


@dataclass(frozen=True)
class TenantAction:
    """An admin action on a tenant behind a confirmation page (GET asks, POST does it)."""

    title: str
    text: str
    #: Does it (TenantError: refused), flashes what happened, returns where to go next.
    perform: Callable[[Request, str, str], str]


def _disable(request: Request, tenant_id: str, actor: str) -> str:
    disable_tenant(tenant_id, actor)
    flash(request, f"Tenant disabled by {actor}; its jobs wait until it is enabled.")
    return f"/tenants/{tenant_id}"


def _enable(request: Request, tenant_id: str, actor: str) -> str:
    enable_tenant(tenant_id, actor)
    resumed = resume_parked_jobs(tenant_id, actor)
    flash(request, f"Tenant enabled by {actor}; {resumed} parked jobs resumed.")
    return f"/tenants/{tenant_id}"


def _remove(request: Request, tenant_id: str, actor: str) -> str:
    remove_tenant(tenant_id, actor)
    flash(request, f"Tenant {tenant_id} removed by {actor}.")
    return "/tenants"


TENANT_ACTIONS = {
    "disable": TenantAction(
        "Disable tenant",
        "Nothing more is booked for this tenant: its jobs wait (parked) until it is enabled "
        "again. Its credentials are kept.",
        _disable,
    ),
    "enable": TenantAction(
        "Enable tenant",
        "The tenant books again and its parked jobs resume (or, without stored credentials, "
        "it waits for a connect).",
        _enable,
    ),
    "remove": TenantAction(
        "Remove tenant",
        "The tenant and its stored credentials are deleted. Its settled jobs stay in the "
        "ledger, so a late duplicate is still recognised. Refused while any job is unsettled.",
        _remove,
    ),
}


def _add_tenant_action(name: str, action: TenantAction) -> None:
    """`GET /tenants/{id}/<name>` (the confirmation page) and `POST` (the action)."""

    def confirm(request: Request, tenant_id: str) -> Response:
        return _tenant_page(request, tenant_id, "tenant_action.html", action=name,
                            title=action.title, text=action.text)  # fmt: skip

    def act(
        request: Request, tenant_id: str, principal: Annotated[Principal, Depends(require_auth)]
    ) -> Response:
        try:
            then = action.perform(request, tenant_id, principal.actor)
        except UnknownTenant:
            return _missing(request, tenant_id)
        except TenantError as exc:
            return _tenant_page(request, tenant_id, status=409, errors=[str(exc)])
        return RedirectResponse(then, status_code=303)

    path = f"/tenants/{{tenant_id}}/{name}"
    admin = allow(TENANTS_ADMIN)
    router.add_api_route(path, confirm, methods=["GET"], response_class=HTMLResponse,
                         dependencies=admin, name=f"confirm_{name}")  # fmt: skip
    router.add_api_route(path, act, methods=["POST"], dependencies=admin, name=name)


for _name, _action in TENANT_ACTIONS.items():
    _add_tenant_action(_name, _action)
