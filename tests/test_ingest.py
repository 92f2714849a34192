"""Bad input answered at the door (the safe loader, the job contract's texts, the CLI, the
API), POST /api/jobs:batch, and the plain ingest list `ledgerpush.ingest` with its
drainers killed while they drain."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.conftest import (
    ROOT,
    SIMULATORS,
    WorkerProcess,
    connect_ea_tenant,
    invoice_job,
    unique,
    wait_for,
)
from worker import safejson
from worker.jobs import JobValidationError, job_id_for, parse_job
from worker.ledger.db import session
from worker.ledger.models import Job
from worker.ledger.store import find_job
from worker.transport import ingest
from worker.transport.embedded_redis import EmbeddedRedis, free_port
from worker.transport.redis_client import get_redis

pytest_plugins = ["tests.web_fixtures"]
DEEP = "[" * 100_000 + "]" * 100_000


def errors_of(data: Any) -> dict[str, str]:
    with pytest.raises(JobValidationError) as caught:
        parse_job(data)
    return {e.field: e.message for e in caught.value.errors}


def with_value(job: dict[str, Any], literal: str) -> str:
    """The job as JSON text with its first line's quantity replaced by `literal`."""
    return json.dumps(job).replace('"quantity": "10"', f'"quantity": {literal}', 1)


# ---------------------------------------------------------------- the loader and the contract


def test_deep_nesting_is_refused_without_recursion() -> None:
    for text in (DEEP, "[" * 100_000, '{"a":' * 100_000):
        assert "nested deeper than 32 levels" in errors_of(text)["(body)"]
    # Brackets inside strings do not count.
    assert safejson.loads(json.dumps({"a": "[" * 1000})) == {"a": "[" * 1000}


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        ("NaN", "NaN is not a number JSON allows"),
        ("Infinity", "Infinity is not a number JSON allows"),
        ("-Infinity", "-Infinity is not a number JSON allows"),
        ("1e999", "a number beyond the range of a double"),
        ("9" * 5000, "a number of more than 20 digits"),
    ],
)
def test_non_finite_and_huge_numbers_are_refused_naming_the_field(
    literal: str, message: str
) -> None:
    text = with_value(invoice_job("acme-no", "k"), literal)
    assert errors_of(text) == {"invoice.lines.0.quantity": message}


def test_duplicate_keys_and_unencodable_strings_are_refused() -> None:
    text = json.dumps(invoice_job("acme-no", "k")).replace(
        '"currency": "NOK"', '"currency": "NOK", "currency": "EUR"'
    )
    assert errors_of(text) == {"invoice.currency": "the key appears more than once"}
    text = json.dumps(invoice_job("acme-no", "k")).replace('"Oslo"', '"Os\\ud800lo"')
    assert "unpaired surrogate" in errors_of(text)["invoice.customer.address.city"]
    assert "not UTF-8" in errors_of(b'{"a": "\xff"}')["(body)"]


@pytest.mark.parametrize(
    ("field", "text", "words"),
    [
        ("name", "Nordic\u202eTools", "bidirectional-control characters (U+202E at position 7)"),
        ("name", "Nordic\u2066Tools", "bidirectional-control characters (U+2066"),
        ("name", "Nordic\nTools", "control characters (U+000A at position 7)"),
        ("name", "Nordic\x1b[31mTools", "control characters (U+001B"),
        ("name", "Nordic\x85Tools", "control characters (U+0085"),
    ],
)
def test_control_and_bidi_characters_in_texts_are_refused_naming_the_field(
    field: str, text: str, words: str
) -> None:
    job = invoice_job("acme-no", "k")
    job["invoice"]["customer"][field] = text
    errors = errors_of(job)
    assert words in errors[f"invoice.customer.{field}"]
    assert errors_of(json.dumps(job)) == errors  # the same from JSON text


