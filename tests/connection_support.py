"""Shared by the token, alert and secret tests: a local HTTP receiver that plays both the
webhook endpoint and Sentry (envelopes sent by the real sentry-sdk transport), the OAuth
callback routes served over HTTP, and a fleet of worker processes configured with both
receivers that alone consume the queues while a test module runs."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import SIMULATORS, WorkerProcess, unique, wait_for
from worker.ledger.models import Job
from worker.ledger.store import find_job

WEBHOOK_SECRET = "whsec-test-7c1d9e2b"
SETTLED = ("booked", "failed", "waiting_for_reauth")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """One loopback HTTP server: POST /hooks is the webhook endpoint, POST
    /api/<project>/envelope/ is Sentry. `fail_next` makes the next webhook posts answer 500."""

    server: ThreadingHTTPServer | None = None
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    #: When set, only posts of this event type are failed by `fail_next`.
    fail_type: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fails(self, body: bytes) -> bool:
        if self.fail_type is None:
            return True
        try:
            return bool(json.loads(body).get("type") == self.fail_type)
        except ValueError:
            return False

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = _decoded(raw, self.headers.get("Content-Encoding", ""))
                status = 200
                with owner.lock:
                    if self.path == "/hooks" and owner.fail_next > 0 and owner.fails(body):
                        owner.fail_next -= 1
                        status = 500
                    owner.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hooks"

    @property
    def dsn(self) -> str:
        return f"http://public@{self.url.removeprefix('http://')}/1"

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def hooks(self, event: str | None = None, tenant: str | None = None) -> list[Received]:
        """Webhook posts, optionally of one event type and one tenant (every attempt)."""
        found = []
        for item in self.snapshot():
            if item.path != "/hooks":
                continue
            data = json.loads(item.body)
            if event and data["type"] != event:
                continue
            if tenant and data["data"].get("tenant_id") != tenant:
                continue
            found.append(item)
        return found

    def sentry_events(self, tenant: str | None = None) -> list[dict[str, Any]]:
        events = []
        for item in self.snapshot():
            if not item.path.endswith("/envelope/"):
                continue
            for header, payload in parse_envelope(item.body):
                if header.get("type") != "event":
                    continue
                event = json.loads(payload)
                if tenant is None or tenant in json.dumps(event):
                    events.append(event)
        return events

    def all_bodies(self) -> bytes:
        return b"\n".join(item.body for item in self.snapshot())


def _decoded(raw: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    assert encoding in ("", "identity"), f"receiver cannot decode {encoding!r}"
    return raw


def parse_envelope(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Sentry's envelope format: a header line, then (item header line, payload) pairs;
    a payload has `length` bytes if the item header says so, else runs to the newline."""
    _, _, rest = body.partition(b"\n")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        length = header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:].removeprefix(b"\n")
        items.append((header, payload))
    return items


def webhook_data(item: Received) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(item.body)
    return data


# ---------------------------------------------------------------- worker fleets


def _nodes() -> list[str]:
    from worker.transport.app import app

    replies = app.control.ping(timeout=1.0) or []
    return [name for reply in replies for name in reply]


@contextlib.contextmanager
def only_these_consume(workers: list[WorkerProcess]) -> Iterator[None]:
    """Other live workers (the shared session worker) stop consuming the queues for a
    while, so every job, alert and webhook delivery of the test runs on `workers`,
    which carry the receivers' configuration. Celery's remote control does it."""
    from worker.transport.app import QUEUES, app

    mine = tuple(f"{w.name}@" for w in workers)
    others = [name for name in _nodes() if not name.startswith(mine)]
    for queue in QUEUES if others else ():
        app.control.cancel_consumer(queue, destination=others, reply=True, timeout=5)
    try:
        yield
    finally:
        for queue in QUEUES if others else ():
            app.control.add_consumer(queue, destination=others, reply=True, timeout=5)


@dataclass
class Fleet:
    workers: list[WorkerProcess]
    receiver: Receiver

    def output(self) -> str:
        return "\n".join(w.output() for w in self.workers)


