"""ledgerpush's own application credentials (not a tenant's) refused by a provider.

An identity server that answers `invalid_client` or `unauthorized_client` (RFC 6749
section 5.2) refuses the application, for every tenant alike: after a botched secret
rotation, say. No tenant is marked for re-authorization; jobs wait and retry with
backoff, and resume once the token endpoint accepts the application again. A Redis
flag per provider makes that one alert while it lasts, and shows it on the dashboard.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from worker.ops import alerts
from worker.providers import registry
from worker.providers.base import NotReady, Transient
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.auth.app_credentials")
#: RFC 6749 5.2 error codes that concern the client (the application), not the grant.
CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
CODE = "app_credentials_rejected"


class AppCredentialsRejected(NotReady, Transient):
    """The application itself was refused: retried like any transient failure (a
    proactive refresh too), and a job waits without using up its retries (NotReady)."""

    category = "app_credentials"


def _key(provider: str) -> str:
    return f"lp:app-credentials:{provider}"


def rejected(provider: str, error: str) -> AppCredentialsRejected:
    """Flag the condition (one alert while it lasts) and return the error to raise."""
    setting = registry.spec_for(provider).app_settings_hint or "the application credentials"
    record = {"provider": provider, "error": error, "setting": setting, "since": time.time()}
    try:
        first = bool(get_redis().set(_key(provider), json.dumps(record), nx=True))
    except RedisError as exc:
        log.warning("could not flag the refused application credentials: %s", exc)
        first = False
    if first:
        log.error("%s refused the application credentials (%s); check %s", provider, error, setting)
        alerts.app_credentials_rejected(provider, setting, error)
    return AppCredentialsRejected(
        f"{provider} refused ledgerpush's application credentials ({error}); check {setting}. "
        "Jobs wait and resume by themselves once the setting is fixed; tenants stay connected",
        CODE,
    )


def accepted(provider: str) -> None:
    """The token endpoint accepted the application: clear the condition if it was set."""
    try:
        cleared = bool(get_redis().delete(_key(provider)))
    except RedisError:
        return
    if cleared:
        log.warning("%s accepts the application credentials again", provider)
        alerts.app_credentials_accepted(provider)


def current() -> list[dict[str, Any]]:
    """Every provider whose token endpoint refuses the application now."""
    found = []
    for provider in registry.names():
        try:
            raw: bytes | None = get_redis().get(_key(provider))  # type: ignore[assignment]
        except RedisError:
            continue
        if raw:
            found.append(json.loads(raw))
    return found
