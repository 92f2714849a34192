"""The HTTP layer every provider client shares: one pooled httpx client per process,
the tenant's auth, shared rate limits, the call record for the attempt history, and
transport failures mapped to `Transient`."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import simplejson

from worker.providers.base import (
    SLOT_RESERVED_CODE,
    Call,
    NoAnswer,
    ProviderError,
    SlotReserved,
    Transient,
)
from worker.settings import get_settings
from worker.transport import ratelimit
from worker.transport.ratelimit import Rate, RateLimited, RateLimiter, SlotHeld

_ID_SEGMENT = re.compile(r"/(?:\d+|[0-9a-fA-F-]{32,36})(?=/|$)")
ErrorMapper = Callable[[httpx.Response], ProviderError]


@functools.cache
def http_client() -> httpx.Client:
    settings = get_settings()
    return httpx.Client(
        timeout=httpx.Timeout(settings.http_timeout, connect=5.0),
        # No cap on connections: each worker thread has at most one request out, so the
        # threads bound them, and a cap below the threads (LEDGERPUSH_WORKER_CONCURRENCY
        # goes to 512) would hold requests back until a pool timeout that reads like a
        # request gone unanswered.
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        headers={"User-Agent": "ledgerpush/0.1", "Accept": "application/json"},
    )


def endpoint_of(method: str, path: str) -> str:
    return f"{method} {_ID_SEGMENT.sub('/{id}', path.split('?', 1)[0])}"


def retry_after_seconds(response: httpx.Response, default: float = 5.0) -> float:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value else default
    except ValueError:
        return default


class ProviderHttp:
    """Sends one tenant's requests; `calls` is what the attempt history shows."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth,
        limit_key: str,
        rate: Rate,
        map_error: ErrorMapper,
        endpoint_limits: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.limit_key = limit_key
        self.rate = rate
        self.map_error = map_error
        self.endpoint_limits = endpoint_limits
        self.calls: list[Call] = []
        self.limiter = RateLimiter()

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        endpoint = endpoint_of(method, path)
        self._wait_for_slot(endpoint)
        started = time.perf_counter()
        status: int | None = None
        try:
            response = http_client().request(
                method,
                self.base_url + path,
                params=params,
                auth=self.auth,
                **_json_body(json),
            )
            status = response.status_code
        except httpx.TimeoutException:
            raise NoAnswer(f"{endpoint} timed out", "timeout") from None
        except httpx.TransportError as exc:
            raise NoAnswer(
                f"{endpoint}: connection failed ({type(exc).__name__})", "connection_error"
            ) from None
        finally:
            self.calls.append(
                Call(method, path.split("?", 1)[0], status, (time.perf_counter() - started) * 1000)
            )
        if response.status_code >= 400:
            raise self.map_error(response)
        return response

    def _wait_for_slot(self, endpoint: str) -> None:
        key = f"{self.limit_key}:{endpoint}" if self.endpoint_limits else self.limit_key
        hold = get_settings().rate_limit_hold_seconds if ratelimit.slots_handed_back() else None
        try:
            self.limiter.acquire(key, self.rate, hold=hold)
        except SlotHeld as held:
            wait = max(held.slot.at - time.time(), 0.0)
            raise SlotReserved(
                f"rate limit: the next slot of {endpoint} is reserved for this job in {wait:.1f}s; "
                "it waits for it without using a retry",
                SLOT_RESERVED_CODE,
                held.slot.key,
                held.slot.at,
                wait,
            ) from None
        except RateLimited as exc:
            raise Transient(
                f"rate limit budget used up; next slot in {exc.wait:.0f}s",
                "rate_limited",
                retry_after=exc.wait,
            ) from None

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()


def _json_body(body: Any) -> dict[str, Any]:
    """Amounts go out as exact JSON numbers: Decimal, never through float."""
    if body is None:
        return {}
    return {
        "content": simplejson.dumps(body, use_decimal=True).encode(),
        "headers": {"Content-Type": "application/json"},
    }
