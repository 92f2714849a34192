"""The toy accounting system's server: drafts (POST /drafts), booking (POST
/drafts/<id>/book) and a lookup by reference (GET /documents?reference=…)."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DOCUMENTS: dict[str, dict[str, Any]] = {}
_NUMBERS = itertools.count(1001)
_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = urlsplit(self.path).path.strip("/").split("/")
        with _LOCK:
            if path == ["drafts"]:
                number = str(next(_NUMBERS))
                DOCUMENTS[number] = {**body, "id": number, "booked": False}
                self._answer(201, DOCUMENTS[number])
            elif len(path) == 3 and path[0] == "drafts" and path[2] == "book":
                document = DOCUMENTS[path[1]]
                document["booked"] = True
                self._answer(200, {**document, "invoice_number": f"T-{document['id']}"})
            else:
                self._answer(404, {"error": "no such route"})

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        reference = (query.get("reference") or [""])[0]
        with _LOCK:
            found = [d for d in DOCUMENTS.values() if d.get("reference") == reference]
        self._answer(200, found)


def serve(port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
