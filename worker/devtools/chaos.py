"""`ledgerpush chaos`: exactly-once effects, demonstrated under failure.

In its own home (`.ledgerpush/chaos`, wiped; `LEDGERPUSH_CHAOS_HOME` moves it) it starts
an embedded Redis with the persistence ledgerpush ships (AOF, appendfsync always), a
ledger (SQLite in the home; `--database postgresql`: a throwaway database on a server;
`LEDGERPUSH_CHAOS_DATABASE_URL`: an empty database given), the three simulators, worker
processes and a reconciler loop, and enqueues invoices, credit notes and payments over
several tenants of each provider (eAccounting, e-conomic, Visma.net ERP). While they run it injects the faults switched on
(FAULTS): SIGKILLs workers at random moments — some right after a remote write was
applied, before the worker heard back — and starts new ones; SIGKILLs Redis once and
restarts it on the same port and data; seeded provider faults (5xx, timeouts whose write
is applied after the client gave up, connections dropped before and after the write was
applied, 429s); one window each of a database refusing connections, a read-only
database (worker/devtools/chaos_faults.py) and a provider-wide outage; malformed raw messages
pushed onto the queues among the jobs. It expires every access token twice. Then it
waits until every job is settled and compares the ledger with what the simulators hold.

lost       enqueued jobs not settled, booked without their document (or payment) in the
           accounting system, or failed (other than needs_review) although it is there
duplicates documents beyond the first per job (booked invoices and credit notes by
           e-conomic's references.other / eAccounting's YourReference / Visma.net's
           externalReference, drafts (Visma.net: unreleased documents) left beside a
           booked one, payments by reference and amount (Visma.net: paymentRef))
poison     malformed messages pushed, and how many of them are in `ledgerpush.poison`
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.children import stop_on_signals
from worker.devtools import localstack
from worker.devtools.chaos_faults import (
    POISON_MAKERS,
    ChaosDatabase,
    poison_message,
    poisoned_markers,
)
from worker.devtools.localstack import LocalStack
from worker.embedded_redis import EmbeddedRedis

log = logging.getLogger("ledgerpush.chaos")
SETTLED = ("booked", "failed", "cancelled", "waiting_for_reauth")
HOLD_SECONDS = 20.0
RECONCILE_EVERY = 2.0
FAULTS = (
    "worker-kill", "redis-restart", "db-outage", "db-readonly", "poison", "provider",
    "provider-outage",
)  # fmt: skip
DEFAULT_FAULTS = ("worker-kill", "redis-restart", "provider")
#: Faults that last a window of `--window` seconds, and the event that starts each.
WINDOWS = {"db-outage": "db-outage", "db-readonly": "db-readonly", "provider-outage": "outage"}
#: Seconds an event waits for its share of settled jobs before it happens anyway.
EVENT_PATIENCE = 20.0
POISON_EVERY = 40  # one malformed message among this many jobs (at least one of each kind)
#: The reconciler's patience with a retry whose message went missing (e.g. published
#: while Redis was down); production uses worker.reconciler.LOST_RETRY_GRACE.
LOST_RETRY_GRACE = 15.0
SETTINGS = {
    "LEDGERPUSH_ENV": "demo",
    "LEDGERPUSH_EACCOUNTING_CLIENT_ID": "ledgerpush-chaos",
    "LEDGERPUSH_EACCOUNTING_CLIENT_SECRET": "chaos-secret",
    "LEDGERPUSH_ECONOMIC_APP_SECRET_TOKEN": "chaos-app-secret",
    "LEDGERPUSH_ECONOMIC_APP_PUBLIC_TOKEN": "chaos-app-public",
    "LEDGERPUSH_RETRY_BACKOFF_BASE": "0.2",
    "LEDGERPUSH_RETRY_BACKOFF_MAX": "2",
    "LEDGERPUSH_MAX_RETRIES": "50",
    "LEDGERPUSH_HTTP_TIMEOUT": "3",
    "LEDGERPUSH_LEASE_SECONDS": "5",
    "LEDGERPUSH_VISIBILITY_TIMEOUT": "30",
    "LEDGERPUSH_TASK_TIME_LIMIT": "12",
    "LEDGERPUSH_TASK_SOFT_TIME_LIMIT": "10",
    "LEDGERPUSH_LOG_JSON": "false",
    # An open circuit probes the provider every few seconds, not every 30 s.
    "LEDGERPUSH_CIRCUIT_OPEN_SECONDS": "3",
}


def parse_faults(text: str) -> tuple[str, ...]:
    """`all`, or names of FAULTS separated by commas; ValueError names the unknown one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return FAULTS
    unknown = [n for n in names if n not in FAULTS]
    if unknown or not names:
        raise ValueError(
            f"--faults: unknown fault {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(FAULTS)} or all"
        )
    return tuple(n for n in FAULTS if n in names)


