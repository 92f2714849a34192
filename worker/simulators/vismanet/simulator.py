"""The Visma.net simulator object: identity (`/connect/token`) and API (`/v1`, `/v2`) on
one port, per company+client fixed-window rate limits with `X-RateLimit-*` headers,
background mode, webhook notifications, and the common fault injector in front."""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulators.common import FaultInjector, Faults, OAuthError, RequestLog
from worker.simulators.vismanet import control
from worker.simulators.vismanet.api import (
    ALWAYS_BACKGROUND,
    HANDLERS,
    Call,
    Settings,
    finish_release,
)
from worker.simulators.vismanet.auth import Grant, Identity
from worker.simulators.vismanet.background import BackgroundRunner, InnerResponse
from worker.simulators.vismanet.contract import match_endpoint
from worker.simulators.vismanet.errors import ApiError, message_error, no_license, unauthorized
from worker.simulators.vismanet.state import Company
from worker.simulators.vismanet.views import to_json
from worker.simulators.vismanet.webhooks import WebhookSender

DEFAULT_APP = ("ledgerpush", "sim-secret")
#: (tenant id, company name); the customer (contract) tenant id of the same customer.
DEFAULT_COMPANIES = (("nordlys-company-tenant", "Nordlys Demo AS"),)
DEFAULT_CONTRACT_TENANTS = ("nordlys-customer-tenant",)
RATE_LIMIT_POLICY = "4-fixed-window"


@dataclass
class Config:
    token_lifetime_seconds: float = 3600
    rate_limit: int = 15000
    rate_limit_window_seconds: int = 3600
    default_page_size: int = 50
    release_queued_rate: float = 0.0
    release_queued_seconds: float = 1.0
    background_delay_seconds: float = 0.2
    background_fail_rate: float = 0.0
    #: The scheme and host that `Location` and `stateLocation` name ("" = as requested).
    public_base_url: str = ""

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {sorted(known)}")
            setattr(self, key, type(getattr(self, key))(value))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = b"" if payload is None else to_json(payload)
    media = "application/json" if payload is not None else None
    return Response(body, status, headers=headers, media_type=media)


