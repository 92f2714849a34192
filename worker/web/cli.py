"""CLI commands of the web app: `web`, `users add`, `apikeys create|list|revoke`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)


def web(
    host: Annotated[
        str | None, typer.Option(help="Interface (default LEDGERPUSH_WEB_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default LEDGERPUSH_WEB_PORT).")] = None,
) -> None:
    """Run the dashboard, the JSON API and /metrics (uvicorn)."""
    import uvicorn

    from worker.ledger.db import engine
    from worker.logs import setup_logging
    from worker.settings import get_settings

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    engine()
    bind_host, bind_port = host or settings.web_host, port or settings.web_port
    err.print(f"ledgerpush web on http://{bind_host}:{bind_port} (API docs at /api/docs)")
    # Behind a TLS-terminating proxy on this machine, X-Forwarded-Proto/-For are trusted
    # (uvicorn's default: from 127.0.0.1 only), so https requests get Secure cookies.
    uvicorn.run(
        "worker.web.app:app",
        host=bind_host,
        port=bind_port,
        log_config=None,
        proxy_headers=True,
    )


def users_add(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create an operator account (the password is hashed with argon2)."""
    from worker.web.accounts import AccountError, add_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        add_user(username, password)
    except AccountError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"user {username} added")


def users_list() -> None:
    """List operator accounts."""
    from worker.web.accounts import list_users

    for name in list_users():
        print(name)


def apikeys_create(name: str) -> None:
    """Create an API key for a producer; it is printed once and stored only hashed."""
    from worker.web.accounts import AccountError, create_api_key

    try:
        key = create_api_key(name)
    except AccountError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    err.print(f"API key {name!r} created; store it now, it is not shown again:")
    print(key)


def apikeys_list() -> None:
    """List API keys (name, prefix, last use; never the keys)."""
    from worker.web.accounts import list_api_keys

    table = Table("name", "prefix", "created", "last used", "status")
    for k in list_api_keys():
        table.add_row(
            k.name,
            k.prefix,
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


def register(app: typer.Typer) -> None:
    app.command("web")(web)
    users = typer.Typer(help="Operator accounts for the dashboard.", no_args_is_help=True)
    users.command("add")(users_add)
    users.command("list")(users_list)
    app.add_typer(users, name="users")
    apikeys = typer.Typer(help="API keys for the JSON API.", no_args_is_help=True)
    apikeys.command("create")(apikeys_create)
    apikeys.command("list")(apikeys_list)
    apikeys.command("revoke")(apikeys_revoke)
    app.add_typer(apikeys, name="apikeys")
