"""Round trips per job: what one real worker process sends to the ledger and to Redis per
booked invoice. Counts, not timings, so it reads the same on a busy machine.

    .venv/bin/python bench/hotpath_counts.py [--invoices 60] [--tenants 4]
        [--concurrency 1] [--database sqlite|postgresql] [--latency-ms 5] [--sites] [--json]

A throw-away stack (bench/_stack.py: real Redis, the ledger, the simulators over HTTP,
tenants of both providers) and one real `ledgerpush worker` process (Celery, thread pool)
that counts, through SQLAlchemy's engine and pool events and a hook on redis-py's
connections:

- ledger transactions (`begin`), commits, SQL statements (as sent to the driver, with
  SQLite's `BEGIN IMMEDIATE`), connections drawn from the pool (on PostgreSQL each
  costs a pre-ping round trip);
- Redis round trips (one per command sent alone, one per pipeline), commands sent, and
  commands Redis executed (`INFO commandstats` deltas: scripts' inner commands too).

Each is printed twice: counted in the job tasks' own threads between Celery's
`task_prerun` and `task_postrun` (what the pipeline does per job: deterministic), and
for the whole process, which adds Celery's and kombu's receiving and acknowledging, the
outbox's receipt mark, and work that depends on time more than on jobs (event delivery
runs, the ingest drainer's polls, kombu's polling).

The queue holds a warm-up invoice per tenant, then the measured invoices, before the
worker starts; the counts cover the measured invoices only (from the warm-up's last task
to the last measured task, plus a short settle for its acknowledgement), so the one-off
work of a fresh process (references into its memory, script loads) is left out. With
`--sites`, each count is split by where in ledgerpush (or Celery/kombu) it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _stack
from _stack import ChildProcess, Stack, emit, log

from worker.devtools.processes import WORKER_READY

ROOT = Path(__file__).resolve().parent.parent
WORKER_CODE = (str(ROOT / "worker") + os.sep, str(ROOT / "tasks") + os.sep)
#: Frames that only start Celery: calls made below them are Celery's or kombu's own.
NOT_OURS = ("redis_client.py", "db.py", f"cli{os.sep}run.py", f"cli{os.sep}__init__.py")
SETTLE_SECONDS = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=60, help="measured invoices")
    parser.add_argument("--tenants", type=int, default=4, help="tenants, both providers")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="worker threads (1: jobs one by one)"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument(
        "--task-events",
        choices=("on", "off"),
        default="off",
        help="Celery task events (LEDGERPUSH_TASK_EVENTS), off as in bench/throughput.py",
    )
    parser.add_argument("--sites", action="store_true", help="split the counts by caller")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true")
    # Internal: run as the counting worker process.
    parser.add_argument("--count-worker", nargs=3, metavar=("OUT", "SKIP", "COUNT"))
    return parser.parse_args(argv)


# ---------------------------------------------------------------- the counting worker


class Counts:
    """Counters the hooks add to; `window` opens after `skip` tasks, closes after
    `skip + count` (plus a settle) and then writes `out`."""

    def __init__(self, out: Path, skip: int, count: int) -> None:
        self.out, self.skip, self.count = out, skip, count
        self.lock = threading.Lock()
        self.tasks = 0
        self.open = skip == 0
        self.totals: Counter[str] = Counter()
        self.in_tasks: Counter[str] = Counter()
        self.sites: dict[str, Counter[str]] = {}
        self.server_before: dict[str, int] = {}
        self.local = threading.local()

    def add(self, what: str, site: str | None = None, n: int = 1) -> None:
        if not self.open or getattr(self.local, "quiet", False):
            return
        with self.lock:
            self.totals[what] += n
            if getattr(self.local, "in_task", False):
                self.in_tasks[what] += n
            if site is not None:
                self.sites.setdefault(what, Counter())[site] += n

    def server(self) -> dict[str, int]:
        """Commands Redis executed so far, by name (this process's own INFO not counted)."""
        from worker.transport.redis_client import get_redis

        self.local.quiet = True
        try:
            stats: Any = get_redis().info("commandstats")
        finally:
            self.local.quiet = False
        found = {}
        for key, value in stats.items():
            name = key.removeprefix("cmdstat_")
            if name != "info":
                found[name] = int(value["calls"])
        return found

    def task_done(self) -> None:
        with self.lock:
            self.tasks += 1
            tasks = self.tasks
        if tasks == self.skip:
            self._begin()
        if tasks == self.skip + self.count:
            threading.Timer(SETTLE_SECONDS, self._end).start()

    def _begin(self) -> None:
        self.server_before = self.server()
        with self.lock:
            self.totals.clear()
            self.in_tasks.clear()
            self.sites.clear()
            self.open = True

    def _end(self) -> None:
        with self.lock:
            self.open = False
        after = self.server()
        executed = {k: v - self.server_before.get(k, 0) for k, v in after.items()}
        result = {
            "jobs": self.count,
            "totals": dict(self.totals),
            "in_tasks": dict(self.in_tasks),
            "sites": {what: dict(counter) for what, counter in self.sites.items()},
            "redis_executed": {k: v for k, v in executed.items() if v},
        }
        self.out.write_text(json.dumps(result))


def _site(ledger_first: bool) -> str:
    """Where in ledgerpush the call came from: `ledger fn <- caller` for ledger work,
    the first ledgerpush function for Redis, or Celery/kombu when none is on the stack."""
    frame = sys._getframe(2)
    ledger = None
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(WORKER_CODE) and not name.endswith(NOT_OURS):
            where = f"{Path(name).stem}.{frame.f_code.co_name}"
            if ledger_first and ledger is None and f"{os.sep}ledger{os.sep}" in name:
                ledger = where
            elif f"{os.sep}ledger{os.sep}" not in name:
                return f"{ledger} <- {where}" if ledger else where
        frame = frame.f_back  # type: ignore[assignment]
    return ledger or "celery/kombu"


def install_hooks(counts: Counts) -> None:
    from celery.signals import task_postrun, task_prerun
    from redis.connection import AbstractConnection
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from worker.tasknames import QUEUE_FOR_TASK

    def begin(_conn: Any) -> None:
        counts.add("ledger transactions", _site(True))

    def statement(*_: Any) -> None:
        counts.add("SQL statements", _site(True))

    event.listen(Engine, "begin", begin)
    event.listen(Engine, "commit", lambda _c: counts.add("ledger commits"))
    event.listen(Engine, "rollback", lambda _c: counts.add("ledger rollbacks"))
    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Pool, "checkout", lambda *_: counts.add("pool checkouts"))

    sent_packed = AbstractConnection.send_packed_command
    packed_many = AbstractConnection.pack_commands
    send_one = AbstractConnection.send_command

    def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        counts.add("Redis round trips", _site(False))
        sent_packed(self, command, check_health)

    def send_command(self: Any, *args: Any, **kwargs: Any) -> None:
        counts.add("Redis commands sent", str(args[0]).upper() if args else "?")
        send_one(self, *args, **kwargs)

    def pack_commands(self: Any, commands: Any) -> Any:
        for command in commands:
            counts.add("Redis commands sent", str(command[0]).upper())
        return packed_many(self, commands)

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
    AbstractConnection.send_command = send_command  # type: ignore[method-assign]
    AbstractConnection.pack_commands = pack_commands  # type: ignore[method-assign]

    def task_prerun_(sender: Any = None, **_: Any) -> None:
        counts.local.in_task = getattr(sender, "name", None) in QUEUE_FOR_TASK

    def task_postrun_(sender: Any = None, **_: Any) -> None:
        counts.local.in_task = False
        if getattr(sender, "name", None) in QUEUE_FOR_TASK:
            counts.task_done()  # job tasks only (event deliveries run in the window too)

    task_prerun.connect(task_prerun_, weak=False)
    task_postrun.connect(task_postrun_, weak=False)


