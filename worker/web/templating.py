"""Jinja2 set-up for the dashboard: filters, and one-time messages after an action."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from worker.ledger.models import utcnow
from worker.logs import scrub
from worker.transport.redis_client import get_redis
from worker.web.auth import SESSION_COOKIE, Principal

TEMPLATES = Path(__file__).parent / "templates"
FLASH_TTL = 300


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return _aware(value).strftime("%Y-%m-%d %H:%M:%S")


def when_iso(value: str | None) -> str:
    """An ISO-8601 timestamp (as JSON carries it) shown like `when`."""
    return when(dt.datetime.fromisoformat(value)) if value else "-"


def ago(value: dt.datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((utcnow() - _aware(value)).total_seconds())
    if seconds < 0:
        return "in " + _span(-seconds)
    return _span(seconds) + " ago"


def _span(seconds: int) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def pretty(value: Any) -> str:
    return json.dumps(scrub(value), indent=2, ensure_ascii=False, default=str)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f} %"


templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters.update(
    when=when, when_iso=when_iso, ago=ago, pretty=pretty, percent=percent, scrub=scrub
)


def _flash_key(request: Request) -> str | None:
    token = request.cookies.get(SESSION_COOKIE)
    return "lp:web:flash:" + hashlib.sha256(token.encode()).hexdigest() if token else None


def flash(request: Request, message: str, kind: str = "ok") -> None:
    key = _flash_key(request)
    if key:
        redis = get_redis()
        redis.rpush(key, json.dumps({"kind": kind, "text": message}))
        redis.expire(key, FLASH_TTL)


def _take_flashes(request: Request) -> list[dict[str, str]]:
    key = _flash_key(request)
    if not key:
        return []
    redis = get_redis()
    pipe = redis.pipeline()
    pipe.lrange(key, 0, -1)
    pipe.delete(key)
    raw, _ = pipe.execute()
    return [json.loads(item) for item in raw]


def _can(principal: Principal | None) -> Callable[[str], bool]:
    """`can("jobs:operate")` in templates: show a button only to whom may use it."""
    scopes = principal.scopes if principal else frozenset()
    return lambda scope: scope in scopes


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    principal: Principal | None = getattr(request.state, "principal", None)
    base = {
        "principal": principal,
        "can": _can(principal),
        "csrf": principal.csrf if principal else "",
        "flashes": _take_flashes(request) if not name.startswith("_") else [],
        "path": request.url.path,
    }
    return templates.TemplateResponse(request, name, {**base, **(context or {})}, status)