def old_retry_budget() -> float:
    """Seconds the retries of a job lasted under the old count (8) with chaos's backoff:
    a database window longer than this would have dead-lettered jobs."""
    base = float(SETTINGS["LEDGERPUSH_RETRY_BACKOFF_BASE"])
    cap = float(SETTINGS["LEDGERPUSH_RETRY_BACKOFF_MAX"])
    return float(sum(min(base * 2**n, cap) for n in range(8)))


@dataclass(frozen=True)
class Options:
    """What a run injects, on which database."""

    faults: tuple[str, ...] = DEFAULT_FAULTS
    database: str | None = None  # sqlite, postgresql, or None: LEDGERPUSH_CHAOS_DATABASE_URL
    database_url: str = ""  # the PostgreSQL server for --database postgresql
    strict_rotation: bool = False
    window: float = 20.0


@dataclass(frozen=True)
class TenantPlan:
    tenant_id: str
    provider: str
    country: str
    currency: str
    rates: tuple[str, ...]
    city: tuple[str, str]


TENANTS = (
    TenantPlan("chaos-ea-no", "eaccounting", "NO", "NOK", ("25", "15"), ("0155", "Oslo")),
    TenantPlan("chaos-ea-se", "eaccounting", "SE", "SEK", ("25", "12"), ("111 22", "Stockholm")),
    TenantPlan("chaos-ea-nl", "eaccounting", "NL", "EUR", ("21", "9"), ("3511 AB", "Utrecht")),
    TenantPlan("chaos-ea-fi", "eaccounting", "FI", "EUR", ("25.5",), ("00100", "Helsinki")),
    TenantPlan("chaos-ec-dk", "economic", "DK", "DKK", ("25",), ("8000", "Aarhus C")),
    TenantPlan("chaos-ec-no", "economic", "NO", "NOK", ("25",), ("0155", "Oslo")),
    TenantPlan("chaos-ec-se", "economic", "SE", "SEK", ("25",), ("111 22", "Stockholm")),
    TenantPlan("chaos-vn-no", "vismanet", "NO", "NOK", ("25", "15"), ("0155", "Oslo")),
    TenantPlan("chaos-vn-no-2", "vismanet", "NO", "NOK", ("25", "12"), ("5003", "Bergen")),
)
#: Paths of the remote writes a kill can follow, per simulator.
WRITE_PATHS = {
    "eaccounting": (
        r"/customerinvoicedrafts$",
        r"/customerinvoicedrafts/[^/]+/convert$",
        r"/customerinvoices/[^/]+/payments$",
    ),
    "economic": (r"/invoices/drafts$", r"/invoices/booked$", r"/journals/\d+/vouchers$"),
    # Create invoice / credit note, their release, payment create, payment release (the
    # ERP answers 202 and releases it in the background).
    "vismanet": (
        r"/v2/customerinvoice$",
        r"/v2/customerCreditNote$",
        r"/v1/(customerinvoice|customerCreditNote)/[^/]+/action/release$",
        r"/v1/customerPayment$",
        r"/v1/customerPayment/[^/]+/action/release$",
    ),
}


@dataclass
class Plan:
    """The jobs of one run, reproducible from the seed."""

    jobs: list[dict[str, Any]]
    tenants: dict[str, TenantPlan]


