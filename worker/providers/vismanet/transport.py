"""Requests as Visma.net ERP wants them: the shared HTTP layer plus the API's own rate
limit headers, new ids from `Location`, and lists read page by page to the end.

Limits are per company and client in fixed windows; every answer carries
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds to the window's end), a 429
`Retry-After`. An exhausted window is recorded in Redis for the tenant, so no worker
sends into it until it resets; the configured hourly rate paces calls before that.
"""

from __future__ import annotations

import base64
import contextlib
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
from redis.exceptions import RedisError

from worker.providers.base import ProviderError, Transient
from worker.providers.http import ProviderHttp, retry_after_seconds
from worker.transport.ratelimit import Rate
from worker.transport.redis_client import get_redis

PAGE_SIZE = 1000
#: The list endpoints whose parameters include pageNumber/pageSize (endpoints.json);
#: the others answer everything at once and would refuse nothing, but only parameter
#: names the spec lists are sent.
PAGED = frozenset({
    "/v1/customer", "/v1/customerinvoice", "/v1/customerCreditNote", "/v1/customerPayment",
    "/v1/inventory", "/v1/vatZone", "/v1/creditTerm", "/v1/subaccount", "/v1/country",
    "/v1/customerdocument", "/v1/customerpaymentmethod",
})  # fmt: skip
#: A window that resets sooner than this is waited for in place; a later one is a retry.
MAX_PAUSE = 5.0
MAX_PAGES = 10_000
#: How long one attempt waits for a queued release or a background request before it
#: leaves it to a later attempt's lookup.
WAIT_SECONDS = 20.0
POLL_SECONDS = 0.25
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def path_id(value: str) -> str:
    """An id as a path segment: as it is, or `b64(<base64url>)` when it has characters
    a path would change (the API decodes that form; KB 2021)."""
    if _PLAIN_ID.match(value):
        return value
    encoded = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    return f"b64({encoded})"


def modified_since(moment: str, condition: str = ">=") -> dict[str, str]:
    """The spec's `lastModifiedDateTime` filter, always with its condition (the two are
    "mutually inclusive"); `moment` as `yyyy-MM-ddTHH:mm:ss`."""
    return {"lastModifiedDateTime": moment, "lastModifiedDateTimeCondition": condition}


class VismaNetHttp(ProviderHttp):
    def __init__(
        self, base_url: str, auth: httpx.Auth, limit_key: str, rate: Rate,
        map_error: Callable[[httpx.Response], ProviderError],
    ) -> None:  # fmt: skip
        super().__init__(
            base_url, auth, limit_key, rate, self._observed_error, endpoint_limits=False
        )
        self._map = map_error

    # -- rate limit headers ------------------------------------------------------------

    def _pause_key(self) -> str:
        return f"lp:vn-window:{self.limit_key}"

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        self._wait_for_window()
        response = super().request(method, path, params=params, json=json)
        self._observe(response)
        return response

    def _observed_error(self, response: httpx.Response) -> ProviderError:
        self._observe(response)
        return self._map(response)

    def _observe(self, response: httpx.Response) -> None:
        """An exhausted window (or a 429) pauses the tenant's calls until it resets."""
        headers = response.headers
        pause: float | None = None
        if response.status_code == 429:
            pause = retry_after_seconds(response, 60)
        elif headers.get("X-RateLimit-Remaining", "").strip() == "0":
            pause = _seconds(headers.get("X-RateLimit-Reset"), 60.0)
        if pause is None or pause <= 0:
            return
        # Without Redis the limiter and the next 429 still hold the tenant back.
        with contextlib.suppress(RedisError):
            get_redis().set(self._pause_key(), str(time.time() + pause), px=int(pause * 1000) + 1)

    def _wait_for_window(self) -> None:
        try:
            raw = get_redis().get(self._pause_key())
        except RedisError:
            return
        if raw is None:
            return
        wait = float(raw) - time.time()  # type: ignore[arg-type, unused-ignore]
        if wait <= 0:
            return
        if wait > MAX_PAUSE:
            raise Transient(
                f"Visma.net rate limit window used up; it resets in {wait:.0f}s",
                "rate_limited",
                retry_after=wait,
            )
        time.sleep(wait)

    # -- writes and lists -------------------------------------------------------------

    def create(self, path: str, body: dict[str, Any]) -> str:
        """POST a new resource: 201 with an empty body, its id the last segment of the
        `Location` header (whatever host that names)."""
        response = self.request("POST", path, json=body)
        location = str(response.headers.get("Location") or "")
        created = unquote(location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
        if not created:
            raise Transient(
                f"POST {path} answered {response.status_code} without a Location",
                "no_location",
            )
        return created

    def collect(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a list. Paged endpoints are always asked with pageNumber and
        pageSize (without them the ERP silently answers part of the list) until the
        `metadata.totalCount` the items carry is reached, or an empty or short page."""
        if path not in PAGED:
            return _items(self.get_json(path, params))
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES):
            body = self.get_json(
                path, {**(params or {}), "pageNumber": page, "pageSize": PAGE_SIZE}
            )
            batch = _items(body)
            found.extend(batch)
            if _last_page(body, batch, len(found)):
                break
        return [{k: v for k, v in item.items() if k != "metadata"} for item in found]


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):  # the BasePaginationDto form (/v1/creditTerm)
        return [r for r in body.get("records") or [] if isinstance(r, dict)]
    return [r for r in body or [] if isinstance(r, dict)]


def _last_page(body: Any, batch: list[dict[str, Any]], seen: int) -> bool:
    if not batch:
        return True
    meta = body if isinstance(body, dict) else (batch[0].get("metadata") or {})
    total = meta.get("totalCount")
    if total is not None:
        return seen >= int(total)
    # No count: a page shorter than what the endpoint hands out is the last one; the
    # endpoint's maximum may be below ours, and pages are cut to it silently.
    limit = min(PAGE_SIZE, int(meta.get("maxPageSize") or meta.get("pageSize") or PAGE_SIZE))
    return len(batch) < limit and meta.get("maxPageSize") is not None


def _seconds(value: str | None, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default
