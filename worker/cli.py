"""The `ledgerpush` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from worker.providers import registry
from worker.settings import SettingsError

app = typer.Typer(
    help="Books invoices, credit notes and payments exactly once.", no_args_is_help=True
)
jobs_app = typer.Typer(help="Inspect jobs in the ledger.", no_args_is_help=True)
tenants_app = typer.Typer(
    help="Add and inspect tenants and their connections.", no_args_is_help=True
)
keys_app = typer.Typer(help="Encryption keys for credentials at rest.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)


def _setup(log_level: str | None = None) -> None:
    from worker.logs import setup_logging
    from worker.settings import get_settings
    from worker.telemetry import init_sentry

    settings = get_settings()
    setup_logging(log_level or settings.log_level, settings.log_json)
    init_sentry()


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Threads per worker process.")] = None,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "",
    loglevel: Annotated[str, typer.Option()] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
) -> None:
    """Run a Celery worker (thread pool) on the ledgerpush queues."""
    from worker.app import app as celery_app
    from worker.ledger.db import open_ledger
    from worker.tasknames import QUEUES

    _setup(loglevel)
    open_ledger()
    argv = ["worker", f"--loglevel={loglevel}", f"--queues={queues or ','.join(QUEUES)}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    celery_app.worker_main(argv)


@app.command()
def beat(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the scheduler: proactive token refresh and the reconciler."""
    from worker.app import app as celery_app
    from worker.settings import get_settings

    _setup(loglevel)
    schedule = get_settings().home / "beat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"])


