"""`ledgerpush tenants …`: tenants, their connections, mapping and company binding; and
`ledgerpush keys rotate`, which re-encrypts their credentials."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from worker.cli.common import console, err, operator
from worker.cli.enqueue import json_error
from worker.cli.events import tenants_sync
from worker.ledger.models import iso_utc
from worker.providers import registry

tenants_app = typer.Typer(
    help="Add and inspect tenants and their connections.", no_args_is_help=True
)
keys_app = typer.Typer(help="Encryption keys for credentials at rest.", no_args_is_help=True)


def _credentials_from(
    stdin: bool, access_token: str | None, refresh_token: str | None, grant_token: str | None
) -> dict[str, Any] | None:
    if stdin:
        # The error names where the JSON breaks, never what was read (credentials).
        text = sys.stdin.read()
        if not text.strip():
            err.print(
                "[red]--credentials-stdin: nothing on stdin (a JSON object was expected)[/red]"
            )
            raise typer.Exit(1)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            err.print(
                f"[red]--credentials-stdin: not valid JSON at {json_error(exc)}; "
                "nothing was added[/red]"
            )
            raise typer.Exit(1) from None
        if not isinstance(data, dict):
            err.print(
                "[red]--credentials-stdin: a JSON object was expected "
                '(e.g. {"refresh_token": "..."}); nothing was added[/red]'
            )
            raise typer.Exit(1)
        return data
    creds = {
        k: v
        for k, v in {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "grant_token": grant_token,
        }.items()
        if v
    }
    return creds or None


@tenants_app.command("add")
def tenants_add(
    tenant_id: str,
    provider: Annotated[str, typer.Option(help=f"One of: {', '.join(registry.names())}.")],
    country: Annotated[
        str,
        typer.Option(
            help="; ".join(f"{', '.join(s.countries)} ({s.name})" for s in registry.specs())
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    credentials_stdin: Annotated[
        bool, typer.Option("--credentials-stdin", help="Read credentials JSON from stdin.")
    ] = False,
    access_token: Annotated[str | None, typer.Option(envvar="LEDGERPUSH_NEW_ACCESS_TOKEN")] = None,
    refresh_token: Annotated[
        str | None, typer.Option(envvar="LEDGERPUSH_NEW_REFRESH_TOKEN")
    ] = None,
    grant_token: Annotated[str | None, typer.Option(envvar="LEDGERPUSH_NEW_GRANT_TOKEN")] = None,
    company_tenant_id: Annotated[
        str | None,
        typer.Option(
            "--tenant-id",
            help="Visma.net: the company tenant id (Visma Admin > Company > Configuration "
            "> Tenant id), not the customer (contract) tenant id.",
        ),
    ] = None,
) -> None:
    """Add a tenant. Credentials are encrypted at rest and never printed."""
    from worker.tenancy.tenants import TenantError, add_tenant

    creds = _credentials_from(credentials_stdin, access_token, refresh_token, grant_token)
    if company_tenant_id:
        creds = {**(creds or {}), "tenant_id": company_tenant_id}
    try:
        add_tenant(tenant_id, provider, country.upper(), creds, name)
    except TenantError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    state = "with credentials" if creds else "without credentials (connect it next)"
    console.print(f"added tenant {tenant_id} ({provider}, {country.upper()}) {state}")


def _tenant_dict(tenant: Any) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "provider": tenant.provider,
        "country": tenant.country,
        "name": tenant.display_name,
        "connection_state": tenant.connection_state,
        "reason": tenant.connection_reason,
        "has_credentials": tenant.credentials is not None,
        "token_expires_at": iso_utc(tenant.token_expires_at),
        "mapping": tenant.mapping,
        "capabilities": tenant.capabilities,
        **_company_dict(tenant),
    }


def _company_dict(tenant: Any) -> dict[str, Any]:
    return {
        "company": tenant.company,
        "company_bound_at": iso_utc(tenant.company_bound_at),
        "company_checked_at": iso_utc(tenant.company_checked_at),
        "company_refused": tenant.company_refused,
        "company_sharing_allowed": bool(tenant.company_sharing_allowed),
    }


@tenants_app.command("list")
def tenants_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List tenants and their connection state."""
    from worker.tenancy.tenants import list_tenants

    rows = [_tenant_dict(t) for t in list_tenants()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "provider", "country", "connection", "reason")
    for r in rows:
        table.add_row(
            r["id"], r["provider"], r["country"], r["connection_state"], r["reason"] or ""
        )
    console.print(table)


@tenants_app.command("show")
def tenants_show(tenant_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one tenant (never its credentials), with its recent audit trail."""
    from worker.tenancy import binding
    from worker.tenancy.tenants import UnknownTenant, get_tenant

    try:
        data = _tenant_dict(get_tenant(tenant_id))
        data["events"] = [
            {"at": iso_utc(e.at), "actor": e.actor, "action": e.action, "note": e.note}
            for e in binding.events(tenant_id, limit=20)
        ]
    except UnknownTenant as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        console.print_json(json.dumps(data))


def _mapping_help() -> str:
    """`tenants map --help`: every provider's keys with what they mean (its spec)."""
    parts = ["Pin the tenant's mapping: references ledgerpush would otherwise infer."]
    for spec in registry.specs():
        keys = "\n\n".join(f"  {key}: {text}" for key, text in spec.mapping.help().items())
        parts.append(f"{spec.label} ({spec.name}):\n\n{keys}")
    return "\n\n".join(parts)


@tenants_app.command("map", help=_mapping_help())
def tenants_map(
    tenant_id: str,
    settings: Annotated[
        list[str], typer.Argument(help="key=value pairs, e.g. vat.25=3 journal=1; key= removes")
    ],
) -> None:
    from worker.tenancy.mapping import MappingError, parse_assignments
    from worker.tenancy.tenants import UnknownTenant, update_mapping

    try:
        tenant = update_mapping(tenant_id, parse_assignments(settings))
    except (MappingError, UnknownTenant) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(tenant.mapping))