def test_line_breaks_and_tabs_are_allowed_in_descriptions_and_notes_only() -> None:
    job = invoice_job("acme-no", "k", notes="Paid in two parts:\n\t1. now\r\n\t2. later")
    job["invoice"]["lines"][0]["description"] = "Consulting\nNovember"
    assert parse_job(job).invoice.lines[0].description == "Consulting\nNovember"  # type: ignore[union-attr]
    job["invoice"]["lines"][0]["description"] = "Consulting\x00November"
    assert "U+0000" in errors_of(job)["invoice.lines.0.description"]
    job = invoice_job("acme-no", "k", your_reference="PO\t7781")
    assert "control characters (U+0009" in errors_of(job)["invoice.your_reference"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.text(), st.binary()))
def test_fuzz_the_loader_raises_only_its_own_error(data: str | bytes) -> None:
    with contextlib.suppress(safejson.UnsafeJSON):
        safejson.loads(data)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_values, st.sampled_from(["tenant_id", "invoice", "lines", "customer", "name"]))
def test_fuzz_job_payloads_raise_only_the_validation_error(value: Any, where: str) -> None:
    job = invoice_job("acme-no", "k")
    targets = {
        "tenant_id": (job, "tenant_id"),
        "invoice": (job, "invoice"),
        "lines": (job["invoice"], "lines"),
        "customer": (job["invoice"], "customer"),
        "name": (job["invoice"]["customer"], "name"),
    }
    holder, key = targets[where]
    holder[key] = value
    for data in (job, json.dumps(job, allow_nan=True), value):
        try:
            parse_job(data)
        except JobValidationError as exc:
            assert exc.errors and all(e.field and e.message for e in exc.errors)


# ---------------------------------------------------------------- ledgerpush enqueue


def cli(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "enqueue", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_enqueue_reports_deep_and_nan_lines_and_enqueues_the_others(tmp_path: Path) -> None:
    tenant = unique("cli")
    lines = [
        json.dumps(invoice_job(tenant, "inv-1")),
        DEEP,
        with_value(invoice_job(tenant, "inv-nan"), "NaN"),
        json.dumps(invoice_job(tenant, "inv-bidi", your_reference="PO\u202e1887")),
        json.dumps(invoice_job(tenant, "inv-2")),
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = cli(str(path))

    assert result.returncode == 1, result.stderr
    assert result.stdout.split() == [job_id_for(tenant, "inv-1"), job_id_for(tenant, "inv-2")]
    errors = " ".join(result.stderr.split())
    assert "line 2: nested deeper than 32 levels (line 1, column 33)" in errors
    assert "line 3: invoice.lines.0.quantity: NaN is not a number JSON allows" in errors
    assert "line 4: invoice.your_reference: must not contain bidirectional-control" in errors
    assert "enqueued 2 of 5" in errors
    assert "Traceback" not in result.stderr


def test_enqueue_array_item_with_nan_is_refused_alone() -> None:
    tenant = unique("cli")
    text = (
        "["
        + ",".join(
            [json.dumps(invoice_job(tenant, "a")), with_value(invoice_job(tenant, "b"), "Infinity")]
        )
        + "]"
    )
    result = cli("-", stdin=text)
    assert result.returncode == 1
    assert result.stdout.split() == [job_id_for(tenant, "a")]
    assert "item 2: invoice.lines.0.quantity: Infinity is not a number" in result.stderr
    deep = cli("-", stdin=DEEP)
    assert deep.returncode == 1
    assert "nested deeper than 32 levels" in deep.stderr and "nothing was enqueued" in deep.stderr


def test_enqueue_with_redis_down_says_so_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps(invoice_job(unique("cli"), "inv-1")) + "\n")
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"

    result = cli(str(path), LEDGERPUSH_REDIS_URL=url)

    assert result.returncode == 3
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("stopped: Redis at 127.0.0.1:") and "is unreachable" in line
    assert "enqueued 0 of 1; line 1 and after were not enqueued" in line
    assert f"resume with: ledgerpush enqueue {path} --from-line 1" in line
    assert "hunter2" not in line


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


#: `python -m worker` with Python's own Ctrl+C handler installed, whatever it inherited.
_WITH_CTRL_C = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'ledgerpush'; runpy.run_module('worker', run_name='__main__')"
)


