"""Single-flight token refresh across every worker process and machine.

One Redis lock per tenant. Whoever holds it re-reads the stored credentials first: if
another worker already refreshed, that token is used and no second refresh is made.
A new refresh token is committed to the ledger before the new access token is used,
so a rotated (one-time) refresh token is never only in a dead worker's memory.

`post_token_form` is the call to an OAuth token endpoint every provider's auth makes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from redis.exceptions import RedisError

from worker.providers.base import NeedsReauth, Transient
from worker.settings import get_settings
from worker.tenancy import tenants
from worker.transport.redis_client import get_redis

log = logging.getLogger("ledgerpush.auth.tokens")
LOCK_TIMEOUT = 30
REFRESHES = "lp:stats:token_refreshes"
REFRESH_FAILURES = "lp:stats:token_refresh_failures"
#: How long a refresh token the identity server refused is remembered as dead.
DEAD_TOKEN_SECONDS = 3600
Refresher = Callable[[str], dict[str, Any]]


def post_token_form(
    url: str, form: dict[str, str], auth: tuple[str, str] | None = None
) -> tuple[httpx.Response, dict[str, Any]]:
    """POST `form` to a token endpoint: its answer and JSON object body ({} if none).
    Raises Transient when it cannot be reached or answers 5xx or 429."""
    try:
        response = httpx.post(url, data=form, auth=auth, timeout=get_settings().http_timeout)
    except httpx.HTTPError as exc:
        raise Transient(
            f"token endpoint unreachable: {type(exc).__name__}", "token_endpoint_unreachable"
        ) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise Transient(f"token endpoint answered {response.status_code}", "token_endpoint_error")
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    return response, body if isinstance(body, dict) else {}


class InvalidGrant(Exception):
    """The identity server refused the refresh token or code (`invalid_grant`)."""


def _stored(tenant_id: str) -> dict[str, Any]:
    return tenants.credentials_of(tenants.get_tenant(tenant_id))


def _fresh(creds: dict[str, Any], margin: float = 30.0) -> bool:
    return (
        bool(creds.get("access_token")) and float(creds.get("expires_at", 0)) > time.time() + margin
    )


def _replaced_since(current: dict[str, Any], seen: dict[str, Any]) -> bool:
    return current.get("access_token") != seen.get("access_token") and _fresh(current)


def refresh_single_flight(
    tenant_id: str,
    seen: dict[str, Any],
    refresher: Refresher,
    still_needed: Callable[[dict[str, Any]], bool] | None = None,
    grant_key: str = "refresh_token",
) -> dict[str, Any]:
    """Return credentials newer than `seen`, refreshing only if nobody else has.

    `still_needed(current)` decides, under the lock, whether a refresh is still due;
    by default: unless another worker replaced the token we saw. `grant_key` names the
    stored credential a new token is asked with (client credentials: the tenant id)."""
    lock = get_redis().lock(
        f"lp:refresh:{tenant_id}", timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_TIMEOUT + 5
    )
    if not lock.acquire():
        raise Transient(
            "another worker is still refreshing this tenant's token", "refresh_lock_timeout"
        )
    try:
        tenant = tenants.get_tenant(tenant_id)
        if tenants.needs_reauth(tenant):
            # Another worker already learnt the refresh token is dead: asking the
            # identity server again would only repeat the same invalid_grant.
            raise NeedsReauth(
                tenant.connection_reason or "the tenant must connect again", "tenant_needs_reauth"
            )
        current = tenants.credentials_of(tenant)
        needed = still_needed(current) if still_needed else not _replaced_since(current, seen)
        if not needed:
            return current
        refresh_token = current.get(grant_key)
        if not refresh_token:
            raise NeedsReauth(
                "no refresh token stored; connect the tenant again", "no_refresh_token"
            )
        _raise_if_known_dead(tenant_id, refresh_token)
        try:
            renewed = refresher(refresh_token)
        except InvalidGrant as exc:
            return _after_invalid_grant(tenant_id, refresh_token, str(exc))
        except Exception:
            _count(REFRESH_FAILURES, tenant_id)
            raise
        if not renewed.get(grant_key):
            renewed[grant_key] = refresh_token
        tenants.store_credentials(tenant_id, {**current, **renewed})
        _count(REFRESHES, tenant_id)
        log.info("refreshed access token of tenant %s", tenant_id)
        return {**current, **renewed}
    finally:
        try:
            lock.release()
        except Exception:
            log.warning("refresh lock of tenant %s expired before release", tenant_id)


def _after_invalid_grant(tenant_id: str, used: str, description: str) -> dict[str, Any]:
    """invalid_grant is only a revocation if nobody else rotated the token meanwhile."""
    current = _stored(tenant_id)
    if current.get("refresh_token") != used and _fresh(current):
        return current  # lost a race with another worker's rotation: not a failure
    _count(REFRESH_FAILURES, tenant_id)
    error = NeedsReauth(
        f"refresh token rejected by Visma (invalid_grant: {description}); the user may have "
        "changed their password or withdrawn consent - connect the tenant again",
        "refresh_token_revoked",
    )
    # Noted while the lock is still held, so workers waiting for it see the verdict
    # instead of spending the dead refresh token again. The token flow only refreshes:
    # whoever catches NeedsReauth (the pipeline, the proactive refresh) marks the tenant
    # and alerts, once.
    try:
        verdict = json.dumps({"token": _digest(used), "message": error.message})
        get_redis().set(_dead_key(tenant_id), verdict, ex=DEAD_TOKEN_SECONDS)
    except RedisError as exc:
        log.warning("could not note the dead refresh token of tenant %s: %s", tenant_id, exc)
    raise error


def _raise_if_known_dead(tenant_id: str, refresh_token: str) -> None:
    try:
        raw: bytes | None = get_redis().get(_dead_key(tenant_id))  # type: ignore[assignment, unused-ignore]
    except RedisError:
        return
    verdict = json.loads(raw) if raw else {}
    if verdict.get("token") == _digest(refresh_token):
        raise NeedsReauth(str(verdict["message"]), "refresh_token_revoked")


def _dead_key(tenant_id: str) -> str:
    return f"lp:dead-refresh-token:{tenant_id}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _count(stat: str, tenant_id: str) -> None:
    """Counters read by /metrics; a Redis hiccup here must not fail the refresh."""
    try:
        get_redis().hincrby(stat, tenant_id, 1)
    except RedisError as exc:
        log.warning("could not count %s for tenant %s: %s", stat, tenant_id, exc)