def count_worker(out: str, skip: int, count: int, concurrency: int) -> None:
    install_hooks(Counts(Path(out), skip, count))
    from worker.cli import main as ledgerpush

    sys.argv = ["ledgerpush", "worker", "--concurrency", str(concurrency),
                "--hostname", "hotpath@%h", "--loglevel", "INFO"]  # fmt: skip
    ledgerpush()


# ---------------------------------------------------------------- the benchmark


def run(args: argparse.Namespace) -> dict[str, Any]:
    tenants = _stack.tenant_set(args.tenants)
    with Stack("hotpath", database=args.database, latency_ms=args.latency_ms) as stack:
        stack.connect(tenants)
        from worker.transport.producer import enqueue

        warm = list(_stack.interleaved(tenants, 1, "warm", 1))
        per_tenant = max(args.invoices // len(tenants), 1)
        jobs = list(_stack.interleaved(tenants, per_tenant, "run", 1))
        for job in warm + jobs:
            enqueue(job)
        out = stack.home / "hotpath-counts.json"
        log(f"[{args.database}] {len(warm)} warm-up + {len(jobs)} measured invoices queued")
        worker = _start_counting_worker(
            stack, out, len(warm), len(jobs), args.concurrency, args.task_events
        )
        try:
            deadline = time.monotonic() + args.timeout
            while not out.exists() and time.monotonic() < deadline:
                if worker.poll() is not None:
                    raise RuntimeError(f"counting worker exited; see {stack.home}/hotpath.log")
                time.sleep(0.2)
            counted = json.loads(out.read_text())
        finally:
            worker.stop(60)
        states = _stack.count_states()
    return summarize(args, counted, states)


def _start_counting_worker(
    stack: Stack, out: Path, skip: int, count: int, concurrency: int, events: str
) -> ChildProcess:
    command = [sys.executable, __file__, "--count-worker", str(out), str(skip), str(count),
               "--concurrency", str(concurrency)]  # fmt: skip
    assert stack.local is not None
    env = stack.local.child_env(LEDGERPUSH_TASK_EVENTS=str(events == "on").lower())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    worker = ChildProcess("hotpath", command, env, stack.home / "hotpath.log", ready=WORKER_READY)
    stack.local.processes.append(worker)
    return worker.start()


def summarize(
    args: argparse.Namespace, counted: dict[str, Any], states: dict[str, int]
) -> dict[str, Any]:
    jobs = counted["jobs"]
    totals = counted["totals"]
    executed = counted["redis_executed"]
    order = ("ledger transactions", "ledger commits", "ledger rollbacks", "SQL statements",
             "pool checkouts", "Redis round trips", "Redis commands sent")  # fmt: skip
    in_tasks = counted["in_tasks"]
    per_job = {name: round(in_tasks.get(name, 0) / jobs, 2) for name in order}
    per_job_all = {name: round(totals.get(name, 0) / jobs, 2) for name in order}
    per_job_all["Redis commands executed"] = round(sum(executed.values()) / jobs, 2)
    result: dict[str, Any] = {
        "benchmark": "hotpath_counts",
        "parameters": {k: v for k, v in vars(args).items() if k not in ("count_worker", "json")},
        "jobs_counted": jobs,
        "job_states": states,
        "per_job_in_the_job_task": per_job,
        "per_job_all_of_the_process": per_job_all,
    }
    if args.sites:
        result["per_job_by_site"] = {
            what: {site: round(n / jobs, 2) for site, n in sorted(sites.items())}
            for what, sites in counted["sites"].items()
        }
        result["redis_executed_per_job"] = {
            name: round(n / jobs, 2) for name, n in sorted(executed.items())
        }
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.count_worker:
        out, skip, count = args.count_worker
        count_worker(out, int(skip), int(count), args.concurrency)
        return 0
    emit(run(args), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
