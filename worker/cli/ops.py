"""Housekeeping commands: `purge` (data retention), `schema` (the job contract) and
`keygen` (a key for credentials at rest)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from worker.cli.common import console, err
from worker.jobs import job_schema


def purge(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age of settled jobs to purge: 180d, 26w, 36h.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Remove customer personal data (payloads, error texts, request paths) of jobs
    settled before the given age; keeps what exactly-once needs (README: Data retention)."""
    from worker.ops.purge import PurgeError, parse_age
    from worker.ops.purge import purge as purge_settled

    try:
        age = parse_age(older_than)
    except PurgeError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    result = purge_settled(age, dry_run=dry_run)
    if as_json:
        print(json.dumps({
            "cutoff": result.cutoff.isoformat(), "jobs": result.jobs,
            "attempts": result.attempts, "dry_run": result.dry_run,
        }))  # fmt: skip
        return
    verb = "would purge" if dry_run else "purged"
    console.print(
        f"{verb} {result.jobs} jobs and {result.attempts} attempts settled before "
        f"{result.cutoff:%Y-%m-%d %H:%M} UTC"
    )


def schema() -> None:
    """Print the JSON Schema of the queue contract (one job payload)."""
    print(json.dumps(job_schema(), indent=2))


def keygen() -> None:
    """Print a new Fernet key for LEDGERPUSH_SECRET_KEY."""
    from worker.crypto import generate_key

    print(generate_key())


def register(app: typer.Typer) -> None:
    for command in (purge, schema, keygen):
        app.command()(command)
