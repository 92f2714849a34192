"""Who is asking: a signed-in operator (session cookie) or a producer (bearer API key).

Sessions live in Redis (`lp:web:session:<sha256 of the cookie>`), so signing out ends
them everywhere and any number of web processes share them. Each user's sessions are
also listed under `lp:web:user-sessions:<username>`, so removing the user or setting
their password ends all of them at once. Each session has a CSRF
token; every unsafe request made with the cookie must send it back, as the form field
`csrf_token` or the `X-CSRF-Token` header (htmx sends the header). Requests with a
bearer API key carry no ambient credentials, so they need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from worker.settings import get_settings
from worker.transport.redis_client import get_redis
from worker.web.access import ROLE_SCOPES
from worker.web.accounts import identify_api_key, role_of

SESSION_COOKIE = "lp_session"
LOGIN_CSRF_COOKIE = "lp_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_TTL = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The signed-in operator or API key; `actor` is what the audit trail records.
    `scopes` say what it may do (worker/web/access.py): a key's own, a user's role's."""

    name: str
    kind: str  # "session" or "apikey"
    csrf: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)
    role: str | None = None
    key_id: int | None = None

    @property
    def actor(self) -> str:
        return self.name if self.kind == "session" else f"apikey:{self.name}"


class NotAuthenticated(Exception):
    """No valid session or API key."""


class CsrfRefused(Exception):
    """An unsafe request with the session cookie but without the right CSRF token."""


def _session_key(token: str) -> str:
    return "lp:web:session:" + hashlib.sha256(token.encode()).hexdigest()


def _user_sessions_key(username: str) -> str:
    return "lp:web:user-sessions:" + username


def start_session(username: str) -> str:
    """A new session (a new id at every sign-in: no fixation); returns the cookie value."""
    token = secrets.token_urlsafe(32)
    key = _session_key(token)
    index = _user_sessions_key(username)
    with get_redis().pipeline() as pipe:
        pipe.hset(key, mapping={"user": username, "csrf": secrets.token_urlsafe(32)})
        pipe.expire(key, SESSION_TTL)
        pipe.sadd(index, key)
        pipe.expire(index, SESSION_TTL)
        pipe.execute()
    return token


def end_session(token: str) -> None:
    key = _session_key(token)
    redis = get_redis()
    user = redis.hget(key, "user")
    redis.delete(key)
    if isinstance(user, bytes):
        redis.srem(_user_sessions_key(user.decode()), key)


def end_user_sessions(username: str) -> int:
    """End every open session of this user (removed, or a new password); how many."""
    index = _user_sessions_key(username)
    redis = get_redis()
    keys: set[bytes] = redis.smembers(index)  # type: ignore[assignment]
    with redis.pipeline() as pipe:
        for key in keys:
            pipe.delete(key)
        pipe.delete(index)
        ended = pipe.execute()[:-1]
    return sum(int(n) for n in ended)


def _session_principal(token: str) -> Principal | None:
    key = _session_key(token)
    redis = get_redis()
    data: dict[bytes, bytes] = redis.hgetall(key)  # type: ignore[assignment]
    if not data or b"user" not in data:
        return None
    username = data[b"user"].decode()
    # Read at every request, so a changed role or a removed user takes effect at once.
    role = role_of(username)
    if role is None:
        return None
    index = _user_sessions_key(username)
    with redis.pipeline() as pipe:
        pipe.expire(key, SESSION_TTL)
        # Also lists sessions started before the per-user list existed.
        pipe.sadd(index, key)
        pipe.expire(index, SESSION_TTL)
        pipe.execute()
    csrf = data.get(b"csrf", b"").decode()
    return Principal(username, "session", csrf, ROLE_SCOPES[role], role)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def principal_of(request: Request) -> Principal | None:
    key = _bearer(request)
    if key is not None:
        found = identify_api_key(key)
        if found is None:
            return None
        return Principal(found.name, "apikey", scopes=found.scopes, key_id=found.id)
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    return _session_principal(token)


async def _sent_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def require_auth(request: Request) -> Principal:
    """Dependency for every protected route: a principal, and CSRF on unsafe requests."""
    principal = principal_of(request)
    if principal is None:
        raise NotAuthenticated()
    request.state.principal = principal
    if principal.kind == "session" and request.method not in SAFE_METHODS:
        sent = await _sent_csrf(request)
        if not sent or not hmac.compare_digest(sent.encode(), principal.csrf.encode()):
            raise CsrfRefused()
    return principal


def cookie_options(request: Request) -> dict[str, Any]:
    """`Secure` when configured, or when the request came over https (behind a proxy,
    uvicorn takes the scheme from X-Forwarded-Proto; see `ledgerpush web`)."""
    return {
        "httponly": True,
        "samesite": "lax",
        "secure": get_settings().web_secure_cookies or request.url.scheme == "https",
        "path": "/",
    }


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_ok(request: Request, sent: str) -> bool:
    """Double-submit check for the sign-in form (there is no session yet)."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(cookie) and bool(sent) and hmac.compare_digest(cookie.encode(), sent.encode())
