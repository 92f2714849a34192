"""The OAuth `state`: signed, expiring, and good for one callback only."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from worker.settings import get_settings
from worker.transport.redis_client import get_redis

SALT = "ledgerpush-connect-state"
LINK_TTL = 7 * 24 * 3600
ALREADY_USED = "the connect link was already used; ask for a new one"


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


@dataclass(frozen=True)
class StateClaim:
    """A checked state, not yet spent."""

    tenant_id: str
    nonce: str
    remaining: int


def check_state(state: str, provider: str) -> StateClaim:
    """A valid, unexpired, unused state for this flow; refused otherwise. Not spent yet:
    see `spend_state`, called once the provider has accepted the code."""
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
    claim = StateClaim(str(payload["t"]), str(payload["n"]), remaining)
    if get_redis().exists(_used_key(claim)):
        raise StateRefused(ALREADY_USED)
    return claim


def spend_state(claim: StateClaim) -> None:
    """Mark the state used; refused if another callback spent it first."""
    if not get_redis().set(_used_key(claim), 1, nx=True, ex=claim.remaining + 60):
        raise StateRefused(ALREADY_USED)


def consume_state(state: str, provider: str) -> str:
    """Return the tenant id of a valid state, and spend it so it cannot be replayed."""
    claim = check_state(state, provider)
    spend_state(claim)
    return claim.tenant_id


def _used_key(claim: StateClaim) -> str:
    return f"lp:oauth-state:{claim.nonce}"
