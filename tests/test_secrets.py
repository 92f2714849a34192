"""Secrets never leak: not into logs, Sentry events, webhook bodies, or the database in
plaintext. Unit checks of the scrubbers, then one end-to-end run (refresh, revocation,
alert, reconnect through the callback, e-conomic grant) whose every output is searched
for every token value the simulators ever issued."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sqlalchemy import select

from tests.conftest import EA_CLIENT, EC_APP, connect_ea_tenant, invoice_job, unique, wait_for
from tests.connection_support import (
    WEBHOOK_SECRET,
    CallbackServer,
    Fleet,
    callback_server,
    fleet,
    settle,
    sim_tokens_of,
)
from worker.ledger.db import engine, session
from worker.ledger.models import Base, Tenant
from worker.logs import ContextFilter, JsonFormatter, TextFormatter, log_context, scrub, scrub_text
from worker.telemetry import before_send
from worker.tenancy.tenants import add_tenant, credentials_of, get_tenant
from worker.transport.producer import enqueue

AT, RT, GRANT, APP, CODE, CS = (
    "at-" + secrets.token_urlsafe(16),
    "rt-" + secrets.token_urlsafe(16),
    "gr-" + secrets.token_urlsafe(16),
    "app-" + secrets.token_urlsafe(16),
    "code-" + secrets.token_urlsafe(16),
    "cs-" + secrets.token_urlsafe(16),
)
ALL = (AT, RT, GRANT, APP, CODE, CS)


def assert_clean(text: str, values: tuple[str, ...] | set[str] = ALL) -> None:
    leaked = [v for v in values if v in text]
    assert not leaked, f"leaked {leaked} in: {text[:2000]}"


# ---------------------------------------------------------------- scrubbers


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {AT}",
        f"authorization: Basic {CS}",
        f"grant_type=refresh_token&refresh_token={RT}&client_secret={CS}",
        json.dumps({"access_token": AT, "refresh_token": RT, "expires_in": 3600}),
        str({"access_token": AT, "X-AgreementGrantToken": GRANT}),
        f"Headers({{'x-appsecrettoken': '{APP}', 'x-agreementgranttoken': '{GRANT}'}})",
        f"GET /connect/eaccounting/callback?code={CODE}&state=abc HTTP/1.1",
        f"X-AppSecretToken: {APP}; X-AgreementGrantToken: {GRANT}",
        f"db_password={CS} webhook_secret: {CS}",
    ],
    # Fixed ids: the values are random, and pytest-xdist needs the same ids in every worker.
    ids=[
        "bearer",
        "basic",
        "form",
        "json",
        "repr",
        "headers",
        "callback",
        "header-line",
        "settings",
    ],
)
def test_scrub_text_removes_token_values(text: str) -> None:
    scrubbed = scrub_text(text)
    assert_clean(scrubbed)
    assert "[redacted]" in scrubbed
    assert scrub_text(scrubbed) == scrubbed


def test_scrub_text_keeps_harmless_fields() -> None:
    text = (
        '{"postal_code": "0155", "errorCode": "E01100", "token_type": "Bearer", "expires_in": 3600}'
    )
    assert scrub_text(text) == text
    for plain in (
        "HTTP 401 ErrorCode 4002: token expired",
        "tenant ec-dk-1 needs re-authorization: grant revoked: install the app again",
        "refresh token rejected by Visma (invalid_grant: The refresh token is invalid)",
    ):
        assert scrub_text(plain) == plain


def test_scrub_nested_values_by_key_and_by_text() -> None:
    value = {
        "credentials": {"access_token": AT, "refresh_token": RT, "expires_at": 1.5},
        "headers": {"Authorization": f"Bearer {AT}", "X-AgreementGrantToken": GRANT},
        "form": [("grant_type", "refresh_token"), f"refresh_token={RT}"],
        "grant": GRANT,
        "code": CODE,
        "address": {"postal_code": "0155", "city": "Oslo"},
        "error_code": "token_refused",
        "token_expires_at": "2026-11-20T10:00:00Z",
    }
    scrubbed = scrub(value)
    assert_clean(json.dumps(scrubbed))
    assert scrubbed["address"] == {"postal_code": "0155", "city": "Oslo"}
    assert scrubbed["error_code"] == "token_refused"
    assert scrubbed["token_expires_at"] == "2026-11-20T10:00:00Z"
    assert scrubbed["credentials"]["expires_at"] == 1.5


def _httpx_failure() -> httpx.HTTPError:
    """An httpx exception as the token and API calls raise them, carrying a request with
    secret headers, a secret form body and a token in the URL."""
    request = httpx.Request(
        "POST",
        f"https://identity.example/connect/token?access_token={AT}",
        headers={
            "Authorization": f"Basic {CS}",
            "X-AppSecretToken": APP,
            "X-AgreementGrantToken": GRANT,
        },
        data={"grant_type": "refresh_token", "refresh_token": RT},
    )
    response = httpx.Response(401, request=request, json={"error": "invalid_client"})
    return httpx.HTTPStatusError(
        f"Client error for url {request.url}; headers {request.headers!r}; "
        f"body {request.content.decode()}",
        request=request,
        response=response,
    )


def test_httpx_exception_text_and_repr_are_scrubbed() -> None:
    exc = _httpx_failure()
    for text in (str(exc), repr(exc), repr(exc.request.headers), str(exc.request.url)):
        assert_clean(scrub_text(text))


class _Keep(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


def _fail_with_secrets_in_locals() -> None:
    credentials = {"access_token": AT, "refresh_token": RT}
    used = RT  # a local whose name says nothing (as in tokens._after_invalid_grant)
    grant = GRANT
    header = f"Bearer {AT}"
    assert credentials and used and grant and header
    raise _httpx_failure()


def test_sentry_event_from_an_httpx_exception_is_scrubbed_by_before_send() -> None:
    """The real sentry-sdk client with the options init_sentry uses; its envelope, as
    it would go over the wire, carries no secret (message, breadcrumbs, frame locals)."""
    transport = _Keep()
    client = sentry_sdk.Client(
        dsn="http://public@127.0.0.1:9/1",
        transport=transport,
        before_send=before_send,
        send_default_pii=False,
        include_local_variables=False,
        default_integrations=False,
    )
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        scope.add_breadcrumb(message=f"POST /connect/token refresh_token={RT}", category="log")
        scope.set_extra(
            "request_headers", {"authorization": f"Bearer {AT}", "x-appsecrettoken": APP}
        )
        try:
            _fail_with_secrets_in_locals()
        except httpx.HTTPError:
            scope.capture_exception(sys.exc_info())
        scope.capture_message(f"refresh failed: refresh_token={RT} code={CODE}")
    client.close()
    assert len(transport.envelopes) == 2
    for envelope in transport.envelopes:
        wire = envelope.serialize().decode()
        assert_clean(wire)
        assert "_fail_with_secrets_in_locals" in wire or "refresh failed" in wire


def test_locals_would_leak_without_the_init_options() -> None:
    """Why init_sentry turns frame locals off: the key scrubber cannot know that `used`
    or `grant` hold tokens."""
    transport = _Keep()
    client = sentry_sdk.Client(
        dsn="http://public@127.0.0.1:9/1",
        transport=transport,
        before_send=before_send,
        include_local_variables=True,
        default_integrations=False,
    )
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        try:
            _fail_with_secrets_in_locals()
        except httpx.HTTPError:
            scope.capture_exception(sys.exc_info())
    client.close()
    wire = transport.envelopes[0].serialize().decode()
    assert RT in wire  # `used`
    assert AT not in wire and GRANT not in wire  # named keys and "Bearer" are scrubbed even then


def test_init_sentry_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import telemetry
    from worker.settings import get_settings

    seen: dict[str, Any] = {}
    monkeypatch.setattr(get_settings(), "sentry_dsn", "http://public@127.0.0.1:9/1")
    monkeypatch.setattr(sentry_sdk, "init", lambda **options: seen.update(options))
    assert telemetry.init_sentry()
    assert seen["before_send"] is before_send and seen["send_default_pii"] is False
    assert seen["include_local_variables"] is False


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter("%(message)s")])
def test_log_lines_and_tracebacks_are_scrubbed(formatter: logging.Formatter) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    log = logging.getLogger(unique("test.secrets"))
    log.addHandler(handler)
    log.propagate = False
    with log_context(tenant="t-1", job_id="j-1"):
        log.warning("token answer %s", {"access_token": AT, "refresh_token": RT})
        log.info("callback GET /connect/eaccounting/callback?code=%s&state=x", CODE)
        try:
            raise _httpx_failure()
        except httpx.HTTPError:
            log.exception("token request failed")
    output = stream.getvalue()
    assert_clean(output)
    assert "token request failed" in output and "t-1" in output


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def workers(base_env: dict[str, str]) -> Iterator[Fleet]:
    with fleet(base_env, count=1, concurrency=8) as started:
        yield started


@pytest.fixture(scope="module")
def callback(workers: Fleet) -> Iterator[CallbackServer]:
    with callback_server(workers.receiver.hook_url) as server:
        yield server


def _database_text() -> str:
    """Every column of every row of every table, as text."""
    chunks: list[str] = []
    with engine().connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                chunks.extend(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row)
    return "\n".join(chunks)


def _sqlite_files() -> list[Path]:
    url = os.environ["LEDGERPUSH_DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        return []
    path = Path(url.removeprefix("sqlite:///"))
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.exists()]


def _raw_bytes(path: Path) -> bytes:
    """Read by another process: closing a descriptor of the database file in this one
    would drop this process's SQLite (POSIX) locks on it and corrupt what it sees."""
    return subprocess.run(["cat", str(path)], capture_output=True, check=True).stdout


