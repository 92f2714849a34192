"""The `ledgerpush` command line: the Typer app, with each concern's commands registered
from its own module (run, ops, enqueue, jobs, tenants, web, events).

Commands import what they run inside their bodies: `ledgerpush --help` (and shell
completion) then loads only Typer, Rich and the provider registry, not Celery,
SQLAlchemy or the web app."""

from __future__ import annotations

import typer

from worker.cli import enqueue, jobs, ops, run, tenants, web
from worker.cli.common import err
from worker.settings import SettingsError

app = typer.Typer(
    help="Books invoices, credit notes and payments exactly once.", no_args_is_help=True
)
# The order of registration is the order of `ledgerpush --help`.
for concern in (run, ops, enqueue, jobs, tenants, web):
    concern.register(app)


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None
