"""Poison messages: pushed raw onto a queue as a producer in any language would, each is
moved to `ledgerpush.poison` with its reason while a real worker keeps running and books
the good jobs behind it; a fixed one re-injected is booked."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from tests.conftest import WorkerProcess, connect_ea_tenant, invoice_job, unique, wait_for
from tests.test_worker import raw_celery_message
from worker.jobs import job_id_for
from worker.ledger.db import session
from worker.ledger.models import WebhookDelivery
from worker.ledger.store import find_job
from worker.ops import operations
from worker.transport import poison
from worker.transport.app import INVOICE_TASK, INVOICES_QUEUE, PAYMENTS_QUEUE
from worker.transport.redis_client import get_redis

pytest_plugins = ["tests.web_fixtures"]
MAX_BYTES = 1_048_576  # LEDGERPUSH_MAX_MESSAGE_BYTES's default, which every worker here has


@pytest.fixture(scope="module")
def workers(
    session_worker: WorkerProcess, base_env: dict[str, str]
) -> Iterator[list[WorkerProcess]]:
    """Two worker processes on the queues (the session's and one of this module's):
    either may take a message."""
    worker = WorkerProcess(unique("poison"), base_env, concurrency=4).start()
    yield [session_worker, worker]
    worker.stop()


@pytest.fixture
def poison_worker(workers: list[WorkerProcess]) -> WorkerProcess:
    return workers[1]


def _pids(workers: list[WorkerProcess]) -> list[int | None]:
    return [w.process.pid if w.process and w.process.poll() is None else None for w in workers]


def _envelope(marker: str, body: str, **changes: Any) -> dict[str, Any]:
    """A Celery protocol-2 envelope (as in the README) around a body given as base64."""
    message: dict[str, Any] = json.loads(
        raw_celery_message(INVOICE_TASK, INVOICES_QUEUE, {}, marker)
    )
    message["body"] = body
    for key, value in changes.items():
        message[key] = value
    return message


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _raw(marker: str, body: str, **changes: Any) -> bytes:
    return json.dumps(_envelope(marker, body, **changes)).encode()


def _with_task(marker: str, task: str) -> bytes:
    message = _envelope(marker, "")
    message["body"] = json.loads(raw_celery_message(task, INVOICES_QUEUE, {"k": marker}, marker))[
        "body"
    ]
    message["headers"]["task"] = task
    return json.dumps(message).encode()


def _nested_envelope(marker: str) -> bytes:
    return ('{"m": "' + marker + '", "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()


CASES: dict[str, tuple[Callable[[str], bytes], str]] = {
    "not json": (lambda m: f"this is not json at all {{ {m}".encode(), "not_json"),
    "not utf-8": (lambda m: b"\xff\xfe" + m.encode(), "not_json"),
    "a JSON array, not an envelope": (lambda m: json.dumps([m]).encode(), "wrong_envelope"),
    "wrong envelope": (
        lambda m: json.dumps({"hello": "world", "m": m}).encode(),
        "wrong_envelope",
    ),
    "no delivery info": (
        lambda m: _raw(m, _b64("[[], {}, {}]"), properties={"delivery_tag": m}),
        "wrong_envelope",
    ),
    "body not base64": (lambda m: _raw(m, "%%% not base64 %%%"), "not_base64"),
    "wrong arity {'a': 1}": (lambda m: _raw(m, _b64('{"a": 1}')), "wrong_arguments"),
    "no job argument": (lambda m: _raw(m, _b64("[[], {}, {}]")), "wrong_arguments"),
    "unknown keyword": (
        lambda m: _raw(m, _b64('[[{}], {"colour": "red"}, {}]')),
        "wrong_arguments",
    ),
    "unknown task": (lambda m: _with_task(m, "ledgerpush.invoices"), "unknown_task"),
    "body not UTF-8": (lambda m: _raw(m, _b64(b"\xff\xfe\xfd")), "undecodable_body"),
    "body not JSON": (lambda m: _raw(m, _b64("[[{]")), "undecodable_body"),
    "pickle content type": (
        lambda m: _raw(
            m, _b64("[[], {}, {}]"), **{"content-type": "application/x-python-serialize"}
        ),
        "undecodable_body",
    ),
    "huge integer": (lambda m: _raw(m, _b64("[[" + "9" * 5000 + "], {}, {}]")), "undecodable_body"),
    "body nested 100,000 levels": (
        lambda m: _raw(m, _b64("[" * 100_000 + "]" * 100_000)),
        "too_deep",
    ),
    "message nested 100,000 levels": (_nested_envelope, "too_deep"),
    "oversized": (lambda m: _raw(m, _b64("[[], {}, {}]" + " " * MAX_BYTES)), "oversized"),
    "eta Celery cannot read": (
        lambda m: json.dumps(
            {
                **_envelope(m, _b64("[[{}], {}, {}]")),
                "headers": {"task": INVOICE_TASK, "id": m, "eta": "next tuesday"},
            }
        ).encode(),
        "rejected_by_celery",
    ),
}


def _poison_entry(marker: str) -> poison.Entry | None:
    for entry in poison.entries(500):
        if marker.encode() in entry.raw:
            return entry
    return None


def _booked(job_id: str) -> Any:
    job = find_job(job_id)
    return job if job is not None and job.state in ("booked", "failed") else None


def _push_with_good_job_behind(raw: bytes, tenant: str) -> str:
    """The poison message first, then a good job: the worker must get past the first."""
    good = invoice_job(tenant)
    good_id = job_id_for(tenant, good["idempotency_key"])
    get_redis().lpush(INVOICES_QUEUE, raw)
    get_redis().lpush(
        INVOICES_QUEUE, raw_celery_message(INVOICE_TASK, INVOICES_QUEUE, good, good_id)
    )
    return good_id


@pytest.mark.parametrize("case", list(CASES))
def test_poison_message_is_kept_and_the_worker_goes_on(
    workers: list[WorkerProcess], case: str
) -> None:
    make, reason = CASES[case]
    marker = f"poison-{uuid.uuid4().hex}"
    raw = make(marker)
    pids = _pids(workers)
    tenant = connect_ea_tenant("NO")

    good_id = _push_with_good_job_behind(raw, tenant)

    entry = wait_for(lambda: _poison_entry(marker), 30)
    assert entry.reason == reason, entry.detail
    assert entry.raw == raw
    assert entry.queue == INVOICES_QUEUE
    assert entry.size == len(raw)
    job = wait_for(lambda: _booked(good_id), 60)
    assert job.state == "booked", (job.error_code, job.error_message)
    assert _pids(workers) == pids and None not in pids  # no worker stopped or restarted
    lines = [line for w in workers for line in w.output().splitlines() if entry.id in line]
    assert len(lines) == 1, lines
    assert "Traceback" not in workers[1].output()


def _raw_job_message(job: dict[str, Any], job_id: str | None = None, **dumps: Any) -> bytes:
    job_id = job_id or job_id_for(job["tenant_id"], job["idempotency_key"])
    body = [[job], {"enqueued_at": time.time()}, {}]
    message = json.loads(raw_celery_message(INVOICE_TASK, INVOICES_QUEUE, {}, job_id))
    message["body"] = _b64(json.dumps(body, **dumps))
    return json.dumps(message).encode()


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_number_is_kept_as_invalid_payload(
    poison_worker: WorkerProcess, number: str
) -> None:
    """Python reads NaN and Infinity (and 1e999 as Infinity); PostgreSQL's json type
    refuses them. The job is kept as a failed invalid_payload row all the same."""
    tenant = unique("nan")
    job = invoice_job(tenant, "inv-nan")
    job["invoice"]["lines"][0]["unit_price"] = "__NUMBER__"
    raw = _raw_job_message(job)
    body = json.dumps([[job], {}, {}]).replace('"__NUMBER__"', number)
    message = json.loads(raw)
    message["body"] = _b64(body)
    get_redis().lpush(INVOICES_QUEUE, json.dumps(message).encode())

    row = wait_for(lambda: _booked(job_id_for(tenant, "inv-nan")), 60)
    assert row.state == "failed"
    assert row.error_code == "invalid_payload"
    assert row.error_fields[0]["field"] == "invoice.lines.0.unit_price"
    stored = row.payload["invoice"]["lines"][0]["unit_price"]
    assert stored == ("Infinity" if number == "1e999" else number)


def test_reinject_a_fixed_job_books_it(poison_worker: WorkerProcess) -> None:
    tenant = connect_ea_tenant("NO")
    job = invoice_job(tenant)
    marker = f"poison-{uuid.uuid4().hex}"
    # A job pushed without its envelope onto the Celery queue.
    get_redis().lpush(INVOICES_QUEUE, json.dumps({**job, "m": marker}).encode())
    entry = wait_for(lambda: _poison_entry(marker), 30)
    assert entry.reason == "wrong_envelope"

    job_id = operations.reinject_poison_job(entry.id, "op@example.com", job)

    assert wait_for(lambda: _booked(job_id), 60).state == "booked"
    assert _poison_entry(marker) is None
    audit = poison.audit_trail()[0]
    assert audit["entry"] == entry.id and audit["actor"] == "op@example.com"
    assert audit["action"] == f"re-enqueued as job {job_id}"


def test_reinject_a_fixed_raw_message_books_it(poison_worker: WorkerProcess) -> None:
    tenant = connect_ea_tenant("NO")
    job = invoice_job(tenant)
    job_id = job_id_for(tenant, job["idempotency_key"])
    good = _raw_job_message(job)
    wrong = good.replace(INVOICE_TASK.encode(), b"ledgerpush.invoicez")
    get_redis().lpush(INVOICES_QUEUE, wrong)
    entry = wait_for(lambda: _poison_entry(job_id), 30)
    assert entry.reason == "unknown_task"

    with pytest.raises(poison.PoisonMessage, match="unknown_task"):
        poison.reinject(entry.id, "op@example.com")  # as it is: still poison
    assert _poison_entry(job_id) is not None
    poison.reinject(entry.id, "op@example.com", fixed=good)

    assert wait_for(lambda: _booked(job_id), 60).state == "booked"
    assert _poison_entry(job_id) is None
    assert poison.audit_trail()[0]["action"] == "reinjected after fixing"
    with pytest.raises(poison.EntryNotFound):
        poison.reinject(entry.id, "op@example.com", fixed=good)


def test_poison_is_counted_and_alerted_once_per_burst(poison_worker: WorkerProcess) -> None:
    redis = get_redis()
    redis.delete(poison.BURST_KEY)  # the earlier tests' burst is over
    before, bursts_before = poison.totals().get("not_json", 0), poison.bursts()
    markers = [f"poison-{uuid.uuid4().hex}" for _ in range(5)]
    for marker in markers:
        redis.lpush(PAYMENTS_QUEUE, f"not json {marker}".encode())
    for marker in markers:
        wait_for(lambda m=marker: _poison_entry(m), 30)  # type: ignore[misc]
    assert poison.totals()["not_json"] == before + 5
    assert poison.count() >= 5
    assert redis.ttl(poison.BURST_KEY) > 0
    assert poison.bursts() == bursts_before + 1  # one alert for the five


def test_burst_alert_is_a_signed_webhook(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.ops import alerts

    configured = alerts.get_settings().model_copy(
        update={"webhook_url": "http://127.0.0.1:9/hooks", "webhook_secret": SecretStr("s")}
    )
    monkeypatch.setattr(alerts, "get_settings", lambda: configured)
    alerts.poison_messages(PAYMENTS_QUEUE, "not_json")
    with session() as db:
        delivery = db.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.event == "poison.received")
            .order_by(WebhookDelivery.id.desc())
        ).first()
    assert delivery is not None
    assert delivery.payload["data"]["queue"] == PAYMENTS_QUEUE
    assert delivery.payload["data"]["list"] == poison.POISON_KEY


def test_dashboard_shows_downloads_fixes_and_discards_poison(
    poison_worker: WorkerProcess, browser_client: tuple[TestClient, str], operator: str
) -> None:
    client, csrf = browser_client
    tenant = connect_ea_tenant("NO")
    job = invoice_job(tenant)
    marker = f"poison-{uuid.uuid4().hex}"
    raw = json.dumps({**job, "m": marker}).encode()
    get_redis().lpush(INVOICES_QUEUE, raw)
    entry = wait_for(lambda: _poison_entry(marker), 30)

    page = client.get("/dead-letters")
    assert entry.id in page.text and "wrong_envelope" in page.text
    download = client.get(f"/poison/{entry.id}/raw")
    assert download.content == raw
    assert "attachment" in download.headers["content-disposition"]
    detail = client.get(f"/poison/{entry.id}")
    assert "the fixed job" in detail.text and tenant in detail.text  # the job, ready to fix

    bad = {**job, "invoice": {**job["invoice"], "currency": "XXX"}}
    refused = client.post(
        f"/poison/{entry.id}/reinject",
        data={"csrf_token": csrf, "mode": "job", "fixed": json.dumps(bad)},
    )
    assert refused.status_code == 409
    assert "invoice.currency" in refused.text
    fixed = client.post(
        f"/poison/{entry.id}/reinject",
        data={"csrf_token": csrf, "mode": "job"},
        files={"upload": ("job.json", json.dumps(job).encode(), "application/json")},
    )
    assert fixed.status_code == 303
    job_id = job_id_for(tenant, job["idempotency_key"])
    assert fixed.headers["location"] == f"/jobs/{job_id}"
    assert wait_for(lambda: _booked(job_id), 60).state == "booked"
    assert poison.audit_trail()[0]["actor"] == operator

    other = f"poison-{uuid.uuid4().hex}"
    get_redis().lpush(INVOICES_QUEUE, f"not json {other}".encode())
    gone = wait_for(lambda: _poison_entry(other), 30)
    as_is = client.post(f"/poison/{gone.id}/reinject", data={"csrf_token": csrf})
    assert as_is.status_code == 409 and "still poison" in as_is.text
    assert client.post(f"/poison/{gone.id}/discard", data={"csrf_token": csrf}).status_code == 303
    assert _poison_entry(other) is None
    assert client.get(f"/poison/{gone.id}").status_code == 404


def test_metrics_count_poison(poison_worker: WorkerProcess, anon: TestClient) -> None:
    get_redis().lpush(INVOICES_QUEUE, f"not json {uuid.uuid4().hex}".encode())
    wait_for(lambda: poison.count() > 0, 30)
    text = anon.get("/metrics").text
    assert 'ledgerpush_poison_messages_total{reason="not_json"}' in text
    length = re.search(r"^ledgerpush_poison_list_length (\S+)$", text, re.MULTILINE)
    assert length and float(length.group(1)) >= 1