def test_no_token_value_reaches_logs_sentry_webhooks_or_the_database(
    workers: Fleet, callback: CallbackServer, ea_sim: Any, ec_sim: Any
) -> None:
    receiver = workers.receiver
    ea = connect_ea_tenant("NO")
    assert settle(enqueue(invoice_job(ea))).state == "booked"
    ea_sim.expire_access_tokens(ea)  # a refresh on 401
    assert settle(enqueue(invoice_job(ea))).state == "booked"
    ea_sim.revoke_refresh_tokens(ea)  # a revocation: alert with Sentry and a webhook
    ea_sim.expire_access_tokens(ea)
    parked = enqueue(invoice_job(ea))
    assert settle(parked).state == "waiting_for_reauth"
    page = callback.reconnect_eaccounting(ea)  # a code exchange through the callback
    assert page.status_code == 200 and "Connected" in page.text
    assert settle(parked, states=("booked",)).state == "booked"

    grant = "gr-" + secrets.token_urlsafe(24)
    ec = unique("ec-dk")
    ec_sim.add_agreement("DK", grant_token=grant)
    add_tenant(ec, "economic", "DK", {"grant_token": grant})
    customer = {"external_id": "c-9", "name": "Fisk ApS", "country": "DK",
                "address": {"line1": "Havnegade 4", "postal_code": "8000", "city": "Aarhus"}}  # fmt: skip
    assert settle(enqueue(invoice_job(ec, currency="DKK", customer=customer))).state == "booked"
    ec_sim.revoke_grant(grant)
    assert settle(enqueue(invoice_job(ec, currency="DKK", customer=customer))).state == (
        "waiting_for_reauth"
    )
    wait_for(lambda: receiver.sentry_events(ea) and receiver.sentry_events(ec), 20)
    wait_for(
        lambda: (
            receiver.hooks("tenant.reauth_required", ec)
            and receiver.hooks("tenant.reconnected", ea)
        ),
        20,
    )

    issued = sim_tokens_of(ea)
    assert len(issued) >= 6  # first pair, refreshed pair, code, reconnected pair
    current = credentials_of(get_tenant(ea))
    assert current["access_token"] in issued and current["refresh_token"] in issued
    values = {*issued, grant, EA_CLIENT[1], EC_APP[0], WEBHOOK_SECRET}
    values.add(os.environ["LEDGERPUSH_SECRET_KEY"])

    assert_clean(workers.output(), values)
    assert_clean(receiver.all_bodies().decode(errors="replace"), values)
    assert receiver.sentry_events(ea) and receiver.hooks()
    assert_clean(_database_text(), values)
    for path in _sqlite_files():
        assert_clean(_raw_bytes(path).decode("latin-1"), values)
    with session() as db:
        stored = db.scalars(select(Tenant.credentials).where(Tenant.id.in_([ea, ec]))).all()
    assert len(stored) == 2 and all(blob for blob in stored)
    assert_clean(b"".join(blob or b"" for blob in stored).decode("latin-1"), values)


def test_webhook_url_without_a_secret_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alert webhooks are never sent unsigned: the URL alone is a configuration error."""
    from worker.settings import SettingsError, load_settings

    monkeypatch.setenv("LEDGERPUSH_WEBHOOK_URL", "https://hooks.example.com/ledgerpush")
    monkeypatch.delenv("LEDGERPUSH_WEBHOOK_SECRET", raising=False)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "LEDGERPUSH_WEBHOOK_SECRET" in str(refused.value)
    assert "LEDGERPUSH_WEBHOOK_URL" in str(refused.value)
    monkeypatch.setenv("LEDGERPUSH_WEBHOOK_SECRET", "")
    with pytest.raises(SettingsError, match="LEDGERPUSH_WEBHOOK_SECRET"):
        load_settings()
    monkeypatch.setenv("LEDGERPUSH_WEBHOOK_SECRET", "whsec-x")
    assert load_settings().webhook_url == "https://hooks.example.com/ledgerpush"