def _tenant_change(change: Any, tenant_id: str) -> Any:
    from worker.tenancy.tenants import TenantError, UnknownTenant

    try:
        return change(tenant_id, operator())
    except (TenantError, UnknownTenant) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None


@tenants_app.command("disable")
def tenants_disable(tenant_id: str) -> None:
    """Stop booking for a tenant: its jobs wait (parked) until it is enabled again."""
    from worker.tenancy.tenant_admin import disable_tenant

    _tenant_change(disable_tenant, tenant_id)
    console.print(f"tenant {tenant_id} disabled; its new jobs wait until it is enabled")


@tenants_app.command("enable")
def tenants_enable(tenant_id: str) -> None:
    """Enable a disabled tenant; its parked jobs resume."""
    from worker.tenancy.tenant_admin import enable_tenant

    _tenant_change(enable_tenant, tenant_id)
    from worker.tenancy.connections import resume_parked_jobs

    resumed = resume_parked_jobs(tenant_id, operator())
    console.print(f"tenant {tenant_id} enabled; {resumed} parked jobs resumed")


@tenants_app.command("remove")
def tenants_remove(
    tenant_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a tenant and its credentials (refused while it has unsettled jobs).
    Its settled jobs stay in the ledger, so a late duplicate is still recognised."""
    from worker.tenancy.tenant_admin import remove_tenant

    if not yes:
        typer.confirm(f"Remove tenant {tenant_id} and its stored credentials?", abort=True)
    _tenant_change(remove_tenant, tenant_id)
    console.print(f"tenant {tenant_id} removed")


@tenants_app.command("connect-url")
def tenants_connect_url(
    tenant_id: str,
    days: Annotated[int, typer.Option(help="How long the link stays valid.")] = 7,
) -> None:
    """Print the link the tenant's user opens to connect (or reconnect) their books."""
    from worker.auth.connect import connect_url, missing_app_setting
    from worker.tenancy.tenants import UnknownTenant, get_tenant

    try:
        missing = missing_app_setting(get_tenant(tenant_id).provider)
        if missing:
            err.print(f"[red]{missing} is not set: no connect link can work without it[/red]")
            raise typer.Exit(1)
        print(connect_url(tenant_id, ttl=days * 24 * 3600))
    except (UnknownTenant, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@tenants_app.command("rebind")
def tenants_rebind(
    tenant_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move a tenant to the company last refused for it (audited). Its cached references
    are dropped and the customer connects again with the new company to finish."""
    from worker.tenancy import binding
    from worker.tenancy.tenants import TenantError, UnknownTenant, get_tenant

    try:
        tenant = get_tenant(tenant_id)
    except UnknownTenant as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    old = binding.bound_company(tenant)
    new = binding.Company.from_record(tenant.company_refused)
    if new is None:
        err.print(
            f"[red]tenant {tenant_id} has no refused company to move to: have the customer "
            "connect with the other company first (it is refused and named here)[/red]"
        )
        raise typer.Exit(1)
    question = (
        f"Move tenant {tenant_id} from {old.label() if old else 'no company'} "
        f"to {new.label()}? Its invoices will be booked into {new.name or new.id}."
    )
    if not yes and not typer.confirm(escape(question)):
        raise typer.Exit(1)
    try:
        binding.rebind(tenant_id, operator())
    except TenantError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    console.print(
        escape(f"tenant {tenant_id} moved to {new.label()}; connect it again to finish: ")
        + f"ledgerpush tenants connect-url {tenant_id}"
    )


@tenants_app.command("allow-shared-company")
def tenants_allow_shared_company(
    tenant_id: str,
    revoke: Annotated[bool, typer.Option("--revoke", help="Stop allowing it.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Let this tenant bind a company another tenant is already bound to (audited)."""
    from worker.tenancy import binding
    from worker.tenancy.tenants import UnknownTenant

    if not revoke and not yes:
        question = f"Allow tenant {tenant_id} to book into a company another tenant books into?"
        if not typer.confirm(question):
            raise typer.Exit(1)
    try:
        binding.allow_sharing(tenant_id, operator(), allowed=not revoke)
    except UnknownTenant as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"tenant {tenant_id} {'may no longer' if revoke else 'may'} bind a company "
        "another tenant is bound to"
    )


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every tenant's credentials with the first key of LEDGERPUSH_SECRET_KEY."""
    from worker.crypto import rotate
    from worker.ledger.tenancy import rewrite_credentials

    count = rewrite_credentials(rotate)
    console.print(f"re-encrypted the credentials of {count} tenants")


def register(app: typer.Typer) -> None:
    tenants_app.command("sync")(tenants_sync)
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")