def plan_jobs(count: int, rng: random.Random) -> Plan:
    today = dt.date.today()
    issued, paid, due = today - dt.timedelta(2), today - dt.timedelta(1), today + dt.timedelta(14)
    jobs: list[dict[str, Any]] = []
    open_invoices: dict[str, list[dict[str, Any]]] = {t.tenant_id: [] for t in TENANTS}
    for number in range(count):
        tenant = rng.choice(TENANTS)
        key = f"chaos-{number:05d}"
        candidates = open_invoices[tenant.tenant_id]
        roll = rng.random()
        if candidates and roll < 0.15:
            original = candidates.pop(rng.randrange(len(candidates)))
            jobs.append(_credit_note(tenant, key, original, paid))
        elif candidates and roll < 0.40:
            original = candidates.pop(rng.randrange(len(candidates)))
            jobs.append(_payment(tenant, key, original, paid, rng))
        else:
            job = _invoice(tenant, key, issued, due, rng)
            jobs.append(job)
            candidates.append(job)
    return Plan(jobs, {t.tenant_id: t for t in TENANTS})


def _invoice(
    tenant: TenantPlan, key: str, issued: dt.date, due: dt.date, rng: random.Random
) -> dict[str, Any]:
    number = rng.randint(1, 5)
    lines = [
        {
            "description": f"Chaos {key} item {index + 1}",
            "quantity": str(rng.randint(1, 5)),
            "unit_price": f"{rng.randint(100, 2000)}.00",
            "vat_rate": rng.choice(tenant.rates),
        }
        for index in range(rng.randint(1, 3))
    ]
    postal, city = tenant.city
    return {
        "tenant_id": tenant.tenant_id,
        "idempotency_key": key,
        "kind": "invoice",
        "invoice": {
            "issue_date": issued.isoformat(),
            "due_date": due.isoformat(),
            "currency": tenant.currency,
            "customer": {
                "external_id": f"chaos-c{number}",
                "name": f"Chaos Customer {number} {tenant.country}",
                "country": tenant.country,
                "is_private_person": False,
                "address": {"line1": f"Main street {number}", "postal_code": postal, "city": city},
            },
            "lines": lines,
            "your_reference": key,
        },
    }


def _credit_note(
    tenant: TenantPlan, key: str, original: dict[str, Any], day: dt.date
) -> dict[str, Any]:
    first = original["invoice"]["lines"][0]
    return {
        "tenant_id": tenant.tenant_id,
        "idempotency_key": key,
        "kind": "credit_note",
        "credit_note": {
            "original_idempotency_key": original["idempotency_key"],
            "issue_date": day.isoformat(),
            "reason": key,
            "lines": [{**first, "description": f"Credit {key}", "quantity": "1"}],
        },
    }


def gross_of(invoice: dict[str, Any]) -> Decimal:
    return sum(
        (
            Decimal(line["quantity"])
            * Decimal(line["unit_price"])
            * (1 + Decimal(line["vat_rate"]) / 100)
        ).quantize(Decimal("0.01"))
        for line in invoice["invoice"]["lines"]
    ) or Decimal(0)


def _payment(
    tenant: TenantPlan, key: str, original: dict[str, Any], day: dt.date, rng: random.Random
) -> dict[str, Any]:
    gross = gross_of(original)
    share = Decimal(rng.choice(("0.25", "0.5", "0.8")))
    amount = (gross * share).quantize(Decimal("0.01"))
    return {
        "tenant_id": tenant.tenant_id,
        "idempotency_key": key,
        "kind": "payment",
        "payment": {
            "invoice_idempotency_key": original["idempotency_key"],
            "amount": f"{amount:.2f}",
            "currency": tenant.currency,
            "payment_date": day.isoformat(),
            "reference": key,
        },
    }


# -- the run ------------------------------------------------------------------------------


