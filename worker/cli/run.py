"""The processes ledgerpush runs: `worker`, `beat`, `ingest`, `simulate`, `demo` and
`chaos`."""

from __future__ import annotations

import signal
from typing import Annotated

import typer
from rich.markup import escape

from worker.cli.common import console, err, setup
from worker.providers import registry
from worker.settings import get_settings


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Threads per worker process (default: LEDGERPUSH_WORKER_CONCURRENCY, 32)."
        ),
    ] = None,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "",
    loglevel: Annotated[str, typer.Option()] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
) -> None:
    """Run a Celery worker (thread pool) on the ledgerpush queues."""
    from worker.ledger.db import open_ledger
    from worker.tasknames import QUEUES
    from worker.transport.app import app as celery_app

    setup(loglevel)
    open_ledger()
    argv = ["worker", f"--loglevel={loglevel}", f"--queues={queues or ','.join(QUEUES)}"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    if hostname:
        argv.append(f"--hostname={hostname}")
    celery_app.worker_main(argv)


def beat(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the scheduler: proactive token refresh and the reconciler."""
    from worker.transport.app import app as celery_app

    setup(loglevel)
    schedule = get_settings().home / "beat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", f"--loglevel={loglevel}", f"--schedule={schedule}"])


def ingest(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Drain the plain ingest list `ledgerpush.ingest` on its own (workers also drain it
    unless LEDGERPUSH_INGEST_DRAINER=false)."""
    from worker.ledger.db import open_ledger
    from worker.transport.ingest import Drainer

    setup(loglevel)
    open_ledger()
    drainer = Drainer()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: drainer.stop.set())
    drainer.run()


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


def register(app: typer.Typer) -> None:
    for command in (worker, beat, ingest, simulate, demo, chaos):
        app.command()(command)
