"""CLI commands of the web app and for operators: `web`, `users …`, `apikeys
create|list|revoke`, `webhooks list|resend` (and the `webhooks endpoints` and `events`
groups of worker/cli/events.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from worker.cli.common import console, err
from worker.cli.events import endpoints_app, events_app
from worker.ledger.models import iso_utc
from worker.providers import registry
from worker.settings import get_settings


def web(
    host: Annotated[
        str | None, typer.Option(help="Interface (default LEDGERPUSH_WEB_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default LEDGERPUSH_WEB_PORT).")] = None,
) -> None:
    """Run the dashboard, the JSON API and /metrics (uvicorn)."""
    import uvicorn

    from worker.ledger.db import open_ledger
    from worker.logs import setup_logging
    from worker.telemetry import init_sentry

    settings = get_settings()
    registry.check_settings()
    bind_host, bind_port = host or settings.web_host, port or settings.web_port
    refusal = settings.web_bind_problem(bind_host)
    if refusal:
        err.print(f"[red]refusing to start: {refusal}[/red]")
        raise typer.Exit(2)
    setup_logging(settings.log_level, settings.log_json)
    init_sentry()
    open_ledger()
    err.print(f"ledgerpush web on http://{bind_host}:{bind_port} (API docs at /api/docs)")
    # Behind a TLS-terminating proxy on this machine, X-Forwarded-Proto/-For are trusted
    # (uvicorn's default: from 127.0.0.1 only), so https requests get Secure cookies.
    uvicorn.run(
        "worker.web.app:app",
        host=bind_host,
        port=bind_port,
        log_config=None,
        proxy_headers=True,
        # worker/web/access_log.py writes the access log, without query-string secrets.
        access_log=False,
    )


def users_add(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    role: Annotated[
        str,
        typer.Option(
            help="viewer (reads everything), operator (also retry, replay, cancel), "
            "admin (also mappings and connections)."
        ),
    ] = "operator",
) -> None:
    """Create a dashboard account (the password is hashed with argon2)."""
    from worker.web.accounts import AccountError, add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_user(username, password, role)
    except AccountError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"user {username} added ({role})")


def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List operator accounts."""
    from worker.web.accounts import list_user_roles

    accounts = list_user_roles()
    if as_json:
        print(json.dumps([{"username": n, "role": r} for n, r in accounts], indent=2))
        return
    for name, role in accounts:
        print(f"{name}\t{role}")


def users_remove(username: str) -> None:
    """Delete an operator account: it can no longer sign in, and its open dashboard
    sessions end at once."""
    from worker.web.accounts import AccountError, remove_user

    try:
        ended = remove_user(username)
    except AccountError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"user {username} removed; {_sessions_text(ended)} ended")


def _sessions_text(count: int) -> str:
    return f"{count} open session{'' if count == 1 else 's'}"


def users_set_password(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set a new password for an operator account; its open dashboard sessions end, so
    it signs in again with the new password."""
    from worker.web.accounts import AccountError, set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        ended = set_password(username, password)
    except AccountError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"password of user {username} changed; {_sessions_text(ended)} ended")


def users_set_role(username: str, role: str) -> None:
    """Change an account's role: viewer, operator or admin."""
    from worker.web.accounts import AccountError, set_role

    try:
        set_role(username, role)
    except AccountError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"user {username} is now {role}")


def apikeys_create(
    name: str,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Repeat or comma-separate: jobs:write (submit, read its own jobs), jobs:read, "
            "jobs:operate (retry, replay, cancel), tenants:admin (mapping, connect, rebind, tenant actions). "
            "Default: jobs:write.",
        ),
    ] = None,
) -> None:
    """Create an API key; it is printed once and stored only hashed."""
    from worker.web.access import DEFAULT_KEY_SCOPES, parse_scopes
    from worker.web.accounts import AccountError, create_api_key

    scopes = scope or list(DEFAULT_KEY_SCOPES)
    try:
        key = create_api_key(name, scopes)
    except AccountError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    granted = " ".join(parse_scopes(scopes))
    err.print(f"API key {name!r} created ({granted}); store it now, it is not shown again:")
    print(key)


def apikeys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List API keys (name, prefix, last use; never the keys)."""
    from worker.web.accounts import list_api_keys

    if as_json:
        rows = [
            {
                "name": k.name,
                "prefix": k.prefix,
                "scopes": list(k.scopes),
                "created_at": iso_utc(k.created_at),
                "last_used_at": iso_utc(k.last_used_at),
                "revoked": k.revoked,
            }
            for k in list_api_keys()
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table()
    for column in ("name", "prefix"):
        table.add_column(column, no_wrap=True)
    for column in ("scopes", "created", "last used", "status"):
        table.add_column(column)
    for k in list_api_keys():
        table.add_row(
            k.name,
            k.prefix,
            " ".join(k.scopes),
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never",
            "revoked" if k.revoked else "active",
        )
    console.print(table)


def apikeys_revoke(name_or_prefix: str) -> None:
    """Revoke the API keys with this name or prefix."""
    from worker.web.accounts import revoke_api_key

    count = revoke_api_key(name_or_prefix)
    if not count:
        err.print(f"[red]no active API key named or prefixed {name_or_prefix!r}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {count} API key{'s' if count != 1 else ''}")


def _delivery_dict(delivery: Any) -> dict[str, Any]:
    from worker.ops.alert_delivery import subject_of

    tenant, job = subject_of(delivery)
    return {
        "id": delivery.id,
        "event": delivery.event,
        "tenant_id": tenant,
        "job_id": job,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": iso_utc(delivery.created_at),
        "delivered_at": iso_utc(delivery.delivered_at),
    }


def webhooks_list(
    status: Annotated[
        str | None, typer.Option(help="pending, retrying, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List alert webhook deliveries, newest first."""
    from worker.ops.alert_delivery import list_deliveries

    rows = [_delivery_dict(d) for d in list_deliveries(status, limit)]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "event", "tenant / job", "status", "attempts", "last error", "created")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["event"],
            r["tenant_id"] + (f" / {r['job_id'][:8]}" if r["job_id"] else ""),
            r["status"],
            str(r["attempts"]),
            r["last_error"] or "",
            r["created_at"][:16].replace("T", " "),
        )
    console.print(table)


def webhooks_resend(delivery_id: int) -> None:
    """Send an undelivered (failed, pending or retrying) webhook again."""
    from worker.ops.alert_delivery import NotResendable, resend

    try:
        resend(delivery_id, actor="cli")
    except NotResendable as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"webhook delivery {delivery_id} queued again")


def register(app: typer.Typer) -> None:
    app.command("web")(web)
    users = typer.Typer(help="Operator accounts for the dashboard.", no_args_is_help=True)
    users.command("add")(users_add)
    users.command("list")(users_list)
    users.command("set-role")(users_set_role)

    users.command("remove")(users_remove)
    users.command("set-password")(users_set_password)
    app.add_typer(users, name="users")
    apikeys = typer.Typer(help="API keys for the JSON API.", no_args_is_help=True)
    apikeys.command("create")(apikeys_create)
    apikeys.command("list")(apikeys_list)
    apikeys.command("revoke")(apikeys_revoke)
    app.add_typer(apikeys, name="apikeys")
    webhooks = typer.Typer(help="Alert webhook deliveries.", no_args_is_help=True)
    webhooks.command("list")(webhooks_list)
    webhooks.command("resend")(webhooks_resend)
    webhooks.add_typer(endpoints_app, name="endpoints")
    app.add_typer(webhooks, name="webhooks")
    app.add_typer(events_app, name="events")
