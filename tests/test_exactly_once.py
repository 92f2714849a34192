"""Exactly-once effects when workers die, messages come twice and answers get lost.

The module runs on its own Redis (broker, leases) and its own simulators, so that only
the worker processes it starts take its jobs and no other test's faults reach them. The
crash points are deterministic: the simulator applies a write and holds its answer
(`hang_after_write_path`); the test waits until the write shows in the simulator's state,
then SIGKILLs the worker before the ledger can record the result.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.conftest import EA_CLIENT, EC_APP, WorkerProcess, unique, wait_for
from worker.devtools import factories
from worker.devtools.localstack import LocalStack, connect
from worker.jobs import parse_job
from worker.ledger.models import Job
from worker.ledger.store import attempts_of, events_of, find_job
from worker.simulators.common import Faults
from worker.simulators.eaccounting import EAccountingSimulator
from worker.simulators.economic import EconomicSimulator
from worker.simulators.vismanet import VismaNetSimulator
from worker.transport.app import QUEUE_FOR_TASK, TASK_FOR_KIND, celery_config

SETTLED = ("booked", "failed", "waiting_for_reauth")
NO_FAULTS = Faults().as_dict()


@dataclass
class StackView:
    """A test module's local stack with the simulators it serves, typed; workers get
    `env` on top of the session's environment."""

    local: LocalStack

    @property
    def env(self) -> dict[str, str]:
        return self.local.env

    @property
    def redis_url(self) -> str:
        return self.local.env["LEDGERPUSH_REDIS_URL"]

    @property
    def ea(self) -> EAccountingSimulator:
        return self.local.sims["eaccounting"]

    @property
    def ec(self) -> EconomicSimulator:
        return self.local.sims["economic"]

    @property
    def vn(self) -> VismaNetSimulator:
        return self.local.sims["vismanet"]


