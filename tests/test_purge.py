"""Data retention: `ledgerpush purge` removes personal data of settled jobs and keeps
what exactly-once needs, so a late duplicate is still recognised (real worker process,
eAccounting simulator over HTTP)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from typer.testing import CliRunner

from tests.conftest import WorkerProcess, connect_ea_tenant, invoice_job, unique, wait_for
from worker.cli import app
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.db import session
from worker.ledger.models import BOOKED, Job
from worker.ops import operations
from worker.ops.purge import PurgeError, parse_age
from worker.transport import outbox
from worker.transport.producer import enqueue


def booked(job_id: str) -> Job:
    def done() -> Job | None:
        job = store.find_job(job_id)
        return job if job is not None and job.state == BOOKED else None

    return wait_for(done, 90)


def settled_days_ago(job_id: str, days: int) -> None:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with session() as db:
        db.execute(update(Job).where(Job.id == job_id).values(finished_at=when))


def booked_in_simulator(ea_sim: Any, tenant: str, reference: str) -> int:
    invoices = ea_sim.state_dump()[tenant]["invoices"]
    return sum(1 for i in invoices if i.get("YourReference") == reference)


def purge(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["purge", *args, "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def test_purged_job_sent_again_with_the_same_key_is_not_booked_again(
    start_worker: Callable[..., WorkerProcess], ea_sim: Any
) -> None:
    start_worker("purge", concurrency=2)
    tenant = connect_ea_tenant("NO")
    reference = unique("PO")
    job = invoice_job(tenant, your_reference=reference)
    job_id = enqueue(job)
    first = booked(job_id)
    assert first.remote
    settled_days_ago(job_id, 200)

    dry = purge("--older-than", "180d", "--dry-run")
    assert dry["dry_run"] and dry["jobs"] >= 1
    assert store.get_job(job_id).payload == first.payload  # a dry run changes nothing

    assert purge("--older-than", "180d")["jobs"] >= 1
    purged = store.get_job(job_id)
    assert purged.payload == {"tenant_id": tenant, "idempotency_key": job["idempotency_key"],
                              "kind": "invoice"}  # fmt: skip
    assert "Nordic Tools" not in json.dumps(purged.payload)
    assert purged.state == BOOKED and purged.remote == first.remote
    assert purged.purged_at is not None
    for attempt in store.attempts_of(job_id):
        assert all(set(call) <= {"method", "status", "ms"} for call in attempt.calls)

    enqueue(job)  # the late duplicate, with the customer's data again
    later = enqueue(invoice_job(tenant, your_reference=unique("PO")))
    booked(later)
    wait_for(lambda: not outbox.pending([job_id]), 60)

    assert booked_in_simulator(ea_sim, tenant, reference) == 1
    assert store.get_job(job_id).attempts == first.attempts
    assert store.get_job(job_id).payload == purged.payload


def test_purge_keeps_recent_jobs_and_refuses_to_replay_purged_ones() -> None:
    tenant = unique("purge")
    old, recent = unique("inv"), unique("inv")
    ids = []
    for key in (old, recent):
        job_id = job_id_for(tenant, key)
        store.accept_job(job_id, tenant, key, "invoice", invoice_job(tenant, key))
        store.fail_job(job_id, "rejected", "mapping_invalid", "Customer Nordic Tools AS: bad")
        ids.append(job_id)
    settled_days_ago(ids[0], 400)

    purge("--older-than", "365d")

    assert store.get_job(ids[0]).purged_at is not None
    assert store.get_job(ids[0]).error_message is None
    assert store.get_job(ids[0]).error_code == "mapping_invalid"
    assert store.get_job(ids[1]).purged_at is None
    assert "Nordic Tools" in (store.get_job(ids[1]).error_message or "")
    for action in (operations.retry, operations.replay):
        try:
            action(ids[0], "test")
        except operations.ActionRefused as exc:
            assert "purged" in str(exc)
        else:
            raise AssertionError("a purged job was sent again")


def test_older_than_must_be_an_age() -> None:
    assert parse_age("180d") == dt.timedelta(days=180)
    assert parse_age("2w") == dt.timedelta(days=14)
    for bad in ("", "0d", "soon", "-3d"):
        try:
            parse_age(bad)
        except PurgeError as exc:
            assert "--older-than" in str(exc)
        else:
            raise AssertionError(bad)
    result = CliRunner().invoke(app, ["purge", "--older-than", "soon"])
    assert result.exit_code == 2


def test_beat_purges_daily_only_when_configured() -> None:
    from worker.transport.app import _purge_schedule
    from worker.transport.app import app as celery_app

    assert _purge_schedule(None) == {}
    entry = _purge_schedule(180)["purge-settled-jobs"]
    assert entry["schedule"] == 86400.0
    celery_app.loader.import_default_modules()
    assert entry["task"] in celery_app.tasks
