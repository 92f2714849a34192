"""`ledgerpush webhooks endpoints add|list|enable|disable|remove|rotate-secret|test`,
`ledgerpush events tail` and `ledgerpush tenants sync` (payment events read from the
books now)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from worker.cli.common import console, err
from worker.providers.base import ProviderError

endpoints_app = typer.Typer(help="Webhook subscriptions (Standard Webhooks).", no_args_is_help=True)
events_app = typer.Typer(help="Outbound events (the same as the webhooks).", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(1)


@endpoints_app.command("add")
def endpoints_add(
    url: str,
    events: Annotated[
        str | None, typer.Option(help="Comma-separated event types (default: all).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
) -> None:
    """Subscribe URL; prints its signing secret (shown only now)."""
    from worker.ops.events import EventError
    from worker.ops.webhooks import add_endpoint

    try:
        endpoint, secret = add_endpoint(url, events, tenant)
    except EventError as exc:
        raise _fail(str(exc)) from None
    console.print(f"endpoint {endpoint.id} added; its signing secret (shown only now):")
    print(secret)


@endpoints_app.command("list")
def endpoints_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List endpoints and their health (never their secrets)."""
    from worker.ops.webhooks import describe, list_endpoints

    rows = [describe(e) for e in list_endpoints()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "url", "events", "tenant", "enabled", "health")
    for r in rows:
        health = "failing" if r["failing"] else ("errors" if r["failing_since"] else "ok")
        table.add_row(
            str(r["id"]), r["url"], r["events"], r["tenant_id"] or "*", str(r["enabled"]), health
        )
    console.print(table)


def _set_enabled(endpoint_id: int, enabled: bool) -> None:
    from worker.ops.webhooks import EndpointNotFound, set_enabled

    try:
        set_enabled(endpoint_id, enabled)
    except EndpointNotFound as exc:
        raise _fail(str(exc)) from None
    console.print(f"endpoint {endpoint_id} {'enabled' if enabled else 'disabled'}")


@endpoints_app.command("enable")
def endpoints_enable(endpoint_id: int) -> None:
    """Deliver to the endpoint again (its backlog first)."""
    _set_enabled(endpoint_id, True)


@endpoints_app.command("disable")
def endpoints_disable(endpoint_id: int) -> None:
    """Stop delivering to the endpoint (events keep queueing for it)."""
    _set_enabled(endpoint_id, False)


@endpoints_app.command("remove")
def endpoints_remove(endpoint_id: int) -> None:
    """Remove the endpoint and its deliveries."""
    from worker.ops.webhooks import EndpointNotFound, remove_endpoint

    try:
        remove_endpoint(endpoint_id)
    except EndpointNotFound as exc:
        raise _fail(str(exc)) from None
    console.print(f"endpoint {endpoint_id} removed")


@endpoints_app.command("rotate-secret")
def endpoints_rotate_secret(
    endpoint_id: int,
    overlap_hours: Annotated[
        float, typer.Option(min=0, help="How long the old secret also signs.")
    ] = 24.0,
) -> None:
    """A new signing secret; the old one keeps signing during the overlap."""
    from worker.ops.events import EventError
    from worker.ops.webhooks import EndpointNotFound, rotate_secret

    try:
        secret = rotate_secret(endpoint_id, overlap_hours)
    except (EndpointNotFound, EventError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"new secret of endpoint {endpoint_id} (the old one signs {overlap_hours} h):")
    print(secret)


@endpoints_app.command("test")
def endpoints_test(endpoint_id: int) -> None:
    """Post a signed `webhook.test` event to the endpoint now; prints its answer."""
    from worker.ops.webhooks import EndpointNotFound, send_test

    try:
        attempt = send_test(endpoint_id)
    except EndpointNotFound as exc:
        raise _fail(str(exc)) from None
    answer = f"HTTP {attempt.status_code}" if attempt.status_code else attempt.error
    console.print(f"endpoint {endpoint_id}: {answer} in {attempt.seconds * 1000:.0f} ms")
    if not attempt.ok:
        raise typer.Exit(1)


@events_app.command("tail")
def events_tail(
    after: Annotated[int, typer.Option(help="Start after this cursor (0: the oldest).")] = 0,
    types: Annotated[str | None, typer.Option(help="Comma-separated event types.")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", "-f")] = False,
) -> None:
    """Print events as JSON lines (`cursor`, then the webhook body), oldest first."""
    from worker.ops.events import EventError, feed, parse_types

    try:
        chosen = parse_types(types)
    except EventError as exc:
        raise _fail(str(exc)) from None
    while True:
        found = feed(after, chosen, tenant, 500)
        for event in found:
            print(json.dumps({"cursor": event.id, **event.payload}), flush=True)
            after = event.id
        if not follow:
            return
        if not found:
            time.sleep(1.0)


def tenants_sync(tenant_id: str) -> None:
    """Read the tenant's payment status from the books now (invoice.paid and
    invoice.payment_changed events for what changed)."""
    from worker.ops.payment_sync import sync_status, sync_tenant
    from worker.tenancy.tenants import UnknownTenant

    try:
        written = sync_tenant(tenant_id)
    except UnknownTenant as exc:
        raise _fail(str(exc)) from None
    except ProviderError as exc:
        raise _fail(f"could not read the books: {exc.message}") from None
    console.print(f"{len(written)} payment event{'s' if len(written) != 1 else ''} written")
    console.print_json(json.dumps(sync_status(tenant_id)))