@dataclass
class Stack(StackView):
    """This module's local stack (its own Redis and simulators, beside the session's
    ledger) and a Celery publisher on its Redis."""

    publisher: Celery

    def enqueue(self, payload: dict[str, Any]) -> str:
        job = parse_job(payload)
        task = TASK_FOR_KIND[job.kind]
        self.publisher.send_task(
            task,
            args=[job.model_dump(mode="json")],
            kwargs={"enqueued_at": time.time()},
            queue=QUEUE_FOR_TASK[task],
            task_id=job.job_id,
        )
        return job.job_id

    def reconcile(self, grace: float = 120) -> int:
        """What the beat task does, run against this module's Redis."""
        return int(
            self.python(
                "from worker.ops.reconciler import reconcile_stuck_jobs; "
                f"print(reconcile_stuck_jobs(lost_retry_grace={grace}))"
            )
        )

    def produce(self, payload: dict[str, Any]) -> str:
        """`worker.transport.producer.enqueue` as a producer process on this module's Redis runs
        it (its outbox is in that Redis; `enqueue` above skips the outbox)."""
        return self.python(
            f"import json; from worker.transport.producer import enqueue; print(enqueue(json.loads({json.dumps(json.dumps(payload))})))"
        )

    def python(self, code: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=self.local.child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip().splitlines()[-1]

    def leases_gone(self, job_ids: list[str]) -> bool:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        return not any(client.exists(f"lp:lease:{job_id}") for job_id in job_ids)

    def reset_faults(self) -> None:
        for sim in self.local.simulators():
            sim.faults.update(NO_FAULTS)


#: What this module's workers run with (the session's settings beneath).
SETTINGS = {
    "LEDGERPUSH_VISIBILITY_TIMEOUT": "30",
    "LEDGERPUSH_TASK_TIME_LIMIT": "12",
    "LEDGERPUSH_TASK_SOFT_TIME_LIMIT": "10",
    "LEDGERPUSH_LEASE_SECONDS": "5",
    # Longer than any held answer below: the worker must not give up on its own.
    "LEDGERPUSH_HTTP_TIMEOUT": "60",
    "LEDGERPUSH_WRITE_SETTLE_SECONDS": "1",
}


@contextlib.contextmanager
def module_stack(
    home: Path, settings: dict[str, str], simulators: dict[str, Any]
) -> Iterator[Stack]:
    """A local stack of a test module at `home`: its own Redis, the `simulators` given
    (by provider) served, the session's ledger."""
    with LocalStack.create(home, settings, owns_process=False) as local:
        local.start_redis()
        local.start_simulators(simulators, providers=simulators)
        publisher = Celery(f"tests-{home.name}", set_as_current=False)
        publisher.conf.update({**celery_config(), "broker_url": local.env["LEDGERPUSH_REDIS_URL"]})
        try:
            yield Stack(local, publisher)
        finally:
            publisher.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    ea = EAccountingSimulator(client_id=EA_CLIENT[0], client_secret=EA_CLIENT[1])
    ec = EconomicSimulator(app_secret_token=EC_APP[0], app_public_token=EC_APP[1])
    simulators = {"eaccounting": ea, "economic": ec}
    with module_stack(tmp_path_factory.mktemp("exactly-once"), SETTINGS, simulators) as built:
        yield built


@pytest.fixture
def spawn(
    stack: Stack, start_worker: Callable[..., WorkerProcess]
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a worker process on this module's Redis and simulators."""

    def start(name: str = "eo", concurrency: int = 8, **env: str) -> WorkerProcess:
        return start_worker(name, concurrency, **{**stack.env, **env})

    yield start
    stack.reset_faults()


# -- jobs and what the simulators hold ----------------------------------------------------


@dataclass(frozen=True)
class System:
    """How one accounting system is exercised: its tenant, jobs, write paths and state."""

    name: str
    currency: str
    country: str
    customer: dict[str, Any]
    draft_path: str
    book_path: str
    pay_path: str


EA = System(
    "eaccounting", "NOK", "NO",
    factories.customer("c-1", "Nordic Tools AS", "NO", ("Storgata 1", "0155", "Oslo")),
    r"/customerinvoicedrafts$", r"/customerinvoicedrafts/[^/]+/convert$",
    r"/customerinvoices/[^/]+/payments$",
)  # fmt: skip
EC = System(
    "economic", "DKK", "DK",
    factories.customer("c-1", "Havbryggen ApS", "DK", ("Havnegade 4", "8000", "Aarhus C")),
    r"/invoices/drafts$", r"/invoices/booked$", r"/journals/\d+/vouchers$",
)  # fmt: skip


def tenant_for(stack: Stack, system: System) -> str:
    tenant = unique(f"eo-{system.name[:2]}")
    connect(stack.local, system.name, tenant, system.country)
    return tenant


def invoice(system: System, tenant: str, key: str) -> dict[str, Any]:
    """Lines carry the key, so no two jobs share a fingerprint."""
    lines = [factories.line(f"Consulting {key}", "10", "1200.00", "25")]
    return factories.invoice_job(
        tenant, key, currency=system.currency, customer=system.customer, lines=lines,
        your_reference=key,
    )  # fmt: skip


def credit_note(tenant: str, key: str, original: str) -> dict[str, Any]:
    lines = [factories.line(f"Credit {key}", "2", "1200.00", "25")]
    return factories.credit_note_job(tenant, key, original, reason=key, lines=lines)


def payment(system: System, tenant: str, key: str, original: str, amount: str) -> dict[str, Any]:
    return factories.payment_job(
        tenant, key, original, amount, currency=system.currency, reference=key
    )


def remote(stack: StackView, system: System, tenant: str) -> dict[str, Any]:
    """Per key: booked documents, drafts and payments the simulator holds."""
    if system is EA:
        company = stack.ea.state_dump()[tenant]
        booked = [(i["YourReference"], i) for i in company["invoices"]]
        drafts = [d.get("YourReference") for d in company["drafts"]]
        payments = [
            (p.get("Reference"), Decimal(str(p["PaymentAmount"])))
            for i in company["invoices"]
            for p in i["Payments"]
        ]
    else:
        agreement = stack.ec.state_dump()[f"grant-{tenant}"]
        booked = [(b.get("references", {}).get("other"), b) for b in agreement["booked"]]
        drafts = [d.get("references", {}).get("other") for d in agreement["drafts"]]
        payments = [
            (e["text"].rsplit(": ", 1)[-1], -Decimal(str(e["amount"])))
            for v in agreement["vouchers"]
            for e in v["entries"].get("customerPayments", [])
        ]
    result: dict[str, Any] = {"booked": {}, "drafts": {}, "payments": {}}
    for key, document in booked:
        result["booked"].setdefault(key, []).append(document)
    for key in drafts:
        result["drafts"][key] = result["drafts"].get(key, 0) + 1
    for key, amount in payments:
        result["payments"].setdefault(key, []).append(amount)
    return result


def settle(job_id: str, timeout: float = 60) -> Job:
    def settled() -> Job | None:
        job = find_job(job_id)
        return job if job is not None and job.state in SETTLED else None

    job: Job = wait_for(settled, timeout, interval=0.2)
    return job


def booked(job_id: str, timeout: float = 60) -> Job:
    job = settle(job_id, timeout)
    assert job.state == "booked", (job.state, job.error_code, job.error_message, job.error_fields)
    return job


def holds(sim: Any) -> int:
    return int(sim.log.snapshot()["faults"].get("hang_after_write", 0))


def hold_next_write(sim: Any, path: str, seconds: float = 45) -> int:
    """The next write to `path` is applied, and its answer is held back; returns the
    number of writes held so far, to wait for this one with `wait_until_held`."""
    before = holds(sim)
    sim.faults.update(
        {"hang_after_write_path": path, "hang_after_write_limit": 1, "hang_seconds": seconds}
    )
    return before


def wait_until_held(sim: Any, before: int) -> None:
    wait_for(lambda: holds(sim) > before, 30, interval=0.05)


def recovered_by_lookup(job_id: str) -> bool:
    return any("by lookup" in (e.note or "") for e in events_of(job_id))


# -- crash points -------------------------------------------------------------------------


@pytest.mark.parametrize("system", [EA, EC], ids=lambda s: s.name)
def test_worker_killed_right_after_each_write_completes_exactly_once(
    stack: Stack, spawn: Callable[..., WorkerProcess], system: System
) -> None:
    sim = stack.ea if system is EA else stack.ec
    tenant = tenant_for(stack, system)
    first = spawn("crash-a")
    assert booked(stack.enqueue(invoice(system, tenant, "base-pay"))).state == "booked"
    assert booked(stack.enqueue(invoice(system, tenant, "base-cn"))).state == "booked"

    # Four jobs, each frozen right after a different remote write was applied.
    crashes = [
        ("inv-draft", invoice(system, tenant, "inv-draft"), system.draft_path, "draft"),
        ("inv-book", invoice(system, tenant, "inv-book"), system.book_path, "book"),
        ("pay-1", payment(system, tenant, "pay-1", "base-pay", "4000.00"), system.pay_path, "pay"),
        ("cn-1", credit_note(tenant, "cn-1", "base-cn"), system.book_path, "book"),
    ]
    ids = {}
    for key, payload, path, step in crashes:
        before = hold_next_write(sim, path)
        ids[key] = stack.enqueue(payload)
        wait_until_held(sim, before)
        job = find_job(ids[key])
        assert job is not None and job.intent and job.intent["step"] == step, job and job.intent
    state = remote(stack, system, tenant)
    assert state["drafts"].get("inv-draft") == 1
    assert len(state["booked"]["inv-book"]) == 1 and len(state["booked"]["cn-1"]) == 1
    assert state["payments"]["pay-1"] == [Decimal("4000.00")]

    first.kill()
    stack.reset_faults()
    for key, *_ in crashes:  # the ledger never heard of the results
        job = find_job(ids[key])
        assert job is not None and job.state in ("drafting", "booking") and job.intent, key

    spawn("crash-b")
    wait_for(lambda: stack.leases_gone(list(ids.values())), 20)
    time.sleep(1)  # quiet for a whole lease period, as the reconciler requires
    # At least these four (the ledger is the session's: other tests' stuck jobs count too).
    assert stack.reconcile() >= len(crashes)
    for key in ids:
        booked(ids[key])
        assert recovered_by_lookup(ids[key]), key

    state = remote(stack, system, tenant)
    for key in ("base-pay", "base-cn", "inv-draft", "inv-book", "cn-1"):
        assert len(state["booked"][key]) == 1, key
    assert not state["drafts"], state["drafts"]
    assert state["payments"] == {"pay-1": [Decimal("4000.00")]}
    if system is EA:
        [paid] = state["booked"]["base-pay"]
        assert Decimal(str(paid["RemainingAmount"])) == Decimal("11000.00")


# -- a message lost before any worker recorded it ----------------------------------------


def test_message_taken_off_the_queue_by_a_worker_that_died_is_sent_again(
    stack: Stack, spawn: Callable[..., WorkerProcess]
) -> None:
    """Celery's Redis transport takes a message off the list (BRPOP) before recording it
    as unacknowledged; a worker killed in between leaves it nowhere in Redis. The
    outbox still has the job, and once the queue has been read past it, the reconciler
    sends it again."""
    import redis

    tenant = tenant_for(stack, EA)
    client: Any = redis.Redis.from_url(stack.redis_url)
    job_id = stack.produce(invoice(EA, tenant, "vanished"))  # no worker is running
    [message] = [m for m in client.lrange("ledgerpush.invoices", 0, -1) if job_id.encode() in m]
    assert client.lrem("ledgerpush.invoices", 1, message) == 1  # popped by the dead worker
    spawn("vanish")
    later = stack.produce(invoice(EA, tenant, "later"))
    booked(later)
    time.sleep(1.5)
    assert find_job(job_id) is None  # nothing in the ledger, nothing in Redis's queues
    assert stack.reconcile(grace=1) >= 1
    booked(job_id)
    state = remote(stack, EA, tenant)
    assert len(state["booked"]["vanished"]) == 1 and len(state["booked"]["later"]) == 1


# -- a second copy while the first still runs ---------------------------------------------


def test_redelivery_after_visibility_timeout_while_first_copy_runs_books_once(
    stack: Stack, spawn: Callable[..., WorkerProcess]
) -> None:
    tenant = tenant_for(stack, EA)
    workers = [spawn("redeliver-a", 4), spawn("redeliver-b", 4)]
    assert booked(stack.enqueue(invoice(EA, tenant, "warm"))).state == "booked"
    # The first copy's draft answer takes longer than the visibility timeout (30 s).
    before = hold_next_write(stack.ea, EA.draft_path, seconds=55)
    job_id = stack.enqueue(invoice(EA, tenant, "slow"))
    wait_until_held(stack.ea, before)
    # Redis hands the unacknowledged message out again; the copy finds the lease taken.
    wait_for(lambda: any("running elsewhere" in w.output() for w in workers), 50, interval=0.5)
    stack.ea.faults.update({"hang_after_write_path": ""})  # the first copy hears back now
    booked(job_id)
    # The first run heard back past its soft time limit (10 s here), so it recorded the
    # draft and handed the book step to a new run; the copy never ran an attempt.
    errors = [a.error["code"] for a in attempts_of(job_id) if a.error]
    assert errors in ([], ["time_limit"]), errors
    state = remote(stack, EA, tenant)
    assert len(state["booked"]["slow"]) == 1 and not state["drafts"]


# -- answers lost after the write ----------------------------------------------------------


@pytest.mark.parametrize("system", [EA, EC], ids=lambda s: s.name)
def test_connection_dropped_after_write_of_payment_and_credit_note_books_once(
    stack: Stack, spawn: Callable[..., WorkerProcess], system: System
) -> None:
    sim = stack.ea if system is EA else stack.ec
    tenant = tenant_for(stack, system)
    spawn("drop")
    booked(stack.enqueue(invoice(system, tenant, "inv-1")))
    sim.faults.update({"drop_after_write_rate": 1.0})
    ids = [
        stack.enqueue(invoice(system, tenant, "inv-2")),
        stack.enqueue(payment(system, tenant, "pay-1", "inv-1", "5000.00")),
        stack.enqueue(credit_note(tenant, "cn-1", "inv-1")),
    ]

    def every_write_lost_once() -> bool:
        jobs = [find_job(i) for i in ids]
        return all(j is not None and j.attempts >= 2 for j in jobs)

    try:
        wait_for(every_write_lost_once, 30)
    finally:
        sim.faults.update({"drop_after_write_rate": 0.0})
    for job_id in ids:
        booked(job_id)
        assert recovered_by_lookup(job_id)
    state = remote(stack, system, tenant)
    assert {k: len(v) for k, v in state["booked"].items()} == {"inv-1": 1, "inv-2": 1, "cn-1": 1}
    assert state["payments"] == {"pay-1": [Decimal("5000.00")]}
    assert not state["drafts"]


def test_write_applied_after_the_client_gave_up_books_once(
    stack: Stack, spawn: Callable[..., WorkerProcess]
) -> None:
    """The server takes the draft, answers nothing, and applies it a second after the
    worker's HTTP timeout: a lookup right after the timeout would find nothing and a
    second draft would follow. The worker waits until the write has settled."""
    tenant = tenant_for(stack, EA)
    spawn("late", LEDGERPUSH_HTTP_TIMEOUT="2", LEDGERPUSH_WRITE_SETTLE_SECONDS="6")
    booked(stack.enqueue(invoice(EA, tenant, "warm")))
    stack.ea.faults.update({"late_write_rate": 1.0, "timeout_seconds": 3})
    try:
        job_id = stack.enqueue(invoice(EA, tenant, "late"))
        wait_for(lambda: stack.ea.log.snapshot()["faults"].get("late_write"), 10, interval=0.05)
    finally:
        stack.ea.faults.update({"late_write_rate": 0.0})
    booked(job_id)
    assert recovered_by_lookup(job_id)
    assert any(e.note and "write_settling" in e.note for e in events_of(job_id))
    state = remote(stack, EA, tenant)
    assert len(state["booked"]["late"]) == 1 and not state["drafts"]


# -- graceful shutdown ----------------------------------------------------------------------


def test_sigterm_finishes_the_write_in_flight_then_hands_back(
    stack: Stack, spawn: Callable[..., WorkerProcess]
) -> None:
    tenant = tenant_for(stack, EA)
    first = spawn("term-a")
    booked(stack.enqueue(invoice(EA, tenant, "warm")))
    before = hold_next_write(stack.ea, EA.draft_path, seconds=4)
    job_id = stack.enqueue(invoice(EA, tenant, "in-flight"))
    wait_until_held(stack.ea, before)

    assert first.process is not None
    started = time.monotonic()
    first.process.terminate()
    assert first.process.wait(30) == 0
    assert time.monotonic() - started < 15
    job = find_job(job_id)
    assert job is not None
    assert "draft" in job.remote and "book" not in job.remote  # recorded, then stopped
    assert (job.state, job.error_code) == ("retry_scheduled", "handed_back")

    spawn("term-b")
    job = booked(job_id)
    assert not recovered_by_lookup(job_id)  # nothing was left unrecorded
    state = remote(stack, EA, tenant)
    assert len(state["booked"]["in-flight"]) == 1 and not state["drafts"]


def test_sigterm_with_slow_provider_exits_and_books_every_job_once(
    stack: Stack, spawn: Callable[..., WorkerProcess]
) -> None:
    tenant = tenant_for(stack, EC)
    first = spawn("slow-a")
    booked(stack.enqueue(invoice(EC, tenant, "warm")))
    stack.ec.faults.update({"latency_ms": 700})
    ids = [stack.enqueue(invoice(EC, tenant, f"inv-{n}")) for n in range(4)]
    wait_for(lambda: all((j := find_job(i)) is not None and j.attempts for i in ids), 30)

    assert first.process is not None
    started = time.monotonic()
    first.process.terminate()
    assert first.process.wait(30) == 0
    assert time.monotonic() - started < 10  # about one request, not the whole jobs
    stack.ec.faults.update({"latency_ms": 0})

    spawn("slow-b")
    for job_id in ids:
        booked(job_id)
    state = remote(stack, EC, tenant)
    assert all(len(state["booked"][f"inv-{n}"]) == 1 for n in range(4))
    assert not state["drafts"]
