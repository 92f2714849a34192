"""Reads never take SQLite's write lock: a read transaction held open as long as a slow
dashboard query lets workers write meanwhile, every read model answers while a writer
holds its transaction open, and a write attempted on the read path fails loudly.

On the suite's SQLite ledger (WAL mode), or on PostgreSQL when
LEDGERPUSH_TEST_DATABASE_URL is set."""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from tests.conftest import unique
from worker.jobs import job_id_for
from worker.ledger import (
    accounts,
    alerts,
    binding,
    events,
    metrics,
    operations,
    payment_sync,
    queries,
    reconcile,
    retention,
    store,
    tenancy,
    webhooks,
)
from worker.ledger.db import WriteInReadTransaction, read_connection, read_session, session
from worker.ledger.models import RECEIVED, RESOLVING, Job, JobEvent, utcnow
from worker.store_outage import is_store_outage
from worker.web.accounts import create_api_key, identify_api_key

#: How long a reader stays open waiting for the writes (a liveness bound: a write that
#: waits for the reader's lock would only finish after the reader gave up).
READER_PATIENCE = 60.0


def _new_job(tenant: str, key: str) -> str:
    job_id = job_id_for(tenant, key)
    store.accept_job(job_id, tenant, key, "invoice", {"key": key})
    return job_id


def _slow_dashboard_query(reading: Any, written: Any, result: Any) -> None:
    """Reads, then stays in its transaction until the writes are done (or it gives up);
    puts whether they were done while it was still open."""
    with read_session() as db:
        db.scalar(select(func.count()).select_from(Job))  # the snapshot starts here
        reading.set()
        result.put(written.wait(READER_PATIENCE))


@pytest.mark.parametrize("reader_in", ["thread", "process"])
def test_a_worker_writes_while_a_slow_reader_holds_its_transaction_open(reader_in: str) -> None:
    tenant = unique("t")
    if reader_in == "thread":
        reading, written, result = threading.Event(), threading.Event(), queue.Queue[bool]()
        reader: threading.Thread | Any = threading.Thread(
            target=_slow_dashboard_query, args=(reading, written, result)
        )
    else:
        ctx = multiprocessing.get_context("spawn")
        reading, written, result = ctx.Event(), ctx.Event(), ctx.Queue()
        reader = ctx.Process(target=_slow_dashboard_query, args=(reading, written, result))
    reader.start()
    try:
        assert _started(reading, reader), "the reader failed before it read"
        job_id = _new_job(tenant, "during-a-slow-read")
        store.advance(job_id, RESOLVING)
        written.set()
        assert result.get(timeout=READER_PATIENCE), "the writes waited for the reader"
    finally:
        written.set()
        reader.join(READER_PATIENCE)
    assert store.get_job(job_id).state == RESOLVING
    assert [e.to_state for e in store.events_of(job_id)] == [RECEIVED, RESOLVING]


def _started(reading: Any, reader: Any) -> bool:
    while reader.is_alive():
        if reading.wait(0.1):
            return True
    return bool(reading.is_set())


def _hold_a_write_transaction(job_id: str, holding: threading.Event, done: threading.Event) -> None:
    with session() as db:
        db.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow()))
        holding.set()
        assert done.wait(READER_PATIENCE)


