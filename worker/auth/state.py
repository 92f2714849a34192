"""The OAuth `state`: signed, expiring, and good for one callback only."""

from __future__ import annotations

import secrets
import time
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from worker.redis_client import get_redis
from worker.settings import get_settings

SALT = "ledgerpush-connect-state"
LINK_TTL = 7 * 24 * 3600


class StateRefused(ValueError):
    """The state is forged, expired, for another flow, or already used."""


def _serializer() -> URLSafeSerializer:
    settings = get_settings()
    secret = settings.web_session_secret or settings.secret_key
    key = secret.get_secret_value() if secret else settings.fernet_keys[0]
    return URLSafeSerializer(key, salt=SALT)


def make_state(tenant_id: str, provider: str, ttl: int = LINK_TTL) -> str:
    payload = {
        "t": tenant_id,
        "p": provider,
        "n": secrets.token_urlsafe(12),
        "e": int(time.time()) + ttl,
    }
    return str(_serializer().dumps(payload))


def consume_state(state: str, provider: str) -> str:
    """Return the tenant id of a valid state, and burn it so it cannot be replayed."""
    try:
        payload: dict[str, Any] = _serializer().loads(state)
    except BadSignature:
        raise StateRefused(
            "the connect link is not valid (bad signature); ask for a new one"
        ) from None
    if payload.get("p") != provider:
        raise StateRefused("the connect link was made for another accounting system")
    remaining = int(payload.get("e", 0)) - int(time.time())
    if remaining <= 0:
        raise StateRefused("the connect link has expired; ask for a new one")
    if not get_redis().set(f"lp:oauth-state:{payload['n']}", 1, nx=True, ex=remaining + 60):
        raise StateRefused("the connect link was already used; ask for a new one")
    return str(payload["t"])
