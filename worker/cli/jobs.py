"""`ledgerpush jobs list|show|retry|replay|cancel`: jobs in the ledger and the operator
actions on one of them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from worker.cli.common import console, err, operator
from worker.ledger.models import JOB_STATES, iso_utc

jobs_app = typer.Typer(help="Inspect jobs in the ledger.", no_args_is_help=True)


def _job_dict(job: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "tenant_id": job.tenant_id,
        "idempotency_key": job.idempotency_key,
        "kind": job.kind,
        "state": job.state,
        "attempts": job.attempts,
        "remote": job.remote,
        "error": {
            "category": job.error_category,
            "code": job.error_code,
            "message": job.error_message,
            "fields": job.error_fields,
        }
        if job.error_code
        else None,
        "created_at": iso_utc(job.created_at),
        "updated_at": iso_utc(job.updated_at),
    }


@jobs_app.command("list")
def jobs_list(
    tenant: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List jobs, newest first."""
    from worker.ledger.store import list_jobs

    if state is not None and state not in JOB_STATES:
        err.print(
            f"[red]--state: {escape(state)!r} is not a job state; one of: "
            f"{', '.join(JOB_STATES)}[/red]"
        )
        raise typer.Exit(2)
    jobs = list_jobs(tenant, state, limit)
    if as_json:
        print(json.dumps([_job_dict(j) for j in jobs], indent=2))
        return
    table = Table("id", "tenant", "key", "kind", "state", "attempts", "error")
    for j in jobs:
        table.add_row(
            j.id[:8],
            j.tenant_id,
            j.idempotency_key,
            j.kind,
            j.state,
            str(j.attempts),
            j.error_code or "",
        )
    console.print(table)


_PREFIX_MATCHES_SHOWN = 10


def _resolve_job_id(id_or_prefix: str) -> str:
    """The job whose id is, or starts with, `id_or_prefix` (`jobs list` shows 8 characters).
    Exits with a clear error when none or several match."""
    from worker.ledger.queries import job_id_matches

    if "/" in id_or_prefix:
        return _job_id_by_key(id_or_prefix)
    wanted = id_or_prefix.strip().lower()
    if not wanted:
        err.print("[red]give a job id or the start of one[/red]")
        raise typer.Exit(1)
    matches = job_id_matches(wanted, _PREFIX_MATCHES_SHOWN + 1)
    if not matches:
        err.print(f"[red]no job with id {escape(wanted)} (or an id starting with it)[/red]")
        raise typer.Exit(1)
    if len(matches) > 1:
        more = " (and more)" if len(matches) > _PREFIX_MATCHES_SHOWN else ""
        err.print(
            f"[red]{escape(wanted)} is the start of several job ids{more}; give more of it:[/red]"
        )
        for job_id, tenant_id, key in matches[:_PREFIX_MATCHES_SHOWN]:
            err.print(f"  {job_id}  {escape(tenant_id)}  {escape(key)}")
        raise typer.Exit(1)
    return matches[0][0]


def _job_id_by_key(tenant_and_key: str) -> str:
    """TENANT/IDEMPOTENCY_KEY: split at the first slash (tenant ids have none; keys may)."""
    from worker.ledger.store import find_job_by_key

    tenant_id, _, key = tenant_and_key.partition("/")
    job = find_job_by_key(tenant_id, key) if tenant_id and key else None
    if job is None:
        err.print(
            f"[red]no job of tenant {escape(tenant_id)!r} with idempotency key "
            f"{escape(key)!r}[/red]"
        )
        raise typer.Exit(1)
    return job.id


JOB_REF_HELP = "The job's id, a unique start of it, or TENANT/IDEMPOTENCY_KEY."


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help=JOB_REF_HELP)],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one job with its history and attempts."""
    from worker.ledger.store import JobNotFound, attempts_of, events_of, get_job

    try:
        job = get_job(_resolve_job_id(job_id))
    except JobNotFound as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    data = _job_dict(job)
    data["payload"] = job.payload
    data["history"] = [
        {
            "at": iso_utc(e.at),
            "from": e.from_state,
            "to": e.to_state,
            "by": e.actor,
            "note": e.note,
        }
        for e in events_of(job.id)
    ]
    data["attempts_detail"] = [
        {"number": a.number, "outcome": a.outcome, "error": a.error, "calls": a.calls}
        for a in attempts_of(job.id)
    ]
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        console.print_json(json.dumps(data, default=str))


def _job_action(action: str, job_ref: str, as_json: bool) -> None:
    from worker.ledger.store import JobNotFound
    from worker.ops import operations

    job_id = _resolve_job_id(job_ref)
    run_action = {
        "retry": operations.retry,
        "replay": operations.replay,
        "cancel": operations.cancel,
    }[action]
    try:
        job = run_action(job_id, operator())
    except JobNotFound as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except operations.ActionRefused as exc:
        err.print(f"[red]{action} refused: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(_job_dict(job), indent=2))
    else:
        console.print(f"{action}: job {job.id} is now {job.state}")


AS_JSON = Annotated[bool, typer.Option("--json", help="Print the job as JSON.")]


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str, typer.Argument(help=JOB_REF_HELP)], as_json: AS_JSON = False
) -> None:
    """Run a failed or retry-scheduled job again now (as the dashboard's Retry)."""
    _job_action("retry", job_id, as_json)


@jobs_app.command("replay")
def jobs_replay(
    job_id: Annotated[str, typer.Argument(help=JOB_REF_HELP)], as_json: AS_JSON = False
) -> None:
    """Start a job again from the beginning after a fix; never books a second document."""
    _job_action("replay", job_id, as_json)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help=JOB_REF_HELP)], as_json: AS_JSON = False
) -> None:
    """Cancel a job that wrote nothing to the accounting system."""
    _job_action("cancel", job_id, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