def _read_models(tenant: str, job_id: str) -> dict[str, Callable[[], object]]:
    """Every read-only ledger function, with arguments that make it read."""
    now = utcnow()
    job = store.get_job(job_id)
    key = create_api_key(unique("producer"))
    assert identify_api_key(key) is not None  # its first use is written now
    return {
        "an API key used again within LAST_USED_RESOLUTION": lambda: identify_api_key(key),
        "store.find_job": lambda: store.find_job(job_id),
        "store.get_job": lambda: store.get_job(job_id),
        "store.find_job_by_key": lambda: store.find_job_by_key(tenant, job.idempotency_key),
        "store.payment_with_open_write": lambda: store.payment_with_open_write(tenant, "k", "x"),
        "store.list_jobs": lambda: store.list_jobs(tenant),
        "store.count_by_state": lambda: store.count_by_state(tenant),
        "store.attempts_of": lambda: store.attempts_of(job_id),
        "store.events_of": lambda: store.events_of(job_id),
        "queries.find_jobs": lambda: queries.find_jobs(queries.JobFilter(tenant=tenant)),
        "queries.providers_of": lambda: queries.providers_of([job]),
        "queries.states_since": lambda: queries.states_since(now - dt.timedelta(hours=1)),
        "queries.throughput": lambda: queries.throughput(5),
        "queries.tenant_health": lambda: queries.tenant_health(tenant),
        "queries.recent_dead_letters": queries.recent_dead_letters,
        "queries.dead_letter_groups": queries.dead_letter_groups,
        "queries.error_codes": queries.error_codes,
        "queries.job_id_matches": lambda: queries.job_id_matches(job_id[:6], 5),
        "metrics.attempts_ended_between": lambda: metrics.attempts_ended_between(now, now),
        "metrics.job_counts_by_state_and_provider": metrics.job_counts_by_state_and_provider,
        "metrics.webhook_delivery_counts_by_status": metrics.webhook_delivery_counts_by_status,
        "metrics.tenant_counts_by_provider_and_state": (
            metrics.tenant_counts_by_provider_and_state
        ),
        "reconcile.quiet_or_overdue_jobs": lambda: reconcile.quiet_or_overdue_jobs(now, now, 5),
        "operations.failed_jobs_and_parked_tenants": (
            lambda: operations.failed_jobs_and_parked_tenants(tenant, None)
        ),
        "accounts.role_of_user": lambda: accounts.role_of_user("nobody"),
        "accounts.find_user": lambda: accounts.find_user("nobody"),
        "accounts.usernames": accounts.usernames,
        "accounts.usernames_and_roles": accounts.usernames_and_roles,
        "accounts.api_keys": accounts.api_keys,
        "tenancy.tenant_row": lambda: tenancy.tenant_row(tenant),
        "tenancy.all_tenants": tenancy.all_tenants,
        "tenancy.jobs_waiting_for_reauth": lambda: tenancy.jobs_waiting_for_reauth(tenant),
        "tenancy.connected_tenants_with_parked_jobs": (tenancy.connected_tenants_with_parked_jobs),
        "tenancy.connected_tokens_expiring_before": (
            lambda: tenancy.connected_tokens_expiring_before(["eaccounting"], now)
        ),
        "tenancy.unsettled_job_count": lambda: tenancy.unsettled_job_count(tenant),
        "alerts.deliveries_created_before": (
            lambda: alerts.deliveries_created_before(["pending"], now, 5)
        ),
        "alerts.newest_deliveries": lambda: alerts.newest_deliveries(None, 5),
        "events.feed": lambda: events.feed(tenant=tenant),
        "webhooks.list_endpoints": webhooks.list_endpoints,
        "webhooks.get_endpoint": lambda: _unless_missing(webhooks.get_endpoint, -1),
        "webhooks.enabled_endpoint_ids": webhooks.enabled_endpoint_ids,
        "webhooks.tenants_pending": lambda: webhooks.tenants_pending(-1),
        "webhooks.next_due": webhooks.next_due,
        "webhooks.pending_in_order": lambda: webhooks.pending_in_order(-1, tenant),
        "webhooks.deliveries_of": lambda: webhooks.deliveries_of(-1),
        "webhooks.endpoints_with_deliveries": webhooks.endpoints_with_deliveries,
        "binding.other_tenant_bound_to": (
            lambda: binding.other_tenant_bound_to("eaccounting", "c", tenant)
        ),
        "binding.tenant_events": lambda: binding.tenant_events(tenant, 5),
        "binding.detached_tenant": lambda: binding.detached_tenant(tenant),
        "payment_sync.tenants_with_open_invoices": payment_sync.tenants_with_open_invoices,
        "payment_sync.open_invoices": lambda: payment_sync.open_invoices(tenant),
        "payment_sync.sync_state": lambda: payment_sync.sync_state(tenant),
        "retention.due_job_and_attempt_counts": (
            lambda: retention.due_job_and_attempt_counts(now - dt.timedelta(days=1))
        ),
    }


def _unless_missing(read: Callable[[int], object], row_id: int) -> object:
    with contextlib.suppress(LookupError):
        return read(row_id)
    return None


def test_every_read_model_answers_while_a_writer_holds_its_transaction_open() -> None:
    """A writer holding SQLite's write lock (on PostgreSQL: the job's row lock) does not
    hold up the dashboard, API, CLI and metrics reads; none of them writes either (a
    write on the read path would raise)."""
    tenant = unique("t")
    job_id = _new_job(tenant, "read-while-writing")
    now = utcnow()
    payment_sync.save_sync_state(tenant, now, now, None)  # sync_state reads a stored row
    reads = _read_models(tenant, job_id)
    holding, done = threading.Event(), threading.Event()
    writer = ThreadWithResult(target=_hold_a_write_transaction, args=(job_id, holding, done))
    writer.start()
    try:
        assert _started(holding, writer), "the writer failed before it wrote"
        answered = []
        for name, read in reads.items():
            read()
            answered.append(name)
        assert writer.is_alive(), "the writer's transaction ended before the reads"
    finally:
        done.set()
        writer.join(READER_PATIENCE)
    writer.raise_if_failed()
    assert answered == list(reads)


class ThreadWithResult(threading.Thread):
    """A thread whose exception the test sees."""

    error: BaseException | None = None

    def run(self) -> None:
        try:
            super().run()
        except BaseException as exc:
            self.error = exc

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


def test_a_write_on_the_read_path_raises_and_is_no_outage() -> None:
    tenant = unique("t")
    job_id = _new_job(tenant, "written-on-the-read-path")
    event = {"job_id": job_id, "from_state": RECEIVED, "to_state": RESOLVING, "at": utcnow()}
    with pytest.raises(WriteInReadTransaction) as core, read_connection() as conn:
        conn.execute(insert(JobEvent), event)
    with pytest.raises(WriteInReadTransaction) as orm, read_session() as db:
        db.add(JobEvent(**event))  # flushed at the end of the transaction
    with pytest.raises(WriteInReadTransaction), read_session() as db:
        db.execute(update(Job).where(Job.id == job_id).values(state=RESOLVING))
    # A bug in the caller, not the database going away: not retried as an outage.
    assert not is_store_outage(core.value) and not is_store_outage(orm.value)
    assert [e.to_state for e in store.events_of(job_id)] == [RECEIVED]
    # Pooled connections switch between reading and writing as they are reused.
    for step in range(6):
        store.update_job(job_id, remote={"step": step})
        assert store.find_job(job_id) is not None
    store.advance(job_id, RESOLVING)
    assert [e.to_state for e in store.events_of(job_id)] == [RECEIVED, RESOLVING]
