"""`ledgerpush` on the command line: the real app against the session's ledger and Redis."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from tests.conftest import WorkerProcess, invoice_job, unique, wait_for
from worker.cli import app
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.store import find_job
from worker.tenancy.tenants import credentials_of, get_tenant


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


def said(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


def accept(tenant: str, key: str) -> str:
    job_id = job_id_for(tenant, key)
    store.accept_job(job_id, tenant, key, "invoice", invoice_job(tenant, key))
    return job_id


# ---------------------------------------------------------------- enqueue


def test_enqueue_jsonl_reports_bad_lines_and_enqueues_the_others(
    tmp_path: Path, session_worker: WorkerProcess
) -> None:
    tenant = unique("cli")
    good = [invoice_job(tenant, f"inv-{n}") for n in range(3)]
    wrong_price = invoice_job(tenant, "inv-bad-price")
    wrong_price["invoice"]["lines"][0]["unit_price"] = 12.5
    lines = [
        json.dumps(good[0]),
        '{"tenant_id": "x", "idempotency_key": ',  # cut off
        json.dumps(good[1]),
        "",
        json.dumps(wrong_price),
        json.dumps(good[2]),
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = run("enqueue", str(path))

    assert result.exit_code == 1
    ids = [job_id_for(tenant, f"inv-{n}") for n in range(3)]
    assert result.stdout.split() == ids
    errors = said(result.stderr)
    assert "line 2: not JSON (column" in errors
    assert "line 5: invoice.lines.0.unit_price:" in errors
    assert "enqueued 3 of 5" in errors
    for job_id in ids:  # they really went in: the worker took them into the ledger
        wait_for(lambda job_id=job_id: find_job(job_id), 30)
    assert find_job(job_id_for(tenant, "inv-bad-price")) is None


def test_enqueue_jsonl_from_stdin_whose_bad_line_is_not_an_object() -> None:
    tenant = unique("cli")
    text = f"{json.dumps(invoice_job(tenant, 'inv-1'))}\nnot JSON at all\n[1, 2]\n"

    result = run("enqueue", "-", stdin=text)

    assert result.exit_code == 1
    assert result.stdout.split() == [job_id_for(tenant, "inv-1")]
    errors = said(result.stderr)
    assert "line 2: not JSON (column 1: Expecting value)" in errors
    assert "line 3: (payload): Input should be a valid dictionary" in errors
    assert "enqueued 1 of 3" in errors


def test_enqueue_malformed_array_is_reported_and_nothing_goes_in(tmp_path: Path) -> None:
    tenant = unique("cli")
    good = json.dumps(invoice_job(tenant, "inv-1"))
    path = tmp_path / "jobs.json"
    path.write_text(f"[\n  {good},\n  {good[:-1]}\n]\n")  # second item lacks its "}"

    result = run("enqueue", str(path))

    assert result.exit_code == 1
    assert result.stdout == ""
    errors = said(result.stderr)
    assert "is not valid JSON (a JSON array was expected): line 4, column 1:" in errors
    assert "nothing was enqueued" in errors
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_enqueue_malformed_single_object_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text('{"tenant_id": "t", "kind": "invoice",,}')

    result = run("enqueue", str(path))

    assert result.exit_code == 1
    errors = said(result.stderr)
    assert "(a JSON object was expected): line 1, column 38: Expecting property name" in errors


def test_enqueue_missing_file_is_reported(tmp_path: Path) -> None:
    result = run("enqueue", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 1
    assert "cannot read" in said(result.stderr)
    assert isinstance(result.exception, SystemExit)


def test_enqueue_array_from_stdin(session_worker: WorkerProcess) -> None:
    tenant = unique("cli")
    jobs = [invoice_job(tenant, "inv-1"), invoice_job(tenant, "inv-2")]
    jobs[1]["invoice"]["currency"] = "nok!"

    result = run("enqueue", "-", stdin=json.dumps(jobs, indent=2))

    assert result.exit_code == 1
    assert result.stdout.split() == [job_id_for(tenant, "inv-1")]
    assert "item 2: invoice.currency:" in said(result.stderr)
    wait_for(lambda: find_job(job_id_for(tenant, "inv-1")), 30)


def test_enqueue_one_pretty_printed_job_from_stdin() -> None:
    tenant = unique("cli")
    result = run("enqueue", "-", stdin=json.dumps(invoice_job(tenant, "inv-1"), indent=2))
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [job_id_for(tenant, "inv-1")]
    assert "enqueued 1 of 1" in said(result.stderr)


# ---------------------------------------------------------------- jobs list / show


def test_jobs_show_takes_the_id_that_jobs_list_shows() -> None:
    tenant = unique("cli")
    job_id = accept(tenant, "inv-1")

    listed = run("jobs", "list", "--tenant", tenant)
    assert listed.exit_code == 0, listed.output
    assert job_id[:8] in listed.stdout and job_id not in listed.stdout

    for given in (job_id[:8], job_id[:8].upper(), job_id):
        shown = run("jobs", "show", given, "--json")
        assert shown.exit_code == 0, shown.output
        data: dict[str, Any] = json.loads(shown.stdout)
        assert (data["id"], data["idempotency_key"]) == (job_id, "inv-1")


def test_jobs_show_with_an_ambiguous_prefix_lists_the_matches() -> None:
    tenant = unique("cli")
    first: dict[str, str] = {}
    for n in itertools.count():  # two keys whose job ids start alike (1 in 4096)
        key = f"inv-{n}"
        prefix = job_id_for(tenant, key)[:3]
        if prefix in first:
            keys = [first[prefix], key]
            break
        first[prefix] = key
    ids = [accept(tenant, key) for key in keys]

    result = run("jobs", "show", prefix)

    assert result.exit_code == 1
    assert result.stdout == ""
    errors = said(result.stderr)
    assert f"{prefix} is the start of several job ids" in errors
    for job_id, key in zip(ids, keys, strict=True):
        assert f"{job_id} {tenant} {key}" in errors


def test_jobs_show_unknown_id() -> None:
    result = run("jobs", "show", "zz-no-such-job")
    assert result.exit_code == 1
    assert "no job with id zz-no-such-job" in said(result.stderr)


# ---------------------------------------------------------------- tenants


def test_tenants_add_list_show_never_print_credentials() -> None:
    tenant = unique("cli-t")
    secret = "rt-" + os.urandom(8).hex()
    creds = {"access_token": "at-" + os.urandom(8).hex(), "refresh_token": secret}

    added = run(
        "tenants", "add", tenant, "--provider", "eaccounting", "--country", "no",
        "--name", "CLI Test AS", "--credentials-stdin",
        stdin=json.dumps(creds),
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert f"added tenant {tenant} (eaccounting, NO) with credentials" in said(added.stdout)
    assert credentials_of(get_tenant(tenant)) == creds

    listed = run("tenants", "list", "--json")
    shown = run("tenants", "show", tenant, "--json")
    table = run("tenants", "show", tenant)
    for result in (added, listed, shown, table):
        assert result.exit_code == 0, result.output
        assert secret not in result.output and creds["access_token"] not in result.output
    [row] = [r for r in json.loads(listed.stdout) if r["id"] == tenant]
    data = json.loads(shown.stdout)
    assert data.pop("events") == []  # `show` adds the tenant's audit trail
    assert row == data
    assert (data["provider"], data["country"], data["name"]) == ("eaccounting", "NO", "CLI Test AS")
    assert data["has_credentials"] is True


def test_tenants_add_with_bad_stdin_json_is_a_clear_error() -> None:
    tenant = unique("cli-t")
    secret = "rt-" + os.urandom(8).hex()
    for stdin, expected in (
        ('{"refresh_token": "' + secret + '",}', "not valid JSON at line 1, column"),
        ("", "nothing on stdin"),
        (json.dumps([secret]), "a JSON object was expected"),
    ):
        result = run(
            "tenants", "add", tenant, "--provider", "eaccounting", "--country", "NO",
            "--credentials-stdin", stdin=stdin,
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert expected in said(result.stderr)
        assert secret not in result.output
    missing = run("tenants", "show", tenant)
    assert missing.exit_code == 1
