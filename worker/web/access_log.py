"""One access-log line per request to the web app and API: who, what, how it ended, how
long it took. Never a body, a header or a secret: query parameters that can carry one
(the OAuth callbacks' `code` and `state`, any token, key or password) are redacted."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import Response

from worker.logs import REDACTED, SECRET_KEYS

log = logging.getLogger("ledgerpush.access")
#: Beyond the names secrets have everywhere (worker/logs.py): the OAuth `state` proves a
#: connect link, and a query string is no place for anything resembling a credential.
_ALSO_SECRET = re.compile(r"^(state|session|sig|signature|ticket)$", re.IGNORECASE)


def safe_target(request: Request) -> str:
    """The path and the query string with secret-bearing values redacted."""
    query = request.url.query
    if not query:
        return request.url.path
    parts = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        secret = SECRET_KEYS.search(name) or _ALSO_SECRET.match(name)
        parts.append(f"{name}={REDACTED if secret and value else value}")
    return request.url.path + "?" + "&".join(parts)


def principal_name(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return str(principal.actor) if principal is not None else "-"


async def access_log(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        duration_ms = (time.perf_counter() - started) * 1000
        who, target = principal_name(request), safe_target(request)
        log.info(
            "%s %s %s %d %.1f ms",
            who,
            request.method,
            target,
            status,
            duration_ms,
            extra={
                "principal": who,
                "method": request.method,
                "path": target,
                "status": status,
                "duration_ms": round(duration_ms, 1),
            },
        )
