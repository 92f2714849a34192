"""A real local webhook receiver: it checks every post with the `standardwebhooks`
library against the secrets it was given, as a producer's endpoint would."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Hook:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A webhook endpoint that checks each post with its secrets (any one may match) and
    answers 503 while `down`."""

    secrets: list[str] = field(default_factory=list)
    down: bool = False
    accepted: list[Hook] = field(default_factory=list)
    refused: int = 0
    unverified: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = owner.receive(dict(self.headers), raw)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def receive(self, headers: dict[str, str], raw: bytes) -> int:
        with self.lock:
            if self.down:
                self.refused += 1
                return 503
            if not any(verifies(secret, headers, raw) for secret in self.secrets):
                self.unverified += 1
                return 401
            self.accepted.append(Hook(headers, json.loads(raw)))
            return 200

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def bodies(self, tenant: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = [h.body for h in self.accepted]
        return [b for b in found if tenant is None or b["data"]["tenant_id"] == tenant]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def verifies(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    try:
        Webhook(secret).verify(raw, headers)
    except WebhookVerificationError:
        return False
    return True
