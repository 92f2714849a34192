"""Exactly-once effects on Visma.net ERP when a worker dies right after each remote write:
invoice create, its release, payment create, and the payment's release (answered 202 and
done in the background). The crash points are those of tests/test_exactly_once.py: the
simulator applies the write and holds its answer; the test SIGKILLs the worker before
the ledger can record the result; a new worker finishes every job with exactly one
document or payment in the simulator.

The module runs on its own Redis and its own Visma.net simulator."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import WorkerProcess, unique, wait_for
from tests.test_exactly_once import (
    EA,
    SETTINGS,
    Stack,
    System,
    booked,
    credit_note,
    hold_next_write,
    invoice,
    module_stack,
    payment,
    recovered_by_lookup,
    wait_until_held,
)
from worker.devtools.localstack import connect
from worker.ledger.store import find_job
from worker.simulators.vismanet import VismaNetSimulator, create_simulator

VN = System(
    "vismanet", "NOK", "NO",
    EA.customer,
    r"/v2/customerinvoice$", r"/v1/customerinvoice/[^/]+/action/release$",
    r"/v1/customerPayment$",
)  # fmt: skip
PAYMENT_RELEASE = r"/v1/customerPayment/[^/]+/action/release$"
CREDIT_NOTE_RELEASE = r"/v1/customerCreditNote/[^/]+/action/release$"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("exactly-once-vismanet")
    with module_stack(home, SETTINGS, {"vismanet": create_simulator()}) as built:
        yield built


@pytest.fixture
def spawn(
    stack: Stack, start_worker: Callable[..., WorkerProcess]
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start a worker process on this module's Redis and simulator."""

    def start(name: str = "eo-vn", concurrency: int = 8, **env: str) -> WorkerProcess:
        return start_worker(name, concurrency, **{**stack.env, **env})

    yield start
    stack.reset_faults()


def tenant_for(stack: Stack) -> str:
    tenant = unique("eo-vn")
    connect(stack.local, "vismanet", tenant, "NO")
    return tenant


def remote(sim: VismaNetSimulator, tenant: str) -> dict[str, Any]:
    """Per key: released documents, unreleased documents, released payments' amounts and
    unreleased payments the simulator holds for the tenant's company."""
    result: dict[str, Any] = {"booked": {}, "drafts": {}, "payments": {}, "unreleased": {}}
    with sim.lock:
        company = sim.companies[f"{tenant}-company"]
        for document in company.documents.values():
            key = document.fields.get("externalReference")
            if document.released:
                result["booked"].setdefault(key, []).append(document)
            else:
                result["drafts"][key] = result["drafts"].get(key, 0) + 1
        for paid in company.payments.values():
            key = paid.fields.get("paymentRef")
            if paid.status in ("Open", "Closed"):
                result["payments"].setdefault(key, []).append(paid.amount)
            else:
                result["unreleased"][key] = result["unreleased"].get(key, 0) + 1
    return result


def test_worker_killed_right_after_each_visma_net_write_completes_exactly_once(
    stack: Stack, spawn: Callable[..., WorkerProcess]
) -> None:
    sim = stack.vn
    tenant = tenant_for(stack)
    first = spawn("vn-crash-a")
    for key in ("base-pay", "base-bg", "base-cn"):
        booked(stack.enqueue(invoice(VN, tenant, key)))

    # Each job frozen right after a different remote write was applied.
    crashes = [
        ("inv-create", invoice(VN, tenant, "inv-create"), VN.draft_path, "draft"),
        ("inv-release", invoice(VN, tenant, "inv-release"), VN.book_path, "book"),
        ("cn-release", credit_note(tenant, "cn-release", "base-cn"), CREDIT_NOTE_RELEASE, "book"),
        ("pay-create", payment(VN, tenant, "pay-create", "base-pay", "4000.00"), VN.pay_path,
         "pay"),
        ("pay-release", payment(VN, tenant, "pay-release", "base-bg", "3000.00"),
         PAYMENT_RELEASE, "release"),
    ]  # fmt: skip
    ids = {}
    for key, job, path, step in crashes:
        before = hold_next_write(sim, path)
        ids[key] = stack.enqueue(job)
        wait_until_held(sim, before)
        held = find_job(ids[key])
        assert held is not None and held.intent and held.intent["step"] == step, (
            held and held.intent
        )
    state = remote(sim, tenant)
    assert state["drafts"].get("inv-create") == 1
    assert len(state["booked"]["inv-release"]) == 1 and len(state["booked"]["cn-release"]) == 1
    assert state["unreleased"].get("pay-create") == 1

    first.kill()
    stack.reset_faults()
    wait_for(lambda: "pay-release" in remote(sim, tenant)["payments"], 20)  # the background
    for key, *_ in crashes:  # the ledger never heard of the results
        job = find_job(ids[key])
        assert job is not None and job.state not in ("booked", "failed") and job.intent, key

    spawn("vn-crash-b")
    wait_for(lambda: stack.leases_gone(list(ids.values())), 20)
    time.sleep(1)  # quiet for a whole lease period, as the reconciler requires
    assert stack.reconcile() >= len(crashes)
    for key in ids:
        booked(ids[key])

    state = remote(sim, tenant)
    for key in ("base-pay", "base-bg", "base-cn", "inv-create", "inv-release", "cn-release"):
        assert len(state["booked"][key]) == 1, key
    assert not state["drafts"], state["drafts"]
    assert not state["unreleased"], state["unreleased"]
    assert state["payments"] == {
        "pay-create": [Decimal("4000.00")],
        "pay-release": [Decimal("3000.00")],
    }
    # Written once and then found: the create and release steps were never sent twice.
    for key in ("inv-create", "pay-create"):
        assert recovered_by_lookup(ids[key]), key
    [paid] = state["booked"]["base-pay"]
    assert paid.balance == Decimal("11000.00")
