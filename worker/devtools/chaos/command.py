"""`ledgerpush chaos`'s run: the stack started, the jobs driven through the fault
schedule until every one is settled, the verdict printed."""

from __future__ import annotations

import json
import threading
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from worker.devtools.chaos.plan import TENANTS, Options
from worker.devtools.chaos.report import result_table
from worker.devtools.chaos.session import Chaos
from worker.transport.children import stop_on_signals

#: Seconds an event waits for its share of settled jobs before it happens anyway.
EVENT_PATIENCE = 20.0


def run(
    jobs: int,
    kills: int,
    seed: int,
    as_json: bool,
    workers: int = 2,
    concurrency: int = 8,
    timeout: float = 900,
    options: Options | None = None,
) -> int:
    console = Console(stderr=as_json)
    stop_on_signals()  # clean up the children on `kill` too (worker/transport/children.py)
    chaos = Chaos(jobs, kills, seed, workers, concurrency, options)
    started = time.monotonic()
    finished = False
    try:
        chaos.start()
        reconciler = threading.Thread(target=chaos.reconciler, name="reconciler", daemon=True)
        reconciler.start()
        finished = _drive(chaos, console, timeout)
        chaos.stop_workers()
        chaos.stop_reconciler.set()
        chaos.report.faults_injected = chaos.faults_injected()
        chaos.report.poison_quarantined = chaos.quarantined()
        chaos.verdict()
    finally:
        chaos.stop_reconciler.set()
        chaos.stop_workers()
        if chaos.stack is not None:
            chaos.stack.stop()
        if chaos.database is not None:
            chaos.database.end_faults()
            _dispose_ledger()
            chaos.database.drop()
    report = chaos.report
    report.seconds = round(time.monotonic() - started, 1)
    if as_json:
        print(json.dumps(report.as_json()))
    else:
        console.print(result_table(report))
    for problem in report.problems[:20]:
        console.print(f"[red]{problem}[/red]")
    if not finished:
        console.print(f"[red]not every job settled within {timeout:.0f}s[/red]")
    if report.needs_review:
        console.print("[red]jobs were left for review: a fault must never need a human[/red]")
    if report.poison_missing:
        console.print(
            f"[red]{report.poison_missing} poison messages are not in the poison list[/red]"
        )
    return 1 if report.failed_verdict() else 0


def _dispose_ledger() -> None:
    """Close this process's connections, so that its database can be dropped."""
    from worker.ledger.db import close_ledger_connections

    close_ledger_connections()


def _drive(chaos: Chaos, console: Console, timeout: float) -> bool:
    total = len(chaos.plan.jobs)
    events = chaos.schedule.events()
    columns = (
        TextColumn("[bold]chaos[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("settled · kills {task.fields[kills]} · Redis restarts {task.fields[redis]}"),
        TimeElapsedColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("jobs", total=total, kills=0, redis=0)

        started = time.monotonic()

        def say(text: str) -> None:
            progress.console.print(f"  {time.monotonic() - started:6.1f}s  {text}")

        def update() -> int:
            done = chaos.settled()
            progress.update(
                task,
                completed=done,
                kills=chaos.report.worker_kills,
                redis=chaos.report.redis_restarts,
            )
            return done

        enqueuer = threading.Thread(target=chaos.enqueue_all, name="enqueue", daemon=True)
        enqueuer.start()
        say(f"enqueueing {total} jobs over {len(TENANTS)} tenants; {len(chaos.workers)} workers")
        deadline = time.monotonic() + timeout
        for number, event in enumerate(events, start=1):
            # Spread the events over the run: each waits for its share of settled jobs.
            target = total * number / (len(events) + 1)
            waited = time.monotonic()
            while update() < target and time.monotonic() - waited < EVENT_PATIENCE:
                chaos.supervise(say)
                time.sleep(chaos.rng.uniform(0.05, 0.3))
            if event == "kill":
                chaos.schedule.kill_worker(say)
            elif event == "redis":
                chaos.schedule.restart_redis(say)
            elif event == "tokens":
                chaos.schedule.expire_tokens(say)
            else:
                chaos.schedule.fault_window(event, say)
        enqueuer.join()
        quiet = 0
        while time.monotonic() < deadline:
            chaos.supervise(say)
            done = update() >= total and chaos.poison_settled()
            quiet = quiet + 1 if done else 0
            if quiet >= 3:
                return True
            time.sleep(0.5)
        return False