@app.command()
def ingest(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Drain the plain ingest list `ledgerpush.ingest` on its own (workers also drain it
    unless LEDGERPUSH_INGEST_DRAINER=false)."""
    import signal

    from worker.ingest import Drainer
    from worker.ledger.db import open_ledger

    _setup(loglevel)
    open_ledger()
    drainer = Drainer()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: drainer.stop.set())
    drainer.run()


@app.command()
def simulate(
    system: Annotated[str, typer.Argument(help=f"One of: {', '.join(registry.names())}.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8101,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
) -> None:
    """Run a local simulator of an accounting system (seeded demo companies)."""
    try:
        spec = registry.spec_for(system)
    except registry.UnknownProvider as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(spec.simulator_banner.format(url=f"http://{host}:{port}"))
    spec.serve_simulator(port, host)


@app.command()
def demo(
    once: Annotated[
        bool, typer.Option("--once", help="Exit when every job is terminal or parked.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the jobs to settle.")] = 300,
) -> None:
    """Run everything on embedded defaults against the simulators, with live progress."""
    from worker.devtools.demo import run

    raise typer.Exit(run(once, as_json, timeout))


@app.command()
def chaos(
    jobs: Annotated[
        int, typer.Option(help="Jobs to enqueue (invoices, credit notes, payments).")
    ] = 1000,
    kills: Annotated[int, typer.Option(help="Worker processes to SIGKILL during the run.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the jobs, the faults and the schedule.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    workers: Annotated[int, typer.Option(help="Worker processes at any time.", min=2)] = 2,
    concurrency: Annotated[int, typer.Option(help="Threads per worker process.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every job to settle.")] = 900,
    faults: Annotated[
        str,
        typer.Option(
            help="Faults to inject, by name and comma-separated, or all: worker-kill, "
            "redis-restart, db-outage, db-readonly, poison, provider, provider-outage."
        ),
    ] = "worker-kill,redis-restart,provider",
    database: Annotated[
        str | None,
        typer.Option(
            help="sqlite (in the chaos home), or postgresql: a throwaway database on the "
            "server at --database-url. Default: LEDGERPUSH_CHAOS_DATABASE_URL if set, else sqlite."
        ),
    ] = None,
    database_url: Annotated[
        str, typer.Option(help="The PostgreSQL server for --database postgresql.")
    ] = "postgresql://postgres@127.0.0.1:5432/postgres",
    strict_rotation: Annotated[
        bool,
        typer.Option(help="One-time eAccounting refresh tokens with no grace period."),
    ] = False,
    window: Annotated[
        float,
        typer.Option(
            help="Seconds each database and provider outage lasts (on SQLite plus its "
            "30 s busy timeout).",
            min=1,
        ),
    ] = 20,
) -> None:
    """Kill workers and Redis, take the database and the providers away and push poison
    messages while jobs run against faulty simulators, then compare the ledger with the
    simulators: exits 1 if anything was lost or duplicated."""
    from worker.devtools.chaos import Options, parse_faults, run

    if database not in (None, "sqlite", "postgresql"):
        err.print("[red]--database: must be sqlite or postgresql[/red]")
        raise typer.Exit(2)
    try:
        chosen = parse_faults(faults)
    except ValueError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    options = Options(chosen, database, database_url, strict_rotation, window)
    raise typer.Exit(run(jobs, kills, seed, as_json, workers, concurrency, timeout, options))


@app.command()
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
    from worker.purge import PurgeError, parse_age
    from worker.purge import purge as purge_settled

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


@app.command()
def schema() -> None:
    """Print the JSON Schema of the queue contract (one job payload)."""
    from worker.jobs import job_schema

    print(json.dumps(job_schema(), indent=2))


@app.command()
def keygen() -> None:
    """Print a new Fernet key for LEDGERPUSH_SECRET_KEY."""
    from worker.crypto import generate_key

    print(generate_key())


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every tenant's credentials with the first key of LEDGERPUSH_SECRET_KEY."""
    from worker.crypto import rotate
    from worker.ledger.tenancy import rewrite_credentials

    count = rewrite_credentials(rotate)
    console.print(f"re-encrypted the credentials of {count} tenants")


class _BadInput(Exception):
    """The input as a whole cannot be read (no file, not JSON): nothing is enqueued."""


class _Stopped(Exception):
    """Enqueueing stopped before the end of the input (broker unreachable, Ctrl-C)."""

    def __init__(self, reason: str, exit_code: int, done: int, bad: int, resume: int) -> None:
        super().__init__(reason)
        self.reason, self.exit_code = reason, exit_code
        self.done, self.bad, self.resume = done, bad, resume


#: A whole file or stdin read as one JSON document (an array of jobs) may be this large.
_MAX_DOCUMENT_BYTES = 1 << 30
_BROKER_UNREACHABLE = 3
_INTERRUPTED = 130


def _json_error(exc: json.JSONDecodeError) -> str:
    return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"


def _one_document(text: str) -> bool:
    """True for one (possibly pretty-printed) JSON object, False for JSONL: the first
    object ends before the text does, or it is broken and another line opens an object."""
    from worker import safejson

    try:
        safejson.parse(text, _MAX_DOCUMENT_BYTES)
    except json.JSONDecodeError as exc:
        return exc.msg != "Extra data" and "\n{" not in text
    except safejson.UnsafeJSON:
        return "\n{" not in text
    return True


# (number, where, item): the item is a JSONL line's text or an array item already read
# (it may hold values the loader refused; they are reported per item).
_Entry = tuple[int, str, Any]


def _read_jobs(source: str) -> list[_Entry]:
    """One entry per job: "line N" for JSONL, "item N" for a JSON array, "job" for a
    single JSON object. Raises _BadInput when the whole input is unreadable."""
    from worker import safejson

    name = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise _BadInput(f"cannot read {name}: {exc}") from None
    stripped = text.strip()
    if stripped.startswith("[") or (stripped.startswith("{") and _one_document(stripped)):
        try:
            data = safejson.parse(stripped, _MAX_DOCUMENT_BYTES)
        except json.JSONDecodeError as exc:
            what = "a JSON array" if stripped.startswith("[") else "a JSON object"
            raise _BadInput(
                f"{name} is not valid JSON ({what} was expected): {_json_error(exc)}; "
                "nothing was enqueued"
            ) from None
        except safejson.UnsafeJSON as exc:
            raise _BadInput(f"{name}: {exc.problems[0].message}; nothing was enqueued") from None
        if isinstance(data, list):
            return [(n, f"item {n}", item) for n, item in enumerate(data, start=1)]
        return [(1, "job", data)]
    return [
        (n, f"line {n}", line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()
    ]


def _parse_entry(item: Any) -> Any:
    """The job, or JobValidationError naming the fields (also for values the loader
    refused in an array item)."""
    from worker import safejson
    from worker.jobs import FieldError, JobValidationError, parse_job

    if not isinstance(item, str):
        refused = safejson.problems(item)
        if refused:
            raise JobValidationError(
                [FieldError(field=p.field, message=p.message) for p in refused]
            )
    return parse_job(item)


def _report_invalid(where: str, exc: Exception) -> None:
    for error in getattr(exc, "errors", []):
        if error.field == "(body)":
            err.print(f"[red]{where}: {escape(error.message)}[/red]")
        else:
            err.print(f"[red]{where}: {escape(error.field)}: {escape(error.message)}[/red]")


def _broker_address() -> str:
    """Where Redis was expected, without credentials."""
    from urllib.parse import urlsplit

    from worker.redis_client import redis_url

    try:
        parts = urlsplit(redis_url())
    except Exception:
        return "Redis"
    return f"Redis at {parts.hostname}:{parts.port or 6379}" if parts.hostname else "Redis"


def _enqueue_all(entries: list[_Entry], progress: Progress) -> tuple[int, int]:
    """(enqueued, bad); raises _Stopped naming the entry to resume from."""
    from kombu.exceptions import OperationalError as BrokerError
    from redis.exceptions import RedisError

    from worker.jobs import JobValidationError
    from worker.producer import enqueue as enqueue_job

    task = progress.add_task("enqueueing", total=len(entries))
    done = bad = 0
    current = entries[0][0] if entries else 0
    try:
        for number, where, item in entries:
            current = number
            try:
                job_id = enqueue_job(_parse_entry(item))
            except JobValidationError as exc:  # the contract, or a limit of the tenant's system
                bad += 1
                _report_invalid(where, exc)
            except (RedisError, BrokerError, OSError) as exc:
                detail = " ".join(str(exc).split())[:200] or type(exc).__name__
                reason = f"{_broker_address()} is unreachable ({detail})"
                raise _Stopped(reason, _BROKER_UNREACHABLE, done, bad, current) from None
            else:
                # Counted before it is printed: an interrupt in between resumes after it.
                done, current = done + 1, number + 1
                print(job_id, flush=True)
            progress.advance(task)
    except KeyboardInterrupt:
        raise _Stopped("interrupted", _INTERRUPTED, done, bad, current) from None
    return done, bad


@app.command()
def enqueue(
    source: Annotated[
        str, typer.Argument(help="A JSON job, a JSON array or JSONL file; - for stdin.")
    ],
    from_line: Annotated[
        int,
        typer.Option(
            "--from-line",
            min=1,
            help="Start at this line of JSONL input (or item of a JSON array): resume "
            "where an interrupted run stopped.",
        ),
    ] = 1,
) -> None:
    """Validate and enqueue jobs; bad lines are reported by number and skipped."""
    try:
        entries = [e for e in _read_jobs(source) if e[0] >= from_line]
    except _BadInput as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
    try:
        with Progress(console=err, transient=True, disable=len(entries) < 20) as progress:
            done, bad = _enqueue_all(entries, progress)
    except _Stopped as stop:
        unit = "item" if entries[0][1].startswith("item") else "line"
        invalid = f" ({stop.bad} invalid)" if stop.bad else ""
        rerun = f"ledgerpush enqueue {source} --from-line {stop.resume}"
        err.print(
            f"[red]stopped: {escape(stop.reason)}; enqueued {stop.done} of {len(entries)}"
            f"{invalid}; {unit} {stop.resume} and after were not enqueued; "
            f"resume with: {escape(rerun)}[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(stop.exit_code) from None
    err.print(f"enqueued {done} of {len(entries)}")
    if bad:
        raise typer.Exit(1)


def _job_dict(job: Any) -> dict[str, Any]:
    from worker.ledger.models import iso_utc

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
    from worker.ledger.models import JOB_STATES
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
    from worker.ledger.models import iso_utc
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


def _operator() -> str:
    """Who the audit trail names for a command-line action."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _job_action(action: str, job_ref: str, as_json: bool) -> None:
    from worker import operations
    from worker.ledger.store import JobNotFound

    job_id = _resolve_job_id(job_ref)
    run_action = {
        "retry": operations.retry,
        "replay": operations.replay,
        "cancel": operations.cancel,
    }[action]
    try:
        job = run_action(job_id, _operator())
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
                f"[red]--credentials-stdin: not valid JSON at {_json_error(exc)}; "
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
    from worker.tenants import TenantError, add_tenant

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
    from worker.ledger.models import iso_utc

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
    from worker.ledger.models import iso_utc as when

    return {
        "company": tenant.company,
        "company_bound_at": when(tenant.company_bound_at),
        "company_checked_at": when(tenant.company_checked_at),
        "company_refused": tenant.company_refused,
        "company_sharing_allowed": bool(tenant.company_sharing_allowed),
    }


@tenants_app.command("list")
def tenants_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List tenants and their connection state."""
    from worker.tenants import list_tenants

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
    from worker import binding
    from worker.ledger.models import iso_utc
    from worker.tenants import UnknownTenant, get_tenant

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
    from worker.mapping import MappingError, parse_assignments
    from worker.tenants import UnknownTenant, update_mapping

    try:
        tenant = update_mapping(tenant_id, parse_assignments(settings))
    except (MappingError, UnknownTenant) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(tenant.mapping))


def _tenant_change(change: Any, tenant_id: str) -> Any:
    from worker.tenants import TenantError, UnknownTenant

    try:
        return change(tenant_id, _operator())
    except (TenantError, UnknownTenant) as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None


@tenants_app.command("disable")
def tenants_disable(tenant_id: str) -> None:
    """Stop booking for a tenant: its jobs wait (parked) until it is enabled again."""
    from worker.tenant_admin import disable_tenant

    _tenant_change(disable_tenant, tenant_id)
    console.print(f"tenant {tenant_id} disabled; its new jobs wait until it is enabled")


@tenants_app.command("enable")
def tenants_enable(tenant_id: str) -> None:
    """Enable a disabled tenant; its parked jobs resume."""
    from worker.tenant_admin import enable_tenant

    _tenant_change(enable_tenant, tenant_id)
    from worker.connections import resume_parked_jobs

    resumed = resume_parked_jobs(tenant_id, _operator())
    console.print(f"tenant {tenant_id} enabled; {resumed} parked jobs resumed")


@tenants_app.command("remove")
def tenants_remove(
    tenant_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a tenant and its credentials (refused while it has unsettled jobs).
    Its settled jobs stay in the ledger, so a late duplicate is still recognised."""
    from worker.tenant_admin import remove_tenant

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
    from worker.tenants import UnknownTenant, get_tenant

    try:
        missing = missing_app_setting(get_tenant(tenant_id).provider)
        if missing:
            err.print(f"[red]{missing} is not set: no connect link can work without it[/red]")
            raise typer.Exit(1)
        print(connect_url(tenant_id, ttl=days * 24 * 3600))
    except (UnknownTenant, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


def _cli_actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"


@tenants_app.command("rebind")
def tenants_rebind(
    tenant_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Move a tenant to the company last refused for it (audited). Its cached references
    are dropped and the customer connects again with the new company to finish."""
    from worker import binding
    from worker.tenants import TenantError, UnknownTenant, get_tenant

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
        binding.rebind(tenant_id, _cli_actor())
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
    from worker import binding
    from worker.tenants import UnknownTenant

    if not revoke and not yes:
        question = f"Allow tenant {tenant_id} to book into a company another tenant books into?"
        if not typer.confirm(question):
            raise typer.Exit(1)
    try:
        binding.allow_sharing(tenant_id, _cli_actor(), allowed=not revoke)
    except UnknownTenant as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"tenant {tenant_id} {'may no longer' if revoke else 'may'} bind a company "
        "another tenant is bound to"
    )


from worker.events_cli import tenants_sync as _tenants_sync  # noqa: E402
from worker.web.cli import register as _register_web  # noqa: E402

_register_web(app)
tenants_app.command("sync")(_tenants_sync)


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None
