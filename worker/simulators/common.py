"""Shared plumbing of the simulators: a real HTTP server on loopback, fault injection,
a request log with counts per endpoint, and the token endpoint's error answer (the
`/_control` routes are in control.py)."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import unquote_plus

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTROL_PREFIX = "/_control"
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
_ID_SEGMENT = re.compile(r"/(?:\d+|[0-9a-fA-F-]{32,36})(?=/|$)")


class OAuthError(Exception):
    """An RFC 6749 error answer of the token endpoint."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class Faults:
    """What the simulator does wrong, on purpose. Rates are shares of requests (0..1)."""

    #: The whole service is down: every request (the token endpoint too) answers 503.
    outage: bool = False
    latency_ms: float = 0.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0
    drop_rate: float = 0.0
    drop_after_write_rate: float = 0.0
    #: Writes taken in full, left unanswered for `timeout_seconds`, then applied: what a
    #: server does that finishes a request after its client gave up waiting.
    late_write_rate: float = 0.0
    throttle_rate: float = 0.0
    #: The wait an injected 429 asks for (its Retry-After header and, where the API says
    #: it in the body, its message).
    throttle_retry_after: int = 1
    seed: int | None = None
    #: Writes whose path matches this regex are applied, then their answer is held for
    #: `hang_seconds` (or until this is set to ""): the moment to kill a client that
    #: wrote but has not heard back.
    hang_after_write_path: str = ""
    hang_seconds: float = 30.0
    #: Hold only this many matching writes after the path was set (0: every one).
    hang_after_write_limit: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in names:
                raise ValueError(f"unknown fault setting {key!r}; known: {sorted(names)}")
            if key == "hang_after_write_path" and value:
                re.compile(str(value))
            setattr(self, key, None if value is None and key == "seed" else type_of(key)(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def type_of(name: str) -> Callable[[Any], Any]:
    if name == "outage":
        return _flag
    if name in ("seed", "hang_after_write_limit", "throttle_retry_after"):
        return int
    return str if name == "hang_after_write_path" else float


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class HeldWrite:
    """A write that was applied and whose answer is being held back."""

    method: str
    path: str
    client: tuple[str, int] | None


class RequestLog:
    """Counts requests per endpoint (ids folded to `{id}`) and per status, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()
        self.total = 0
        #: The latest query strings, as sent (decoded): tests pin the filters clients use.
        self.queries: deque[tuple[str, str, str]] = deque(maxlen=1000)

    @staticmethod
    def endpoint(method: str, path: str) -> str:
        return f"{method} {_ID_SEGMENT.sub('/{id}', path)}"

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.by_endpoint[self.endpoint(method, path)] += 1
            self.by_status[status] += 1
            self.total += 1

    def record_query(self, method: str, path: str, query: str) -> None:
        with self._lock:
            self.queries.append((method, path, query))

    def queries_to(self, method: str, path_end: str) -> list[str]:
        with self._lock:
            return [q for m, p, q in self.queries if m == method and p.endswith(path_end)]

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "by_endpoint": dict(self.by_endpoint),
                "by_status": {str(k): v for k, v in self.by_status.items()},
                "faults": dict(self.faults),
            }

    def reset(self) -> None:
        with self._lock:
            self.by_endpoint.clear()
            self.by_status.clear()
            self.faults.clear()
            self.total = 0


class DroppedConnection(Exception):
    """Raised after the response head is sent so the server cuts the connection."""


class FaultInjector:
    """ASGI middleware: latency, 5xx, timeouts, dropped connections (before or after the
    write was applied) and 429s, by configuration and deterministic for a seed.
    `/_control` routes are never faulted and never logged."""

    def __init__(
        self,
        app: ASGIApp,
        faults: Faults,
        log: RequestLog,
        throttle_body: bytes | Callable[[int], bytes],
    ) -> None:
        self.app = app
        self.faults = faults
        self.log = log
        self.throttle_body = throttle_body
        self._rng = random.Random(faults.seed)
        self._seed = faults.seed
        self._hang_pattern = ""
        self._hangs = 0
        self.held: list[HeldWrite] = []

    def _hang(self, method: str, path: str, status: int) -> bool:
        """Whether this applied write's answer is held (counted per pattern for the limit)."""
        pattern = self.faults.hang_after_write_path
        if pattern != self._hang_pattern:
            self._hang_pattern, self._hangs = pattern, 0
        if not pattern or method not in WRITE_METHODS or status >= 400:
            return False
        if not re.search(pattern, path):
            return False
        limit = self.faults.hang_after_write_limit
        if limit and self._hangs >= limit:
            return False
        self._hangs += 1
        return True

    async def _hold(self, seconds: float) -> None:
        """Hold an answer for `seconds`, or until the hang fault is cleared (path "")."""
        deadline = time.monotonic() + seconds
        while self.faults.hang_after_write_path and time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    def _roll(self, rate: float) -> bool:
        if self._seed != self.faults.seed:
            self._rng = random.Random(self.faults.seed)
            self._seed = self.faults.seed
        return rate > 0 and self._rng.random() < rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if scope.get("query_string"):
            self.log.record_query(
                method, path, unquote_plus(scope["query_string"].decode("latin-1"))
            )
        f = self.faults
        if f.outage:
            self.log.record_fault("outage")
            self.log.record(method, path, 503)
            await _plain(send, 503, b'{"message":"Service Unavailable (outage)"}')
            return
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if self._roll(f.timeout_rate):
            self.log.record_fault("timeout")
            await asyncio.sleep(f.timeout_seconds)
        if self._roll(f.drop_rate):
            self.log.record_fault("drop")
            await _drop(send)
        if self._roll(f.error_rate):
            self.log.record_fault("5xx")
            self.log.record(method, path, 503)
            await _plain(send, 503, b'{"message":"Service Unavailable (injected)"}')
            return
        if self._roll(f.throttle_rate):
            self.log.record_fault("429")
            self.log.record(method, path, 429)
            wait = f.throttle_retry_after
            body = self.throttle_body(wait) if callable(self.throttle_body) else self.throttle_body
            await _plain(send, 429, body, [(b"retry-after", str(wait).encode())])
            return
        drop_after = method in WRITE_METHODS and self._roll(f.drop_after_write_rate)
        if method in WRITE_METHODS and self._roll(f.late_write_rate):
            self.log.record_fault("late_write")
            receive = await _late(receive, f.timeout_seconds)
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self._hang(method, path, status):
                    client = scope.get("client")
                    held = HeldWrite(method, path, (client[0], client[1]) if client else None)
                    self.log.record_fault("hang_after_write")
                    self.held.append(held)
                    try:
                        await self._hold(f.hang_seconds)
                    finally:
                        self.held.remove(held)
                if drop_after:
                    self.log.record_fault("drop_after_write")
                    self.log.record(method, path, status)
                    await _drop(send)
            await send(message)

        await self.app(scope, receive, send_logged)
        self.log.record(method, path, status)


async def _late(receive: Receive, seconds: float) -> Receive:
    """Read the whole request now, wait, and replay it to the app: the app applies the
    write even though the client has long stopped waiting (a disconnect would otherwise
    reach the app as `http.disconnect` instead of the body)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    await asyncio.sleep(seconds)

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # nothing more will come: the client is gone
        return {"type": "http.disconnect"}

    return replay


async def _drop(send: Send) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
    )
    raise DroppedConnection("connection dropped on purpose")


async def _plain(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


class SimulatorServer:
    """Runs an ASGI app with uvicorn on a loopback port in a background thread."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP; with proto 0 every response waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="critical", access_log=False, timeout_keep_alive=30)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=f"sim-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> SimulatorServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"simulator on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def restarted(self) -> SimulatorServer:
        """The same app served again on the same port after `stop` (connections to the
        port are refused in between: a service that is down, not just failing)."""
        return SimulatorServer(self.app, self.host, self.port).start()

    def serve_forever(self) -> None:
        """Foreground mode for `ledgerpush simulate`."""
        self._run()
