"""A chaos run's stack and its work: Redis, the ledger, the simulators, the worker
processes and the reconciler; the jobs and poison messages enqueued; progress; the verdict.
The faults are the schedule's (schedule.py)."""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.devtools import localstack
from worker.devtools.chaos.faults import (
    POISON_MAKERS,
    ChaosDatabase,
    broken_copy,
    poison_message,
    poisoned_markers,
)
from worker.devtools.chaos.jobs import plan_jobs
from worker.devtools.chaos.plan import SETTINGS, TENANTS, Options
from worker.devtools.chaos.report import Report
from worker.devtools.chaos.schedule import FaultSchedule
from worker.devtools.chaos.tally import SETTLED, RemoteState, tally, vismanet_state
from worker.devtools.localstack import LocalStack
from worker.devtools.processes import ChildProcess

log = logging.getLogger("ledgerpush.chaos")
RECONCILE_EVERY = 2.0
POISON_EVERY = 40  # one malformed message among this many jobs (at least one of each kind)
#: The reconciler's patience with a retry whose message went missing (e.g. published
#: while Redis was down); production uses worker.ops.reconciler.LOST_RETRY_GRACE.
LOST_RETRY_GRACE = 15.0


class Chaos:
    def __init__(
        self,
        jobs: int,
        kills: int,
        seed: int,
        workers: int,
        concurrency: int,
        options: Options | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.options = options or Options()
        self.kills = kills if "worker-kill" in self.options.faults else 0
        self.worker_count = workers
        self.concurrency = concurrency
        self.plan = plan_jobs(jobs, self.rng)
        self.report = Report(enqueued=0, faults=self.options.faults)
        self.database: ChaosDatabase | None = None
        self.poison_numbers = iter(range(1_000_000))
        self.workers: list[ChildProcess] = []
        self.killed: set[ChildProcess] = set()
        self.started_workers = 0
        self.stop_reconciler = threading.Event()
        self.home = Path(os.environ.get("LEDGERPUSH_CHAOS_HOME", ".ledgerpush/chaos")).resolve()
        self.stack: LocalStack | None = None
        self.schedule = FaultSchedule(self)

    def start(self) -> None:
        from worker.simulators.common import Faults
        from worker.simulators.eaccounting import EAccountingSimulator
        from worker.simulators.economic import EconomicSimulator
        from worker.simulators.vismanet import create_simulator

        stack = self.stack = LocalStack.create(
            self.home, {**SETTINGS, "LEDGERPUSH_WORKER_CONCURRENCY": str(self.concurrency)}
        )
        handler = logging.FileHandler(self.home / "chaos.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("ledgerpush", "celery", "kombu"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
            logging.getLogger(name).propagate = False
        stack.start_redis()
        self.database = self._database()
        self.report.database = self.database.kind
        stack.use_database(self.database.url)
        ea = EAccountingSimulator(
            client_id=SETTINGS["LEDGERPUSH_EACCOUNTING_CLIENT_ID"],
            client_secret=SETTINGS["LEDGERPUSH_EACCOUNTING_CLIENT_SECRET"],
            refresh_mode="one_time",
            # Strict: a refresh token is spent the moment it is used, as with providers
            # that rotate without a grace period; else a replaced one works for 10 minutes.
            refresh_grace_seconds=0 if self.options.strict_rotation else 600,
            faults=self._faults(Faults, self.seed),
        )
        ec = EconomicSimulator(
            app_secret_token=SETTINGS["LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN"],
            app_public_token=SETTINGS["LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN"],
            faults=self._faults(Faults, self.seed + 1),
        )
        vn = create_simulator(faults=self._faults(Faults, self.seed + 2), seed=self.seed + 2)
        stack.start_simulators({"eaccounting": ea, "economic": ec, "vismanet": vn})
        stack.open_ledger()
        stack.connect_tenants((t.tenant_id, t.provider, t.country) for t in TENANTS)
        for _ in range(self.worker_count):
            self.start_worker()

    def _database(self) -> ChaosDatabase:
        given = os.environ.get("LEDGERPUSH_CHAOS_DATABASE_URL")
        if self.options.database == "postgresql":
            return ChaosDatabase.throwaway_postgres(self.options.database_url)
        if given and self.options.database is None:  # an empty database, kept afterwards
            return ChaosDatabase.given(given)
        return ChaosDatabase.sqlite(str(self.home / "ledger.db"))

    def _faults(self, faults: Callable[..., Any], seed: int) -> Any:
        if "provider" not in self.options.faults:
            return faults(seed=seed)
        return faults(
            error_rate=0.03,
            timeout_rate=0.01,
            timeout_seconds=4.0,  # longer than the worker waits: the write lands afterwards
            drop_rate=0.01,
            drop_after_write_rate=0.03,
            late_write_rate=0.01,  # the write lands after the worker stopped waiting
            throttle_rate=0.02,
            seed=seed,
        )

    def start_worker(self) -> None:
        """One more worker; it is not waited for (a real supervisor does not either)."""
        assert self.stack is not None
        self.started_workers += 1
        name = f"chaos-{self.started_workers}"
        worker = self.stack.start_worker(
            f"worker-{name}", self.concurrency, hostname=name, wait=False
        )
        self.workers.append(worker)

    def enqueue_all(self) -> None:
        from worker.transport.producer import enqueue

        poison = "poison" in self.options.faults
        for number, job in enumerate(self.plan.jobs):
            self._again_while_away(functools.partial(enqueue, job), job["idempotency_key"])
            self.report.enqueued += 1
            if poison and number % POISON_EVERY == 0:
                self.push_poison()
        while poison and self.report.poison_sent < len(POISON_MAKERS):
            self.push_poison()
        if poison:
            self.push_broken_copies(-(-len(self.plan.jobs) // POISON_EVERY))

    @staticmethod
    def _again_while_away(action: Callable[[], Any], what: str) -> None:
        while True:  # a producer retries while Redis (or the ledger) is away
            try:
                action()
                return
            except Exception as exc:
                log.warning("%s failed, again in 0.5s: %s", what, exc)
                time.sleep(0.5)

    def push_poison(self) -> None:
        """A malformed raw message onto one of the job queues, as a broken producer in
        another language would push it."""
        from worker.tasknames import INVOICE_TASK, INVOICES_QUEUE, PAYMENT_TASK, PAYMENTS_QUEUE
        from worker.transport.redis_client import get_redis

        number = next(self.poison_numbers)
        queue, task = self.rng.choice(
            ((INVOICES_QUEUE, INVOICE_TASK), (PAYMENTS_QUEUE, PAYMENT_TASK))
        )
        raw = poison_message(number, task)
        self._again_while_away(lambda: get_redis().lpush(queue, raw), f"poison {number}")
        self.report.poison_sent += 1

    def push_broken_copies(self, count: int, patience: float = 60.0) -> None:
        """`count` jobs the ledger holds already, each sent again with a broken field
        (faults.broken_copy), spread over the plan. Only jobs in the ledger: a broken
        message that comes first is its key's job, by design."""
        from worker.transport.redis_client import get_redis

        step = max(len(self.plan.jobs) // count, 1)
        wanted = self.plan.jobs[::step][:count]
        deadline = time.monotonic() + patience
        while wanted and time.monotonic() < deadline:
            for job in [j for j in wanted if self._in_ledger(j)]:
                wanted.remove(job)
                queue, raw = broken_copy(job, self.report.broken_copies_sent)
                push = functools.partial(get_redis().lpush, queue, raw)
                self._again_while_away(push, f"broken copy of {job['idempotency_key']}")
                self.report.broken_copies_sent += 1
            time.sleep(0.5)

    @staticmethod
    def _in_ledger(job: dict[str, Any]) -> bool:
        from worker.jobs import job_id_for
        from worker.ledger.store import find_job

        try:
            return find_job(job_id_for(job["tenant_id"], job["idempotency_key"])) is not None
        except Exception:  # the ledger may be away for a moment
            return False

    def poison_settled(self) -> bool:
        """Every poison message pushed is in the poison list, or none can still get there
        (the job queues are empty)."""
        from worker.tasknames import QUEUES
        from worker.transport.redis_client import get_redis

        try:
            if self.quarantined() >= self.report.poison_sent:
                return True
            return not any(get_redis().llen(queue) for queue in QUEUES)
        except Exception as exc:  # Redis may be away for a moment
            log.warning("poison count: %s", exc)
            return False

    def quarantined(self) -> int:
        """The run's poison messages that are in `ledgerpush.poison`."""
        from worker.transport import poison

        entries = poison.entries(limit=poison.count() + 1)
        return len(poisoned_markers([entry.raw for entry in entries]))

    def supervise(self, say: Callable[[str], None]) -> None:
        """Start a new worker for each that exited on its own, as systemd or Docker would."""
        for process in list(self.workers):
            code = process.poll()
            if code is not None and process not in self.killed:
                self.killed.add(process)
                self.report.unexpected_exits += 1
                self.report.problems.append(f"worker pid {process.pid} exited on its own ({code})")
                say(
                    f"[yellow]worker pid {process.pid} exited on its own ({code}); restarting[/yellow]"
                )
                self.start_worker()

    def reconciler(self) -> None:
        from worker.ops.reconciler import reconcile_stuck_jobs

        while not self.stop_reconciler.wait(RECONCILE_EVERY):
            try:
                resent = reconcile_stuck_jobs(lost_retry_grace=LOST_RETRY_GRACE)
            except Exception as exc:  # Redis may be away for a moment
                log.warning("reconciler: %s", exc)
            else:
                if resent:
                    log.info("reconciler re-sent %s stuck jobs", resent)

    def settled(self) -> int:
        """The run's jobs that are settled (the broken copies kept as invalid jobs are
        not the run's jobs)."""
        from worker.jobs import INVALID_PAYLOAD
        from worker.ledger.queries import JobFilter, find_jobs
        from worker.ledger.store import count_by_state

        try:
            counts = count_by_state()
            invalid = find_jobs(JobFilter(error_code=INVALID_PAYLOAD, per_page=1)).total
        except Exception as exc:  # the ledger may be away for a moment
            log.warning("progress: %s", exc)
            return self._last_settled
        self._last_settled = sum(counts.get(s, 0) for s in SETTLED) - invalid
        return self._last_settled

    _last_settled = 0

    def faults_injected(self) -> int:
        assert self.stack is not None
        return sum(sum(sim.log.snapshot()["faults"].values()) for sim in self.stack.simulators())

    def stop_workers(self) -> None:
        localstack.stop_all(self.workers, 30)

    def verdict(self) -> None:
        from worker.ledger.store import list_jobs

        assert self.stack is not None
        sims = self.stack.sims
        rows = {(j.tenant_id, j.idempotency_key): j for j in list_jobs(limit=10_000_000)}
        remote = RemoteState(
            sims["eaccounting"].state_dump(),
            sims["economic"].state_dump(),
            vismanet_state(sims["vismanet"]),
        )
        tally(self.report, self.plan, rows, remote)
