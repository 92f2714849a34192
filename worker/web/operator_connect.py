"""Dashboard onboarding of tenants of a provider without a consent page (its spec's
`operator_connect`, e.g. Visma.net, whose service apps connect with the company tenant
id): adding a tenant with that identifier, and fixing it on a tenant that must
reconnect. The pages are driven by the spec; nothing here knows a provider."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.providers import registry
from worker.providers.base import NeedsReauth, Transient
from worker.providers.registry import UnknownProvider, spec_for
from worker.providers.spec import OperatorConnect, ProviderSpec
from worker.tenancy.tenants import TenantError, add_tenant, find_tenant
from worker.web.access import TENANTS_ADMIN, allow
from worker.web.auth import Principal, require_auth
from worker.web.templating import flash, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])
log = logging.getLogger("ledgerpush.web")
TENANT_ID_FIELD = Form(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def connected_by_operator() -> dict[str, OperatorConnect]:
    """The providers an operator connects, by name (for the tenant pages)."""
    return {s.name: s.operator_connect for s in registry.specs() if s.operator_connect}


def _operator_connected(provider: str) -> tuple[ProviderSpec, OperatorConnect] | None:
    try:
        spec = spec_for(provider)
    except UnknownProvider:
        return None
    return (spec, spec.operator_connect) if spec.operator_connect else None


async def _identifier(request: Request, provider: str) -> str:
    """The identifier's form field, named by the provider's spec ("" when absent)."""
    found = _operator_connected(provider)
    if found is None:
        return ""
    value = (await request.form()).get(found[1].field)
    return value.strip() if isinstance(value, str) else ""


Identifier = Annotated[str, Depends(_identifier)]


def _not_found(request: Request, text: str) -> Response:
    return render(request, "message.html", {"title": "Not found", "text": text}, 404)


def _identifier_problem(connect: OperatorConnect, value: str) -> str | None:
    if not value:
        return f"the {connect.label.lower()} is required"
    if len(value) > connect.max_length:
        return f"the {connect.label.lower()} has at most {connect.max_length} characters"
    return None


def _form(
    request: Request, spec: ProviderSpec, values: dict[str, str], errors: list[str], status: int
) -> Response:
    context = {"spec": spec, "connect": spec.operator_connect, "values": values, "errors": errors}
    return render(request, "tenant_add.html", context, status)


@router.get(
    "/tenants/add/{provider}", response_class=HTMLResponse, dependencies=allow(TENANTS_ADMIN)
)
def add_form(request: Request, provider: str) -> Response:
    found = _operator_connected(provider)
    if found is None:
        return _not_found(request, f"Tenants of {provider} are not added here.")
    return _form(request, found[0], {}, [], 200)


@router.post("/tenants/add/{provider}", dependencies=allow(TENANTS_ADMIN))
def add(
    request: Request,
    provider: str,
    principal: Annotated[Principal, Depends(require_auth)],
    identifier: Identifier,
    tenant_id: Annotated[str, TENANT_ID_FIELD],
    country: Annotated[str, Form(max_length=2)],
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    found = _operator_connected(provider)
    if found is None:
        return _not_found(request, f"Tenants of {provider} are not added here.")
    spec, connect = found
    values = {"tenant_id": tenant_id, "country": country, connect.field: identifier,
              "display_name": display_name}  # fmt: skip
    problem = _identifier_problem(connect, identifier)
    if problem:
        return _form(request, spec, values, [problem], 422)
    try:
        add_tenant(tenant_id, provider, country.upper(), {connect.credential: identifier},
                   display_name.strip() or None)  # fmt: skip
    except TenantError as exc:
        return _form(request, spec, values, [str(exc)], 409)
    log.info("%s tenant %s added by %s", spec.label, tenant_id, principal.actor)
    flash(request, f"Tenant {tenant_id} added; its first job checks the {connect.label.lower()}.")
    return RedirectResponse(f"/tenants/{tenant_id}", status_code=303)


@router.post("/tenants/{tenant_id}/{provider}/company", dependencies=allow(TENANTS_ADMIN))
def reconnect(
    request: Request,
    tenant_id: str,
    provider: str,
    principal: Annotated[Principal, Depends(require_auth)],
    identifier: Identifier,
) -> Response:
    """Connect with the identifier given (the provider's connect module checks it, binds
    the company it opens, resumes the parked jobs); a refusal is shown on the tenant page
    and nothing is changed."""
    found = _operator_connected(provider)
    tenant = find_tenant(tenant_id)
    if found is None or tenant is None or tenant.provider != provider:
        return _not_found(request, f"There is no tenant {tenant_id} of {provider}.")
    spec, connect = found
    form = f"/tenants/{tenant_id}#{provider}-company"
    problem = _identifier_problem(connect, identifier)
    if problem:
        flash(request, f"Not connected: {problem}")
        return RedirectResponse(form, status_code=303)
    try:
        done = spec.connect.connect(tenant_id, identifier, principal.actor)
    except (NeedsReauth, Transient, TenantError, ValueError) as exc:
        flash(request, f"Not connected: {exc}")
        return RedirectResponse(form, status_code=303)
    log.info("%s tenant %s connected to a company by %s", spec.label, tenant_id, principal.actor)
    flash(request, f"Connected to {done.company.label()}; {done.resumed} parked jobs resumed.")
    return RedirectResponse(f"/tenants/{tenant_id}", status_code=303)
