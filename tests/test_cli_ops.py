"""Operator commands on the command line: the same checks and audit as the dashboard
(worker/ops/operations.py), --json on every list command, clear errors for bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner, Result

from tests.conftest import connect_ea_tenant, invoice_job, unique
from worker.cli import app
from worker.jobs import job_id_for
from worker.ledger import store
from worker.ledger.models import BOOKED, DISABLED, FAILED, JOB_STATES
from worker.tenancy.tenants import find_tenant, get_tenant


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


def said(result: Result) -> str:
    return " ".join(result.output.split())


def accept(tenant: str, key: str | None = None) -> str:
    key = key or unique("inv")
    job_id = job_id_for(tenant, key)
    store.accept_job(job_id, tenant, key, "invoice", invoice_job(tenant, key))
    return job_id


def test_jobs_list_with_an_unknown_state_names_the_valid_ones() -> None:
    result = run("jobs", "list", "--state", "bogus")

    assert result.exit_code == 2
    assert "'bogus' is not a job state" in said(result)
    for state in JOB_STATES:
        assert state in said(result)


def test_jobs_show_accepts_tenant_slash_key() -> None:
    tenant = unique("ops")
    job_id = accept(tenant, "order/2026/7")

    result = run("jobs", "show", f"{tenant}/order/2026/7", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["id"] == job_id
    missing = run("jobs", "show", f"{tenant}/no-such-key")
    assert missing.exit_code == 1
    assert "no job of tenant" in said(missing)


def test_cancel_is_audited_with_the_operator() -> None:
    job_id = accept(unique("ops"))

    result = run("jobs", "cancel", job_id, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["state"] == "cancelled"
    last = store.events_of(job_id)[-1]
    assert last.to_state == "cancelled"
    assert last.actor.startswith("cli")


def test_the_dashboards_refusals_apply_on_the_command_line() -> None:
    booked = accept(unique("ops"))
    store.transition(booked, BOOKED, remote={"invoice_id": "x-1"})
    invalid = accept(unique("ops"))
    store.fail_job(invalid, "invalid", "invalid_payload", "lines: required")

    for action in ("retry", "replay", "cancel"):
        result = run("jobs", action, booked)
        assert result.exit_code == 1
        assert f"{action} refused" in said(result)
        assert store.get_job(booked).state == BOOKED
    result = run("jobs", "replay", invalid)
    assert result.exit_code == 1
    assert "the payload is invalid" in said(result)
    assert store.get_job(invalid).state == FAILED


def test_retry_by_tenant_and_key_records_who_asked() -> None:
    tenant = unique("ops")
    job_id = accept(tenant, "inv-retry")
    store.fail_job(job_id, "transient", "timeout", "no answer")

    result = run("jobs", "retry", f"{tenant}/inv-retry")

    assert result.exit_code == 0, result.output
    retried = [e for e in store.events_of(job_id) if e.note == "retry requested"]
    assert retried and retried[0].actor.startswith("cli")


def test_every_list_command_prints_json() -> None:
    for command in (
        ["jobs", "list"],
        ["tenants", "list"],
        ["users", "list"],
        ["apikeys", "list"],
        ["webhooks", "list"],
    ):
        result = run(*command, "--json")
        assert result.exit_code == 0, (command, result.output)
        assert isinstance(json.loads(result.output), list), command


def test_users_set_password_and_remove() -> None:
    from worker.web.accounts import authenticate

    name = unique("op")
    assert run("users", "add", name, "--password-stdin", stdin="first-password\n").exit_code == 0

    changed = run("users", "set-password", name, "--password-stdin", stdin="second-password\n")

    assert changed.exit_code == 0, changed.output
    assert authenticate(name, "second-password") == name
    assert authenticate(name, "first-password") is None
    assert run("users", "remove", name).exit_code == 0
    assert authenticate(name, "second-password") is None
    listed = json.loads(run("users", "list", "--json").output)
    assert name not in [u["username"] for u in listed]
    again = run("users", "remove", name)
    assert again.exit_code == 1
    assert "no user" in said(again)


def test_tenants_disable_enable_and_remove() -> None:
    tenant = connect_ea_tenant("NO")

    assert run("tenants", "disable", tenant).exit_code == 0
    assert get_tenant(tenant).connection_state == DISABLED
    assert run("tenants", "enable", tenant).exit_code == 0
    assert get_tenant(tenant).connection_state == "connected"

    job_id = accept(tenant)
    refused = run("tenants", "remove", tenant, "--yes")
    assert refused.exit_code == 1
    assert "1 unsettled job" in said(refused)
    assert find_tenant(tenant) is not None

    store.transition(job_id, "cancelled")
    removed = run("tenants", "remove", tenant, "--yes")
    assert removed.exit_code == 0, removed.output
    assert find_tenant(tenant) is None
    assert store.find_job(job_id) is not None  # the settled job stays in the ledger