@contextlib.contextmanager
def fleet(base_env: dict[str, str], count: int = 2, concurrency: int = 16) -> Iterator[Fleet]:
    """Worker processes with webhooks and Sentry pointed at a local receiver."""
    receiver = Receiver().start()
    env = {
        **base_env,
        "LEDGERPUSH_WEBHOOK_URL": receiver.hook_url,
        "LEDGERPUSH_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LEDGERPUSH_SENTRY_DSN": receiver.dsn,
    }
    workers = [WorkerProcess(unique("fleet"), env, concurrency) for _ in range(count)]
    starters = [threading.Thread(target=w.start) for w in workers]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    try:
        assert all(w.process is not None and w.process.poll() is None for w in workers), [
            w.output()[-2000:] for w in workers
        ]
        with only_these_consume(workers):
            yield Fleet(workers, receiver)
    finally:
        for worker in workers:
            worker.stop()
        receiver.stop()


# ---------------------------------------------------------------- OAuth callback server


@dataclass
class CallbackServer:
    url: str

    @property
    def eaccounting_callback(self) -> str:
        return f"{self.url}/connect/eaccounting/callback"

    def reconnect_eaccounting(self, tenant_id: str, company: str | None = None) -> httpx.Response:
        """What the customer does with the link: consent at Visma (the simulator picks the
        company from login_hint) and come back to our callback."""
        from worker.auth.connect import connect_url

        link = f"{connect_url(tenant_id)}&login_hint={company or tenant_id}"
        return httpx.get(link, follow_redirects=True, timeout=30)


@contextlib.contextmanager
def callback_server(webhook_url: str | None) -> Iterator[CallbackServer]:
    """The connect routes on a loopback port (this process), with the redirect URIs and
    the webhook URL of this process's settings pointed at them for the duration."""
    from fastapi import FastAPI

    from worker.providers.registry import spec_for
    from worker.settings import get_settings
    from worker.simulators.common import SimulatorServer
    from worker.web.connect import callback_router, router

    app = FastAPI()
    app.include_router(callback_router)
    app.include_router(router)
    server = SimulatorServer(app).start()
    settings = get_settings()
    with pytest.MonkeyPatch.context() as patch:
        for provider in ("eaccounting", "economic"):
            callback = f"{server.url}/connect/{provider}/callback"
            patch.setattr(spec_for(provider).settings, "redirect_uri", callback)
        patch.setattr(settings, "webhook_url", webhook_url)
        try:
            yield CallbackServer(server.url)
        finally:
            server.stop()


# ---------------------------------------------------------------- small helpers


def settle(job_id: str, timeout: float = 40, states: tuple[str, ...] = SETTLED) -> Job:
    def settled() -> Job | None:
        job = find_job(job_id)
        return job if job is not None and job.state in states else None

    job: Job = wait_for(settled, timeout)
    return job


def settle_all(job_ids: list[str], timeout: float = 60) -> list[Job]:
    deadline = time.monotonic() + timeout
    return [settle(j, max(deadline - time.monotonic(), 0.5)) for j in job_ids]


def refreshes(company: str) -> int:
    """refresh_token grant calls the simulator saw for one company."""
    return int(SIMULATORS["ea"].token_calls_for(company).get("refresh_token", 0))


def stays(predicate: Callable[[], bool], seconds: float) -> bool:
    """True if the predicate holds for the whole time (nothing more arrives)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.1)
    return predicate()


@contextlib.contextmanager
def ea_config(**changes: Any) -> Iterator[None]:
    """Change the shared eAccounting simulator's config for one test, then restore it."""
    sim = SIMULATORS["ea"]
    before = {key: getattr(sim.config, key) for key in changes}
    sim.update_config(changes)
    try:
        yield
    finally:
        sim.update_config(before)


def sim_tokens_of(company: str) -> set[str]:
    """Every access and refresh token and code the simulator ever issued for a company."""
    sim = SIMULATORS["ea"]
    with sim.lock:
        tokens = {t for t, g in sim.tokens.access.items() if g.company_id == company}
        tokens |= {t for t, r in sim.tokens.refresh.items() if r.company_id == company}
        tokens |= {c for c, a in sim.tokens.codes.items() if a.company_id == company}
    return tokens
