"""Dashboard onboarding of Visma.net tenants: adding one with its company tenant id, and
fixing that id on a tenant that needs re-authorization (Visma.net service apps have no
consent page: the company tenant id is the whole of the connection)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from worker.providers.base import NeedsReauth, Transient
from worker.providers.registry import spec_for
from worker.tenancy.tenants import TenantError, add_tenant, find_tenant
from worker.web.access import TENANTS_ADMIN, allow
from worker.web.auth import Principal, require_auth
from worker.web.templating import flash, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_auth)])
log = logging.getLogger("ledgerpush.web")
PROVIDER = "vismanet"
#: The credential key of the company tenant id (worker/providers/vismanet/auth.py).
COMPANY_TENANT_KEY = "tenant_id"
TENANT_ID_FIELD = Form(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
COMPANY_FIELD = Form(max_length=100)


def _form(request: Request, values: dict[str, str], errors: list[str], status: int) -> Response:
    context = {"countries": spec_for(PROVIDER).countries, "values": values, "errors": errors}
    return render(request, "vismanet_add.html", context, status)


@router.get("/tenants/add/vismanet", response_class=HTMLResponse, dependencies=allow(TENANTS_ADMIN))
def add_form(request: Request) -> Response:
    return _form(request, {}, [], 200)


@router.post("/tenants/add/vismanet", dependencies=allow(TENANTS_ADMIN))
def add(
    request: Request,
    principal: Annotated[Principal, Depends(require_auth)],
    tenant_id: Annotated[str, TENANT_ID_FIELD],
    country: Annotated[str, Form(max_length=2)],
    company_tenant_id: Annotated[str, COMPANY_FIELD],
    display_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    values = {"tenant_id": tenant_id, "country": country, "company_tenant_id": company_tenant_id,
              "display_name": display_name}  # fmt: skip
    company = company_tenant_id.strip()
    if not company:
        return _form(request, values, ["the company tenant id is required"], 422)
    try:
        add_tenant(tenant_id, PROVIDER, country.upper(), {COMPANY_TENANT_KEY: company},
                   display_name.strip() or None)  # fmt: skip
    except TenantError as exc:
        return _form(request, values, [str(exc)], 409)
    log.info("Visma.net tenant %s added by %s", tenant_id, principal.actor)
    flash(request, f"Tenant {tenant_id} added; its first job checks the company tenant id.")
    return RedirectResponse(f"/tenants/{tenant_id}", status_code=303)


@router.post("/tenants/{tenant_id}/vismanet/company", dependencies=allow(TENANTS_ADMIN))
def fix_company(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(require_auth)],
    company_tenant_id: Annotated[str, COMPANY_FIELD],
) -> Response:
    """Ask Visma Connect for a token with the new id, bind the company it opens, resume
    the parked jobs; a refusal is shown on the tenant page and nothing is changed."""
    tenant = find_tenant(tenant_id)
    if tenant is None or tenant.provider != PROVIDER:
        text = f"There is no Visma.net tenant {tenant_id}."
        return render(request, "message.html", {"title": "Not found", "text": text}, 404)
    try:
        done = spec_for(PROVIDER).connect.connect(
            tenant_id, company_tenant_id.strip(), principal.actor
        )
    except (NeedsReauth, Transient, TenantError, ValueError) as exc:
        flash(request, f"Not connected: {exc}")
        return RedirectResponse(f"/tenants/{tenant_id}#vismanet-company", status_code=303)
    log.info("Visma.net tenant %s connected to a company by %s", tenant_id, principal.actor)
    flash(request, f"Connected to {done.company.label()}; {done.resumed} parked jobs resumed.")
    return RedirectResponse(f"/tenants/{tenant_id}", status_code=303)