class FixedWindow:
    """Calls per key in fixed windows aligned to the clock."""

    def __init__(self) -> None:
        self.windows: dict[str, tuple[int, int]] = {}  # key -> (window index, calls)

    def hit(self, key: str, now: float, limit: int, window: int) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds to reset); a refused call is not counted."""
        index = int(now // window)
        current, calls = self.windows.get(key, (index, 0))
        if current != index:
            calls = 0
        reset = max(1, math.ceil((index + 1) * window - now))
        if calls >= limit:
            return False, 0, reset
        self.windows[key] = (index, calls + 1)
        return True, limit - calls - 1, reset


class VismaNetSimulator:
    def __init__(self, faults: Faults | None = None, clock: Callable[[], float] = time.time,
                 seed: int | None = None, **config: Any) -> None:  # fmt: skip
        self.clock = clock
        self.config = Config()
        self.config.update(config)
        self.lock = threading.RLock()
        self.identity = Identity(clock, self.config.token_lifetime_seconds)
        self.companies: dict[str, Company] = {}
        self.limiter = FixedWindow()
        self.background = BackgroundRunner(self.lock, clock)
        self.webhooks = WebhookSender()
        self.rng = random.Random(seed)
        self.faults = faults if faults is not None else Faults()
        self.log = RequestLog()
        self.max_page_sizes: dict[str, int] = {}
        self._apply_config()
        self.app = FaultInjector(self._starlette(), self.faults, self.log, _throttle_body)

    # ------------------------------------------------------------ set-up

    def add_app(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.identity.apps[client_id] = client_secret

    def add_company(self, tenant_id: str, name: str = "Demo AS") -> Company:
        with self.lock:
            if tenant_id not in self.companies:
                self.companies[tenant_id] = Company(tenant_id, name, self.now())
                self.identity.tenants[tenant_id] = tenant_id
            return self.companies[tenant_id]

    def add_contract_tenant(self, tenant_id: str) -> None:
        """A customer (contract) tenant id: tokens are issued for it, the API answers 401."""
        with self.lock:
            self.identity.tenants[tenant_id] = None

    def update_config(self, changes: dict[str, Any]) -> None:
        with self.lock:
            self.config.update(changes)
            self._apply_config()

    def _apply_config(self) -> None:
        self.identity.token_lifetime_seconds = self.config.token_lifetime_seconds
        self.background.delay_seconds = self.config.background_delay_seconds
        self.background.fail_rate = self.config.background_fail_rate

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None)

    def settings(self) -> Settings:
        c = self.config
        return Settings(c.default_page_size, dict(self.max_page_sizes),
                        c.release_queued_rate, c.release_queued_seconds)  # fmt: skip

    def reset(self) -> None:
        """Fresh seeded companies (same tenants), no jobs, no rate-limit windows."""
        with self.lock:
            names = {tid: c.name for tid, c in self.companies.items()}
            self.companies = {tid: Company(tid, name, self.now()) for tid, name in names.items()}
            self.limiter = FixedWindow()
            self.background.reset()

    def restore_defaults(self) -> None:
        """Everything back to how it started: data, config, faults, approvals, webhooks."""
        with self.lock:
            self.config = Config()
            self._apply_config()
            self.faults.update({**Faults().as_dict()})
            self.max_page_sizes = {}
            self.identity.withdrawn.clear()
            self.webhooks.clear()
            self.webhooks.retries, self.webhooks.retry_interval_seconds = 3, 0.5
            for company in self.companies.values():
                company.licensed = True
            self.reset()

    # ------------------------------------------------------------ app

    def _starlette(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        routes = [
            Route("/connect/token", self._token, methods=["POST"]),
            *control.routes(self),
            Route("/v1/{rest:path}", self._api, methods=methods),
            Route("/v2/{rest:path}", self._api, methods=methods),
        ]
        return Starlette(routes=routes)

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            with self.lock:
                answer = self.identity.issue(form)
        except OAuthError as error:
            return json_response(error.body(), error.status, {"Cache-Control": "no-store"})
        return json_response(answer, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def _api(self, request: Request) -> Response:
        rate_headers: dict[str, str] = {}
        try:
            grant = self._grant(request)
            rate_headers = self._count(grant)
            body = await request.body()
            company = self._company(grant)
            response = self._route(request, grant, company, body)
        except ApiError as error:
            return json_response(error.body, error.status, {**error.headers, **rate_headers})
        response.headers.update(rate_headers)
        return response

    def _grant(self, request: Request) -> Grant:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise unauthorized()
        with self.lock:
            grant = self.identity.grant_for(header[7:].strip())
        if grant is None:
            raise unauthorized()
        return grant

    def _company(self, grant: Grant) -> Company:
        with self.lock:
            company = self.companies.get(grant.company_id) if grant.company_id else None
        if company is None or not company.licensed:
            raise no_license()
        return company

    def _count(self, grant: Grant) -> dict[str, str]:
        c = self.config
        with self.lock:
            allowed, remaining, reset = self.limiter.hit(
                f"{grant.tenant_id} {grant.client_id}",
                self.clock(),
                c.rate_limit,
                c.rate_limit_window_seconds,
            )
        headers = {
            "X-RateLimit-Limit": str(c.rate_limit), "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset), "X-RateLimit-Policy": RATE_LIMIT_POLICY,
        }  # fmt: skip
        if not allowed:
            raise ApiError(429, _throttle_dict(reset), {**headers, "Retry-After": str(reset)})
        return headers

    def _route(self, request: Request, grant: Grant, company: Company, body: bytes) -> Response:
        path = request.url.path
        endpoint, raw_params, exists = match_endpoint(request.method, path)
        params = {name: _decode_id(value) for name, value in raw_params.items()}
        if endpoint is None:
            if exists:
                raise message_error(
                    405, f"The requested resource does not support http method '{request.method}'."
                )
            raise message_error(
                404, f"No HTTP resource was found that matches the request URI '{path}'."
            )
        key = (endpoint.method, endpoint.template)
        _check_scope(grant, endpoint.method, endpoint.template)
        base = (self.config.public_base_url or str(request.base_url)).rstrip("/")
        if key == ("GET", "/v1/background/{requestId}"):
            return self._background_state(company, params["requestId"], base, content=False)
        if key == ("GET", "/v1/background/{requestId}/content"):
            return self._background_state(company, params["requestId"], base, content=True)
        handler = HANDLERS.get(key)
        if handler is None:
            raise message_error(501, f"{endpoint.method} {endpoint.template} is not simulated.")
        query = {k.lower(): v for k, v in request.query_params.items()}
        if_match = request.headers.get("if-match")

        def perform() -> InnerResponse:
            call = Call(company, params, query, None, self.now(), self.clock(), base,
                        self.settings(), self.rng, if_match, endpoint.response_model,
                        paged=endpoint.paged)  # fmt: skip
            return self._perform(handler, call, body)

        background = request.headers.get("erp-api-background")
        if key in ALWAYS_BACKGROUND or background is not None:
            with self.lock:
                job = self.background.submit(company.tenant_id, request.method, str(request.url), body, perform,
                                             background if background not in (None, "none") else None)  # fmt: skip
            accepted = {"id": job.id, "stateLocation": f"{base}/v1/background/{job.id}"}
            return json_response(accepted, 202, {"Location": accepted["stateLocation"]})
        inner = perform()
        return Response(inner.body, inner.status, headers=inner.headers)

    def _perform(self, handler: Any, call: Call, body: bytes) -> InnerResponse:
        with self.lock:
            self.settle(call.company)
            call.now, call.clock = self.now(), self.clock()
            try:
                call.body = _parse_json(body)
                reply = handler(call)
            except ApiError as error:
                return InnerResponse(
                    error.status, to_json(error.body), _json_headers(error.headers)
                )
            for event, entity, number in call.events:
                self.webhooks.notify(event, call.company.tenant_id, entity, number)
            payload = b"" if reply.payload is None else to_json(reply.payload)
            headers = _json_headers(reply.headers) if payload else dict(reply.headers)
            return InnerResponse(reply.status, payload, headers)

    def settle(self, company: Company) -> None:
        """Releases answered "Queued" take effect once due."""
        for document in list(company.documents.values()):
            if document.release_due is not None and document.release_due <= self.clock():
                events: list[tuple[str, str, str]] = []
                finish_release(company, document, self.now(), events)
                for event, entity, number in events:
                    self.webhooks.notify(event, company.tenant_id, entity, number)

    def _background_state(
        self, company: Company, job_id: str, base: str, content: bool
    ) -> Response:
        with self.lock:
            job = self.background.get(job_id, company.tenant_id)
            if job is None:
                raise message_error(404, f"Background request '{job_id}' was not found.")
            if not content:
                return json_response(job.state(base))
            if job.response is None:
                raise message_error(404, f"Background request '{job_id}' has no response yet.")
            return Response(job.response.body, job.response.status, headers=job.response.headers)


def _check_scope(grant: Grant, method: str, template: str) -> None:
    """GET needs :read, POST :create (actions :update), PUT :update, DELETE :delete."""
    if method == "POST" and "/action/" in template:
        needed = "update"
    else:
        needed = {"GET": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}[method]
    scope = f"vismanet_erp_service_api:{needed}"
    if scope not in grant.scopes:
        raise message_error(403, f"The access token does not carry the scope {scope}.")


def _json_headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/json"}


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise message_error(400, "The request body is not valid JSON.") from None


def _decode_id(segment: str) -> str:
    """A path id sent as `b64(<base64url>)` -> the id it encodes."""
    if not (segment.startswith("b64(") and segment.endswith(")")):
        return segment
    encoded = segment[4:-1]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise message_error(400, f"'{segment}' is not a valid b64() id.") from None


def _throttle_dict(retry_after: int) -> dict[str, str]:
    return {"message": f"Rate limit is exceeded. Try again in {retry_after} seconds."}


def _throttle_body(retry_after: int) -> bytes:
    return to_json(_throttle_dict(retry_after))
