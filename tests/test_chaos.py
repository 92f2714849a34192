"""`ledgerpush chaos` as CI runs it: a few hundred jobs, workers and Redis killed; and a
short run on PostgreSQL with every fault of the matrix."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import postgres_admin_url
from worker.devtools.chaos import DEFAULT_FAULTS, FAULTS, parse_faults
from worker.devtools.chaos.faults import POISON_MAKERS, poison_message, poisoned_markers
from worker.devtools.localstack import create_postgres_database, drop_postgres_database
from worker.transport import poison
from worker.transport.app import INVOICE_TASK, PAYMENT_TASK

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "enqueued", "booked", "failed", "needs_review", "lost", "duplicates",
    "worker_kills", "redis_restarts", "faults_injected", "seconds", "db_outages",
    "db_readonly_windows", "provider_outages", "poison_sent", "poison_quarantined", "broken_copies_sent",
    "database", "faults",
}  # fmt: skip
POSTGRES = os.environ.get("LEDGERPUSH_TEST_DATABASE_URL")


def _chaos(
    args: list[str], home: Path, timeout: float, **env: str
) -> subprocess.CompletedProcess[str]:
    """`ledgerpush chaos --json ...` in a process of its own, outside the suite's stack."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEDGERPUSH_") and not k.startswith("_LEDGERPUSH")
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", "chaos", "--json", *args],
        cwd=ROOT, env={**clean, "LEDGERPUSH_CHAOS_HOME": str(home), **env},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _figures(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr[-3000:]
    figures: dict[str, Any] = json.loads(result.stdout)
    assert set(figures) == KEYS
    assert (figures["lost"], figures["duplicates"]) == (0, 0), result.stderr[-3000:]
    assert figures["needs_review"] == 0, result.stderr[-3000:]
    if _poison_in_the_window(figures) <= 0:
        assert result.returncode == 0, result.stderr[-3000:]
    return figures


def _poison_in_the_window(figures: dict[str, Any]) -> int:
    """Poison messages missing from the poison list, when no more than the kills and Redis
    restarts could have caught between the worker taking a raw message off its queue and
    keeping it (kombu's window, README "Poison messages"; the outbox covers jobs only)."""
    missing = int(figures["poison_sent"]) - int(figures["poison_quarantined"])
    could_catch = int(figures["worker_kills"]) + int(figures["redis_restarts"])
    return missing if missing <= could_catch else -1


def test_small_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """When the suite runs on PostgreSQL (LEDGERPUSH_TEST_DATABASE_URL), the chaos run's
    ledger is an empty PostgreSQL database of its own (LEDGERPUSH_CHAOS_DATABASE_URL);
    else SQLite in its home. The default faults: worker kills, a Redis restart, provider
    faults."""
    database = create_postgres_database(POSTGRES, "ledgerpush_test") if POSTGRES else None
    env = {"LEDGERPUSH_CHAOS_DATABASE_URL": database} if database else {}
    args = ["--jobs", "200", "--kills", "4", "--seed", "1", "--timeout", "100"]
    try:
        result = _chaos(args, tmp_path / "chaos", 180, **env)
    finally:
        if database:
            drop_postgres_database(database)
    figures = _figures(result)
    assert figures["enqueued"] == 200 and figures["booked"] + figures["failed"] == 200
    assert figures["worker_kills"] == 4 and figures["redis_restarts"] == 1
    assert figures["faults_injected"] > 0
    assert figures["faults"] == list(DEFAULT_FAULTS)
    assert figures["database"] == ("postgresql" if POSTGRES else "sqlite")
    assert (figures["db_outages"], figures["provider_outages"], figures["poison_sent"]) == (0, 0, 0)


# The suite's PostgreSQL run (LEDGERPUSH_TEST_DATABASE_URL) is the one that runs this;
# .ci/run starts that run whenever PostgreSQL answers, so a skip here hides nothing.
@pytest.mark.skipif(not POSTGRES, reason="runs in the suite's PostgreSQL run")
def test_short_chaos_on_postgresql_with_every_fault(tmp_path: Path) -> None:
    """A throwaway database of its own (`--database postgresql`), refusing connections for
    a window and then writes for another, a provider-wide outage, poison messages among
    the jobs: nothing lost, nothing duplicated, nothing left for review, every poison
    message in the poison list."""
    assert POSTGRES is not None
    args = ["--jobs", "60", "--kills", "2", "--seed", "3", "--faults", "all"]
    args += ["--database", "postgresql", "--database-url", postgres_admin_url(POSTGRES)]
    args += ["--window", "8", "--timeout", "240"]
    figures = _figures(_chaos(args, tmp_path / "chaos", 330))
    assert figures["enqueued"] == 60 and figures["booked"] + figures["failed"] == 60
    assert figures["database"] == "postgresql" and figures["faults"] == list(FAULTS)
    assert (figures["worker_kills"], figures["redis_restarts"]) == (2, 1)
    assert (figures["db_outages"], figures["db_readonly_windows"]) == (1, 1)
    assert figures["provider_outages"] == 1
    assert figures["poison_sent"] >= len(POISON_MAKERS)
    assert figures["poison_quarantined"] >= figures["poison_sent"] - 3  # 2 kills, 1 restart
    assert figures["broken_copies_sent"] >= 1  # and none failed its job (the tally's "lost")


def test_faults_are_chosen_by_name() -> None:
    assert parse_faults("all") == FAULTS
    assert parse_faults("poison, db-outage") == ("db-outage", "poison")  # in FAULTS' order
    with pytest.raises(ValueError, match="--faults: unknown fault db-down; choose from"):
        parse_faults("worker-kill,db-down")


def test_an_unknown_fault_or_database_is_refused_by_name(tmp_path: Path) -> None:
    refused = _chaos(["--faults", "meteor"], tmp_path, 60)
    assert refused.returncode == 2 and "--faults: unknown fault meteor" in refused.stderr
    refused = _chaos(["--database", "oracle"], tmp_path, 60)
    assert refused.returncode == 2 and "--database: must be sqlite or postgresql" in refused.stderr


@pytest.mark.parametrize("number", range(len(POISON_MAKERS)))
def test_each_chaos_poison_message_is_poison_to_a_worker(number: int) -> None:
    """What chaos pushes is refused by the worker's own check (worker/transport/poison.py), so it
    must end in the poison list, never in the ledger; and the verdict finds its marker."""
    task = (INVOICE_TASK, PAYMENT_TASK)[number % 2]
    raw = poison_message(number, task)
    with pytest.raises(poison.PoisonMessage):
        poison.check(raw, poison.known_tasks(), 1_048_576)
    assert poisoned_markers([raw]) == {f"chaos-poison-{number:05d}"}


def test_the_plan_covers_every_provider_and_kills_follow_each_visma_net_write() -> None:
    import random

    from worker.devtools.chaos import WRITE_PATHS, plan_jobs
    from worker.providers import registry

    plan = plan_jobs(200, random.Random(1))
    providers = {plan.tenants[job["tenant_id"]].provider for job in plan.jobs}
    assert providers == set(registry.names()) == set(WRITE_PATHS)
    vismanet = [j for j in plan.jobs if plan.tenants[j["tenant_id"]].provider == "vismanet"]
    assert {j["kind"] for j in vismanet} == {"invoice", "credit_note", "payment"}
    paths = {
        "POST /v2/customerinvoice": "/v2/customerinvoice",
        "POST /v2/customerCreditNote": "/v2/customerCreditNote",
        "release": "/v1/customerCreditNote/200001/action/release",
        "POST /v1/customerPayment": "/v1/customerPayment",
        "payment release": "/v1/customerPayment/300001/action/release",
    }
    for what, path in paths.items():
        assert any(re.search(p, path) for p in WRITE_PATHS["vismanet"]), what


def test_visma_net_documents_and_payments_are_counted_by_their_references() -> None:
    """The verdict's reading of a Visma.net company: released documents by
    externalReference (unreleased ones beside them are strays), released payments by
    paymentRef and amount."""
    from worker.devtools.chaos import TENANTS, RemoteState

    tenant = next(t for t in TENANTS if t.provider == "vismanet")

    def doc(key: str, kind: str, status: str) -> dict[str, Any]:
        return {"externalReference": key, "documentType": kind, "status": status}

    def pay(key: str, status: str, amount: str) -> dict[str, Any]:
        return {"paymentRef": key, "status": status, "paymentAmount": amount}

    company = {
        "documents": [
            doc("inv-1", "Invoice", "Open"), doc("inv-2", "Invoice", "Closed"),
            doc("inv-2", "Invoice", "Balanced"), doc("inv-3", "Invoice", "Open"),
            doc("inv-3", "Invoice", "Open"), doc("cn-1", "CreditNote", "Open"),
        ],
        "payments": [pay("pay-1", "Closed", "100.00"), pay("pay-2", "Balanced", "5.00")],
    }  # fmt: skip
    remote = RemoteState({}, {}, {f"{tenant.tenant_id}-company": company})

    def counted(key: str, kind: str) -> tuple[int, int]:
        effects, strays = remote.effects(tenant, {"idempotency_key": key, "kind": kind})
        return len(effects), strays

    assert counted("inv-1", "invoice") == (1, 0)
    assert counted("inv-2", "invoice") == (1, 1)  # a draft left beside the booked one
    assert counted("inv-3", "invoice") == (2, 0)  # a duplicate
    assert counted("cn-1", "credit_note") == (1, 0) and counted("cn-1", "invoice") == (0, 0)
    payment_effects, _ = remote.effects(tenant, {"idempotency_key": "pay-1", "kind": "payment"})
    assert payment_effects == [Decimal("100.00")]
    assert counted("pay-2", "payment") == (0, 1)