@dataclass
class Report:
    enqueued: int = 0
    booked: int = 0
    failed: int = 0
    needs_review: int = 0
    lost: int = 0
    duplicates: int = 0
    worker_kills: int = 0
    redis_restarts: int = 0
    faults_injected: int = 0
    seconds: float = 0.0
    kills_after_write: int = 0
    token_expiries: int = 0
    unexpected_exits: int = 0
    db_outages: int = 0
    db_readonly_windows: int = 0
    provider_outages: int = 0
    poison_sent: int = 0
    poison_quarantined: int = 0
    database: str = "sqlite"
    faults: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        keys = (
            "enqueued", "booked", "failed", "needs_review", "lost", "duplicates",
            "worker_kills", "redis_restarts", "faults_injected", "seconds", "db_outages",
            "db_readonly_windows", "provider_outages", "poison_sent", "poison_quarantined",
            "database",
        )  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "faults": list(self.faults)}

    @property
    def poison_missing(self) -> int:
        return self.poison_sent - self.poison_quarantined

    def failed_verdict(self) -> bool:
        return bool(self.lost or self.duplicates or self.needs_review or self.poison_missing)


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
        self.workers: list[subprocess.Popen[bytes]] = []
        self.killed: set[subprocess.Popen[bytes]] = set()
        self.started_workers = 0
        self.stop_reconciler = threading.Event()
        self.home = Path(os.environ.get("LEDGERPUSH_CHAOS_HOME", ".ledgerpush/chaos")).resolve()
        self.stack: LocalStack | None = None
        self.redis: EmbeddedRedis | None = None

    # -- set-up -----------------------------------------------------------------------

    def start(self) -> None:
        from worker.simulators.common import Faults
        from worker.simulators.eaccounting import EAccountingSimulator
        from worker.simulators.economic import EconomicSimulator
        from worker.simulators.vismanet import create_simulator

        stack = self.stack = localstack.prepare_home(
            self.home, {**SETTINGS, "LEDGERPUSH_WORKER_CONCURRENCY": str(self.concurrency)}
        )
        handler = logging.FileHandler(self.home / "chaos.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("ledgerpush", "celery", "kombu"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
            logging.getLogger(name).propagate = False
        self.redis = EmbeddedRedis(self.home / "redis", die_with_parent=True).start()
        localstack.setenv(stack, {"LEDGERPUSH_REDIS_URL": self.redis.url})
        self.database = self._database()
        self.report.database = self.database.kind
        localstack.setenv(stack, {"LEDGERPUSH_DATABASE_URL": self.database.url})
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
        localstack.start_simulators(stack, ea, ec, vn)
        from worker.ledger.db import open_ledger

        open_ledger()
        for tenant in TENANTS:
            if tenant.provider == "eaccounting":
                localstack.connect_eaccounting(
                    stack, tenant.tenant_id, tenant.country, tenant.tenant_id
                )
            elif tenant.provider == "vismanet":
                localstack.connect_vismanet(stack, tenant.tenant_id, tenant.country)
            else:
                localstack.connect_economic(stack, tenant.tenant_id, tenant.country)
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
        assert self.stack is not None
        self.started_workers += 1
        name = f"chaos-{self.started_workers}"
        args = ["worker", f"--concurrency={self.concurrency}", f"--hostname={name}@%h"]
        self.workers.append(localstack.start_process(self.stack, args, f"worker-{name}"))

    def enqueue_all(self) -> None:
        from worker.producer import enqueue

        poison = "poison" in self.options.faults
        for number, job in enumerate(self.plan.jobs):
            self._again_while_away(functools.partial(enqueue, job), job["idempotency_key"])
            self.report.enqueued += 1
            if poison and number % POISON_EVERY == 0:
                self.push_poison()
        while poison and self.report.poison_sent < len(POISON_MAKERS):
            self.push_poison()

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
        from worker.redis_client import get_redis
        from worker.tasknames import INVOICE_TASK, INVOICES_QUEUE, PAYMENT_TASK, PAYMENTS_QUEUE

        number = next(self.poison_numbers)
        queue, task = self.rng.choice(
            ((INVOICES_QUEUE, INVOICE_TASK), (PAYMENTS_QUEUE, PAYMENT_TASK))
        )
        raw = poison_message(number, task)
        self._again_while_away(lambda: get_redis().lpush(queue, raw), f"poison {number}")
        self.report.poison_sent += 1

    def poison_settled(self) -> bool:
        """Every poison message pushed is in the poison list, or none can still get there
        (the job queues are empty)."""
        from worker.redis_client import get_redis
        from worker.tasknames import QUEUES

        try:
            if self.quarantined() >= self.report.poison_sent:
                return True
            return not any(get_redis().llen(queue) for queue in QUEUES)
        except Exception as exc:  # Redis may be away for a moment
            log.warning("poison count: %s", exc)
            return False

    def quarantined(self) -> int:
        """The run's poison messages that are in `ledgerpush.poison`."""
        from worker import poison

        entries = poison.entries(limit=poison.count() + 1)
        return len(poisoned_markers([entry.raw for entry in entries]))

    # -- the faults ------------------------------------------------------------------

    def events(self) -> list[str]:
        faults = self.options.faults
        events = ["kill"] * self.kills + ["tokens", "tokens"]
        events += ["redis"] if "redis-restart" in faults else []
        events += [event for fault, event in WINDOWS.items() if fault in faults]
        self.rng.shuffle(events)
        while events[0] in ("redis", *WINDOWS.values()):  # let some work start first
            events.append(events.pop(0))
        return events

    def fault_window(self, event: str, say: Callable[[str], None]) -> None:
        """One window of a database outage, a read-only database or a provider outage."""
        assert self.database is not None
        seconds = self.options.window
        if event == "outage":
            start, end = self._provider_outage()
            what = "every provider answers 503 to everything"
            self.report.provider_outages += 1
        elif event == "db-outage":
            start, end = self.database.outage()
            what = f"the {self.database.kind} ledger refuses connections"
            seconds = self.database.window(self.database_seconds())
            self.report.db_outages += 1
        else:
            start, end = self.database.read_only()
            what = f"the {self.database.kind} ledger refuses writes"
            seconds = self.database.window(self.database_seconds())
            self.report.db_readonly_windows += 1
        start()
        say(f"{what} for {seconds:.0f}s")
        try:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                self.supervise(say)
                time.sleep(0.5)
        finally:
            end()
        say(f"window over: {what} no longer")

    def database_seconds(self) -> float:
        """A database window outlasts the retries the old count (8) gave a job."""
        return max(self.options.window, 1.5 * old_retry_budget())

    def _provider_outage(self) -> tuple[Callable[[], None], Callable[[], None]]:
        """The simulators' outage switch (as `PUT /_control/faults {"outage": true}`)."""
        assert self.stack is not None
        sims = self.stack.simulators()

        def switch(on: bool) -> None:
            for sim in sims:
                sim.faults.update({"outage": on})

        return lambda: switch(True), lambda: switch(False)

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

    def kill_worker(self, say: Callable[[str], None]) -> None:
        """SIGKILL a worker: right after a remote write every other time, else at random."""
        alive = [w for w in self.workers if w.poll() is None]
        if not alive:
            self.start_worker()
            return
        victim: subprocess.Popen[bytes] | None = None
        how = "at a random moment"
        if self.report.worker_kills % 2 == 0:
            victim, how = self._victim_after_write(alive, say)
        if victim is None:
            victim = self.rng.choice(alive)
        self.killed.add(victim)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self._release_holds()
        self.report.worker_kills += 1
        say(f"killed worker pid {victim.pid} {how}")
        self.start_worker()

    def _victim_after_write(
        self, alive: list[subprocess.Popen[bytes]], say: Callable[[str], None]
    ) -> tuple[subprocess.Popen[bytes] | None, str]:
        assert self.stack is not None
        provider = self.rng.choice(tuple(WRITE_PATHS))
        sim: Any = {"eaccounting": self.stack.ea, "economic": self.stack.ec,
                    "vismanet": self.stack.vn}[provider]  # fmt: skip
        path = self.rng.choice(WRITE_PATHS[provider])
        sim.faults.update(
            {
                "hang_after_write_path": path,
                "hang_after_write_limit": 1,
                "hang_seconds": HOLD_SECONDS,
            }
        )
        deadline = time.monotonic() + 10
        while not sim.app.held and time.monotonic() < deadline:
            time.sleep(0.02)
        held = list(sim.app.held)
        if not held:
            self._release_holds()
            return None, "at a random moment (no write to follow)"
        owner = socket_owner(held[0].client[1] if held[0].client else 0, [w.pid for w in alive])
        victim = next((w for w in alive if w.pid == owner), None)
        if victim is None:
            return None, "at a random moment (writer not found)"
        self.report.kills_after_write += 1
        return victim, f"right after {held[0].method} {held[0].path} was applied"

    def _release_holds(self) -> None:
        assert self.stack is not None
        for sim in self.stack.simulators():
            sim.faults.update({"hang_after_write_path": ""})

    def restart_redis(self, say: Callable[[str], None]) -> None:
        assert self.redis is not None
        self.redis.kill()
        say(f"killed Redis (port {self.redis.port}); restarting it on its AOF")
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.redis.start()
        self.report.redis_restarts += 1
        say("Redis is back")

    def expire_tokens(self, say: Callable[[str], None]) -> None:
        assert self.stack is not None and self.stack.ea is not None
        self.stack.ea.expire_access_tokens()
        if self.stack.vn is not None:
            with self.stack.vn.lock:
                self.stack.vn.identity.expire()
        self.report.token_expiries += 1
        say("expired every eAccounting and Visma.net access token")

    def reconciler(self) -> None:
        from worker.reconciler import reconcile_stuck_jobs

        while not self.stop_reconciler.wait(RECONCILE_EVERY):
            try:
                resent = reconcile_stuck_jobs(lost_retry_grace=LOST_RETRY_GRACE)
            except Exception as exc:  # Redis may be away for a moment
                log.warning("reconciler: %s", exc)
            else:
                if resent:
                    log.info("reconciler re-sent %s stuck jobs", resent)

    # -- progress and the verdict ----------------------------------------------------

    def settled(self) -> int:
        from worker.ledger.store import count_by_state

        try:
            counts = count_by_state()
        except Exception as exc:  # the ledger may be away for a moment
            log.warning("progress: %s", exc)
            return self._last_settled
        self._last_settled = sum(counts.get(s, 0) for s in SETTLED)
        return self._last_settled

    _last_settled = 0

    def faults_injected(self) -> int:
        assert self.stack is not None
        return sum(sum(sim.log.snapshot()["faults"].values()) for sim in self.stack.simulators())

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
        for process in self.workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def verdict(self) -> None:
        from worker.ledger.store import list_jobs

        assert self.stack is not None and self.stack.ea is not None and self.stack.ec is not None
        rows = {(j.tenant_id, j.idempotency_key): j for j in list_jobs(limit=10_000_000)}
        remote = RemoteState(
            self.stack.ea.state_dump(), self.stack.ec.state_dump(), vismanet_state(self.stack.vn)
        )
        report = self.report
        for job in self.plan.jobs:
            tenant = self.plan.tenants[job["tenant_id"]]
            key = job["idempotency_key"]
            row = rows.get((tenant.tenant_id, key))
            state = row.state if row is not None else "not in the ledger"
            review = row is not None and row.error_code == "needs_review"
            report.booked += state == "booked"
            report.failed += state == "failed"
            report.needs_review += review
            effects, strays = remote.effects(tenant, job)
            if state == "booked" and not effects:
                report.lost += 1
                report.problems.append(f"{key}: booked in the ledger, absent remotely")
            elif state == "failed" and effects and not review:
                report.lost += 1
                report.problems.append(
                    f"{key}: failed in the ledger ({row and row.error_code}) but booked remotely"
                )
            elif state not in SETTLED:
                report.lost += 1
                report.problems.append(f"{key}: {state}, never settled")
            elif state == "waiting_for_reauth":
                # No consent is withdrawn here: expired tokens must be refreshed, not parked.
                report.lost += 1
                report.problems.append(
                    f"{key}: parked for re-authorization ({row and row.error_code})"
                )
            # Counted whatever the ledger says: a job that failed (or needs review) with
            # two documents remotely is a duplicate in the customer's books all the same.
            if len(effects) > 1 or strays:
                report.duplicates += max(len(effects) - 1, 0) + strays
                report.problems.append(f"{key}: {len(effects)} documents and {strays} stray drafts")
            amount = Decimal(job["payment"]["amount"]) if job["kind"] == "payment" else None
            if amount is not None and len(effects) == 1 and effects[0] != amount:
                report.lost += 1
                report.problems.append(f"{key}: applied {effects[0]}, not {amount}")


class RemoteState:
    """Documents and payments per job key, as the simulators hold them."""

    def __init__(
        self, ea: dict[str, Any], ec: dict[str, Any], vn: dict[str, Any] | None = None
    ) -> None:
        self.ea, self.ec, self.vn = ea, ec, vn or {}

    def effects(self, tenant: TenantPlan, job: dict[str, Any]) -> tuple[list[Any], int]:
        """What exists remotely for this job (documents, or applied payment amounts), and
        how many drafts are left beside it."""
        key, kind = job["idempotency_key"], job["kind"]
        if tenant.provider == "vismanet":
            return self._vismanet_effects(tenant, key, kind)
        if tenant.provider == "eaccounting":
            company = self.ea[tenant.tenant_id]
            if kind == "payment":
                return [
                    Decimal(str(p["PaymentAmount"]))
                    for invoice in company["invoices"]
                    for p in invoice["Payments"]
                    if p.get("Reference") == key
                ], 0
            documents = [
                i
                for i in company["invoices"]
                if i.get("YourReference") == key
                and bool(i.get("IsCreditInvoice")) == (kind == "credit_note")
            ]
            drafts = sum(1 for d in company["drafts"] if d.get("YourReference") == key)
            return documents, drafts
        agreement = self.ec[f"grant-{tenant.tenant_id}"]
        if kind == "payment":
            return [
                -Decimal(str(entry["amount"]))
                for voucher in agreement["vouchers"]
                for entry in voucher["entries"].get("customerPayments", [])
                if str(entry.get("text", "")).endswith(f": {key}")
            ], 0
        documents = [
            b for b in agreement["booked"] if (b.get("references") or {}).get("other") == key
        ]
        drafts = sum(
            1 for d in agreement["drafts"] if (d.get("references") or {}).get("other") == key
        )
        return documents, drafts

    def _vismanet_effects(self, tenant: TenantPlan, key: str, kind: str) -> tuple[list[Any], int]:
        """Released documents (or released payments' amounts) whose externalReference
        (paymentRef) is the job key, and how many unreleased ones are left beside them."""
        company = self.vn[localstack.vismanet_company(tenant.tenant_id)]
        if kind == "payment":
            payments = [p for p in company["payments"] if p.get("paymentRef") == key]
            released = [p for p in payments if p["status"] not in ("Hold", "Balanced")]
            amounts = [Decimal(str(p["paymentAmount"])) for p in released]
            return amounts, len(payments) - len(released)
        wanted = "CreditNote" if kind == "credit_note" else "Invoice"
        documents = [
            d
            for d in company["documents"]
            if d.get("externalReference") == key and d["documentType"] == wanted
        ]
        released = [d for d in documents if d["status"] in ("Open", "Closed")]
        return released, len(documents) - len(released)


def vismanet_state(sim: Any) -> dict[str, Any]:
    """Every Visma.net company's documents and payments in their read-model shape (the
    simulator's `GET /_control/state`)."""
    if sim is None:
        return {}
    from worker.simulators.vismanet.views import document, payment

    with sim.lock:
        return {
            tid: {
                "documents": [document(c, d) for d in c.documents.values()],
                "payments": [payment(c, p) for p in c.payments.values()],
            }
            for tid, c in sim.companies.items()
        }


def socket_owner(port: int, pids: list[int]) -> int | None:
    """The process among `pids` whose TCP socket has local port `port` (Linux /proc)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(parts[9])
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return pid
    return None


# -- the command ----------------------------------------------------------------------------


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
    stop_on_signals()  # clean up the children on `kill` too (worker/children.py)
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
            localstack.stop(chaos.stack)
        if chaos.redis is not None:
            chaos.redis.stop()
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
    events = chaos.events()
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
                chaos.kill_worker(say)
            elif event == "redis":
                chaos.restart_redis(say)
            elif event == "tokens":
                chaos.expire_tokens(say)
            else:
                chaos.fault_window(event, say)
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


def result_table(report: Report) -> Table:
    table = Table(title=f"ledgerpush chaos: {report.enqueued} jobs in {report.seconds:.0f}s")
    table.add_column("")
    table.add_column("", justify="right")
    rows: Iterator[tuple[str, Any]] = iter(
        (
            ("booked", report.booked),
            ("failed", report.failed),
            ("  of which needs_review", report.needs_review),
            ("lost", report.lost),
            ("duplicates", report.duplicates),
            ("worker kills", report.worker_kills),
            ("  right after a remote write", report.kills_after_write),
            ("Redis restarts", report.redis_restarts),
            ("token expiries", report.token_expiries),
            ("workers that exited on their own", report.unexpected_exits),
            ("faults injected", report.faults_injected),
            ("database", report.database),
            ("database outages", report.db_outages),
            ("database read-only windows", report.db_readonly_windows),
            ("provider outages", report.provider_outages),
            ("poison messages", report.poison_sent),
            ("  in ledgerpush.poison", report.poison_quarantined),
        )
    )
    for name, value in rows:
        bad = name in ("lost", "duplicates", "  of which needs_review") and value
        bad = bad or (name == "  in ledgerpush.poison" and report.poison_missing)
        table.add_row(name, f"[red]{value}[/red]" if bad else str(value))
    return table