def _enqueue_until(
    args: list[str], env: dict[str, str], lines_seen: int, then: Any
) -> tuple[int, list[str], str]:
    """Run `ledgerpush enqueue`, call `then(process)` once `lines_seen` ids were printed.
    Ctrl+C reaches it as in a terminal even where this test runs in a background job,
    whose children inherit SIGINT ignored (Python then never raises KeyboardInterrupt)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _WITH_CTRL_C, "enqueue", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ids = []
    for line in process.stdout:
        ids.append(line.strip())
        if len(ids) == lines_seen:
            then(process)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, ids, stderr


def _jobs_file(tmp_path: Path, tenant: str, count: int) -> Path:
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(json.dumps(invoice_job(tenant, f"inv-{n}")) + "\n" for n in range(count))
    )
    return path


def test_enqueue_interrupted_by_redis_dying_says_where_to_resume(
    tmp_path: Path, own_redis: EmbeddedRedis
) -> None:
    tenant, count = unique("cli"), 2000
    path = _jobs_file(tmp_path, tenant, count)
    env = {"LEDGERPUSH_REDIS_URL": own_redis.url}

    code, ids, stderr = _enqueue_until([str(path)], env, 20, lambda _: own_redis.kill())

    assert code == 3, stderr
    done = len(ids)
    assert 20 <= done < count
    [line] = stderr.strip().splitlines()
    assert "is unreachable" in line and f"enqueued {done} of {count}" in line
    assert f"--from-line {done + 1}" in line
    # Every line before the one named went in (the queue holds them), none after it.
    own_redis.start()
    client = redis.Redis.from_url(own_redis.url)
    queued = b"".join(
        client.lrange("ledgerpush.invoices", 0, -1) + client.lrange("ledgerpush.bulk", 0, -1)
    )
    assert all(job_id.encode() in queued for job_id in ids)

    resumed = cli(str(path), "--from-line", str(done + 1), **env)
    assert resumed.returncode == 0, resumed.stderr
    expected = [job_id_for(tenant, f"inv-{n}") for n in range(count)]
    assert ids + resumed.stdout.split() == expected


def test_enqueue_interrupted_by_ctrl_c_says_where_to_resume(
    tmp_path: Path, own_redis: EmbeddedRedis
) -> None:
    path = _jobs_file(tmp_path, unique("cli"), 2000)
    env = {"LEDGERPUSH_REDIS_URL": own_redis.url}

    code, ids, stderr = _enqueue_until([str(path)], env, 10, lambda p: p.send_signal(signal.SIGINT))

    assert code == 130, stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith("stopped: interrupted; enqueued ")
    resume = int(line.rsplit("--from-line ", 1)[1])
    assert resume in (len(ids) + 1, len(ids) + 2)  # an id may be printed as the signal lands
    assert f"enqueued {resume - 1} of 2000" in line


# ---------------------------------------------------------------- the API


def test_api_refuses_deep_nan_and_bidi_with_422_naming_the_field(api: TestClient) -> None:
    headers = {"content-type": "application/json"}
    deep = api.post("/api/jobs", content=DEEP, headers=headers)
    assert deep.status_code == 422
    assert deep.json()["detail"][0]["field"] == "(body)"
    assert "nested deeper than 32 levels" in deep.json()["detail"][0]["message"]

    nan = api.post(
        "/api/jobs", content=with_value(invoice_job("acme-no", "k"), "NaN"), headers=headers
    )
    assert nan.status_code == 422
    assert nan.json()["detail"] == [
        {"field": "invoice.lines.0.quantity", "message": "NaN is not a number JSON allows"}
    ]
    huge = api.post(
        "/api/jobs", content=with_value(invoice_job("acme-no", "k"), "1" * 10_000), headers=headers
    )
    assert huge.status_code == 422

    job = invoice_job(unique("api"), "k")
    job["invoice"]["customer"]["address"]["city"] = "Os\u202elo"
    bidi = api.post("/api/jobs", json=job)
    assert bidi.status_code == 422
    [problem] = bidi.json()["detail"]
    assert problem["field"] == "invoice.customer.address.city"
    assert "bidirectional-control" in problem["message"]


def test_batch_accepts_each_job_on_its_own(api: TestClient) -> None:
    tenant = unique("batch")
    first = api.post("/api/jobs", json=invoice_job(tenant, "seen"))
    assert first.status_code == 201
    bad_price = invoice_job(tenant, "bad-price")
    bad_price["invoice"]["lines"][0]["unit_price"] = 12.5
    jobs = [
        invoice_job(tenant, "new-1"),
        bad_price,
        invoice_job(tenant, "seen"),
        "not a job",
        invoice_job(tenant, "new-2"),
    ]
    body = json.dumps({"jobs": jobs})[:-2] + f", {with_value(invoice_job(tenant, 'nan'), 'NaN')}]}}"

    response = api.post(
        "/api/jobs:batch", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [201, 422, 200, 422, 201, 422]
    assert results[0]["id"] == job_id_for(tenant, "new-1") and results[0]["created"] is True
    assert results[1]["errors"][0]["field"] == "invoice.lines.0.unit_price"
    assert results[2]["id"] == first.json()["id"] and results[2]["created"] is False
    assert results[5]["errors"] == [
        {"field": "invoice.lines.0.quantity", "message": "NaN is not a number JSON allows"}
    ]
    # Sent again: nothing new.
    again = api.post("/api/jobs:batch", json={"jobs": [invoice_job(tenant, "new-1")]})
    assert again.json()["results"][0]["status"] == 200


def test_batch_refuses_a_request_that_is_not_a_list_of_up_to_500_jobs(api: TestClient) -> None:
    headers = {"content-type": "application/json"}
    cases = {
        b"{nope": "(body)",
        DEEP.encode(): "(body)",
        b"[]": "jobs",
        b'{"jobs": []}': "jobs",
        json.dumps({"jobs": [{}] * 501}).encode(): "jobs",
    }
    for body, field in cases.items():
        response = api.post("/api/jobs:batch", content=body, headers=headers)
        assert response.status_code == 422, body[:40]
        assert response.json()["detail"][0]["field"] == field
    anonymous = TestClient(api.app).post("/api/jobs:batch", json={"jobs": [{}]})
    assert anonymous.status_code == 401


# ---------------------------------------------------------------- the ingest list, in process


def _poisoned(marker: str) -> dict[str, Any] | None:
    for raw in get_redis().lrange(ingest.POISON_QUEUE, 0, -1):  # type: ignore[union-attr]
        entry = json.loads(raw)
        text = entry.get("raw", "")
        if marker in text or marker.encode() in _maybe_b64(entry.get("raw_base64", "")):
            return dict(entry)
    return None


def _maybe_b64(text: str) -> bytes:
    import base64
    import binascii

    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _drain_until(predicate: Any) -> Any:
    """Drain here (a worker of another test may drain too) until `predicate` holds."""
    drainer = ingest.Drainer(unique("test-drainer"))
    return wait_for(lambda: (drainer.drain_one(block=0.1) and False) or predicate(), 30)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (b"this is not json at all { MARK", "not JSON"),
        (b'["MARK", ' + b"[" * 100_000, "nested deeper than 32 levels"),
        (b'{"tenant_id": "MARK", "n": NaN}', "n: NaN is not a number JSON allows"),
        (b'{"tenant_id": "MARK", "n": 1' + b"0" * 30 + b"}", "more than 20 digits"),
        (b'["MARK"]', "a job is a JSON object"),
        (b'{"tenant_id": "MARK\xff"}', "not UTF-8"),
    ],
)
def test_malformed_ingest_entries_go_to_the_poison_list(entry: bytes, reason: str) -> None:
    marker = unique("mark")
    raw = entry.replace(b"MARK", marker.encode())
    get_redis().lpush(ingest.INGEST_QUEUE, raw)

    found = _drain_until(lambda: _poisoned(marker))

    assert found["queue"] == "ledgerpush.ingest"
    assert found["reason"] == "ingest_refused"
    assert reason in found["detail"]
    assert abs(dt.datetime.fromisoformat(found["at"]).timestamp() - time.time()) < 60
    original = found["raw"].encode() if "raw" in found else _maybe_b64(found["raw_base64"])
    assert original == raw


def test_ingest_entry_that_breaks_the_contract_is_kept_as_invalid_payload() -> None:
    tenant = unique("ingest")
    job = invoice_job(tenant, "bad-currency")
    job["invoice"]["currency"] = "nok"
    get_redis().lpush(ingest.INGEST_QUEUE, json.dumps(job))

    row = _drain_until(lambda: find_job(job_id_for(tenant, "bad-currency")))

    assert row.state == "failed" and row.error_code == "invalid_payload"
    assert row.error_fields[0]["field"] == "invoice.currency"


def test_a_broken_copy_of_a_recorded_job_is_poisoned_and_leaves_the_job_alone() -> None:
    from worker.ledger import store

    tenant = unique("ingest")
    job = invoice_job(tenant, "inv-1")
    job_id = job_id_for(tenant, "inv-1")
    store.accept_job(job_id, tenant, "inv-1", "invoice", job)
    broken = {**job, "invoice": {**job["invoice"], "currency": "nok"}, "note": unique("mark")}
    get_redis().lpush(ingest.INGEST_QUEUE, json.dumps(broken))

    found = _drain_until(lambda: _poisoned(broken["note"]))

    assert f"job {job_id} has its key" in found["detail"]
    assert "invoice.currency" in found["detail"]
    row = find_job(job_id)
    assert row is not None and row.error_code is None


def test_a_dead_drainers_entries_are_moved_back_and_recorded_once() -> None:
    tenant = unique("ingest")
    client: Any = get_redis()
    dead = unique("dead")
    entries = [json.dumps(invoice_job(tenant, f"inv-{n}")) for n in range(3)]
    # A drainer that took three entries and died (its heartbeat is a minute old); the
    # second one it had already recorded and sent.
    client.zadd(ingest.DRAINERS_KEY, {dead: float(client.time()[0]) - 60})
    client.lpush(ingest.PROCESSING_PREFIX + dead, *entries)
    ingest.ingest(entries[1].encode())

    assert ingest.recover() >= 3
    assert client.llen(ingest.PROCESSING_PREFIX + dead) == 0
    assert client.zscore(ingest.DRAINERS_KEY, dead) is None
    ids = [job_id_for(tenant, f"inv-{n}") for n in range(3)]
    _drain_until(lambda: all(find_job(i) for i in ids))
    with session() as db:
        rows = db.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant))
    assert rows == 3


# ---------------------------------------------------------------- the ingest list, killed


class DrainerProcess(WorkerProcess):
    """A `ledgerpush ingest` process (workers drain too; this one runs alone)."""

    def __init__(self, name: str, env: dict[str, str], concurrency: int = 8) -> None:
        super().__init__(name, env, concurrency)
        self.command = [sys.executable, "-m", "worker", "ingest"]
        self.ready = b"draining"


def _states(tenants: list[str]) -> dict[str, int]:
    with session() as db:
        rows = db.execute(
            select(Job.state, func.count()).where(Job.tenant_id.in_(tenants)).group_by(Job.state)
        ).all()
    return {state: count for state, count in rows}


def _reconcile(env: dict[str, str]) -> None:
    """What the beat task does, against this test's Redis."""
    code = "from worker.ops.reconciler import reconcile_stuck_jobs; reconcile_stuck_jobs(5)"
    subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, timeout=120, check=True
    )


