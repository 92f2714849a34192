"""The overflow queue: a tenant's jobs beyond its fair share go to ledgerpush.bulk."""

from __future__ import annotations

import pytest

from tests.conftest import unique
from worker import fairness
from worker.app import BULK_QUEUE, INVOICES_QUEUE, QUEUES
from worker.settings import get_settings


def test_jobs_beyond_the_threshold_overflow_and_settling_frees_room() -> None:
    tenant = unique("flood")
    threshold = get_settings().tenant_overflow_after
    queues = [fairness.route(tenant, f"job-{n}", INVOICES_QUEUE) for n in range(threshold + 3)]
    assert queues[:threshold] == [INVOICES_QUEUE] * threshold
    assert queues[threshold:] == [BULK_QUEUE] * 3
    assert fairness.pending(tenant) == threshold + 3
    for n in range(4):
        fairness.settled({"tenant_id": tenant}, f"job-{n}")
    assert fairness.pending(tenant) == threshold - 1
    assert fairness.route(tenant, "job-next", INVOICES_QUEUE) == INVOICES_QUEUE


def test_a_duplicate_message_counts_once_and_other_tenants_are_unaffected() -> None:
    tenant, other = unique("dup"), unique("calm")
    for _ in range(20):
        assert fairness.route(tenant, "same-job", INVOICES_QUEUE) == INVOICES_QUEUE
    assert fairness.pending(tenant) == 1
    assert fairness.route(other, "job-1", INVOICES_QUEUE) == INVOICES_QUEUE


def test_settling_a_message_of_another_producer_is_harmless() -> None:
    fairness.settled({"tenant_id": unique("raw")}, "not-counted")
    fairness.settled("not a dict", "x")
    fairness.settled({"tenant_id": "t"}, None)


@pytest.mark.parametrize("queue", [BULK_QUEUE])
def test_workers_consume_the_overflow_queue(queue: str) -> None:
    assert queue in QUEUES