@pytest.mark.slow
def test_ingest_list_drained_while_drainers_are_killed_records_and_books_every_job_once(
    tmp_path: Path, base_env: dict[str, str]
) -> None:
    """Jobs pushed with LPUSH while two workers (each with its drainer) and a `ledgerpush
    ingest` process drain them; one of the three is SIGKILLed and replaced a few times
    mid-drain. Every job ends with one ledger row, booked, and one invoice.
    LEDGERPUSH_TEST_INGEST_JOBS=1000 for the full size (the default suits a busy 2-core CI)."""
    count = int(os.environ.get("LEDGERPUSH_TEST_INGEST_JOBS", "300"))
    kills, rng = 4, random.Random(13)
    server = EmbeddedRedis(tmp_path / "redis").start()
    env = {
        **base_env,
        "LEDGERPUSH_REDIS_URL": server.url,
        "LEDGERPUSH_VISIBILITY_TIMEOUT": "30",
        "LEDGERPUSH_TASK_TIME_LIMIT": "12",
        "LEDGERPUSH_TASK_SOFT_TIME_LIMIT": "10",
        "LEDGERPUSH_LEASE_SECONDS": "5",
    }
    tenants = [connect_ea_tenant("NO") for _ in range(8)]
    jobs = [
        invoice_job(tenants[n % len(tenants)], f"ing-{n}", your_reference=f"ing-{n}")
        for n in range(count)
    ]
    ids = {job_id_for(j["tenant_id"], j["idempotency_key"]) for j in jobs}
    client: Any = redis.Redis.from_url(server.url)

    def spawn(kind: type[WorkerProcess]) -> WorkerProcess:
        return kind(unique("ingest"), env, 8).start()

    running = [spawn(WorkerProcess), spawn(WorkerProcess), spawn(DrainerProcess)]
    stopped: list[WorkerProcess] = []
    # Replacements start in the background (a worker takes seconds to start) while the
    # others drain; at least two are running whenever one is killed.
    starting: list[Future[WorkerProcess]] = []
    spawner = ThreadPoolExecutor(kills)
    try:
        chunk = -(-count // (kills + 1))
        for start in range(0, count, chunk):
            client.lpush(ingest.INGEST_QUEUE, *[json.dumps(j) for j in jobs[start : start + chunk]])
            if len(stopped) == kills:
                continue
            wait_for(lambda: client.llen(ingest.INGEST_QUEUE) < chunk * 0.8, 60, 0.02)
            while len(running) < 2:
                running.append(starting.pop(0).result())
            victim = running.pop(rng.randrange(len(running)))
            victim.kill()
            stopped.append(victim)
            starting.append(spawner.submit(spawn, type(victim)))
        running += [future.result() for future in starting]
        starting.clear()

        deadline = time.monotonic() + 240
        while _states(tenants).get("booked", 0) < count and time.monotonic() < deadline:
            time.sleep(10)
            _reconcile(env)
        states = _states(tenants)
        assert states == {"booked": count}, states
        assert client.llen(ingest.INGEST_QUEUE) == 0
        assert not client.keys(ingest.PROCESSING_PREFIX + "*")
        assert not any(
            job_id.encode() in entry
            for entry in client.lrange(ingest.POISON_QUEUE, 0, -1)
            for job_id in ids
        )
        for tenant in tenants:
            invoices = SIMULATORS["ea"].state_dump()[tenant]["invoices"]
            references = sorted(str(i.get("YourReference")) for i in invoices)
            assert len(invoices) == count // len(tenants) + (
                tenants.index(tenant) < count % len(tenants)
            )
            assert len(set(references)) == len(references), "an invoice was booked twice"
    finally:
        spawner.shutdown()
        running += [f.result() for f in starting if f.done() and not f.exception()]
        for process in running + stopped:
            process.stop()
        server.stop()


def test_metrics_show_the_ingest_backlog(anon: TestClient) -> None:
    text = anon.get("/metrics").text
    assert 'ledgerpush_queue_depth{queue="ledgerpush.ingest"}' in text
