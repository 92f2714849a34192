"""HTTP glue of the eAccounting simulator: JSON answers and request bodies, and the `/v2`
route: bearer token, endpoint, rate limit, scope and product variant checked before the
handler runs under the simulator's lock."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The resource modules register their handlers in HANDLERS when imported.
from worker.simulators.eaccounting import api_invoices, api_masterdata  # noqa: F401
from worker.simulators.eaccounting.api import HANDLERS, ApiCall, Endpoint, match_endpoint
from worker.simulators.eaccounting.auth import Grant
from worker.simulators.eaccounting.errors import (
    FORBIDDEN,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    NOT_SIMULATED,
    UNAUTHORIZED,
    VALIDATION_FAILED,
    ApiError,
    denied_message,
    throttle_body,
)
from worker.simulators.eaccounting.state import Company, to_json

if TYPE_CHECKING:
    from worker.simulators.eaccounting.simulator import EAccountingSimulator


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = b"" if payload is None else to_json(payload)
    return Response(body, status, headers=headers, media_type="application/json")


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, VALIDATION_FAILED, "The request body is not valid JSON.") from None


async def optional_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    return data if isinstance(data, dict) else {}


class ApiRoutes:
    def __init__(self, sim: EAccountingSimulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return [Route("/v2/{rest:path}", self.api, methods=methods)]

    async def api(self, request: Request) -> Response:
        try:
            return await self._call_api(request)
        except ApiError as error:
            headers = None
            if error.status == 401:
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return json_response(error.body(), error.status, headers)

    async def _call_api(self, request: Request) -> Response:
        grant = self._bearer(request)
        endpoint, params = self._endpoint(request)
        throttled = self._throttle(grant, request.method, endpoint.template)
        if throttled is not None:
            return throttled
        _check_scope(grant, endpoint)
        handler = HANDLERS.get((endpoint.method, endpoint.template))
        if handler is None:
            message = f"{endpoint.method} {endpoint.template} is not simulated."
            raise ApiError(501, NOT_SIMULATED, message)
        body = await json_body(request)
        query = {k.lower(): v for k, v in request.query_params.items()}
        with self.sim.lock:
            company = self.sim.companies.get(grant.company_id)
            if company is None:
                raise ApiError(401, UNAUTHORIZED, "The company of this token no longer exists.")
            _check_variant(company, endpoint)
            status, payload = handler(ApiCall(company, params, query, body, self.sim.now()))
            # Encoded under the lock: the payload may share dicts with the state.
            return json_response(payload, status)

    def _bearer(self, request: Request) -> Grant:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ApiError(401, UNAUTHORIZED, "Authorization has been denied for this request.")
        with self.sim.lock:
            grant = self.sim.tokens.grant_for(header[7:].strip())
        if grant is None:
            raise ApiError(401, UNAUTHORIZED, "The access token is invalid or has expired.")
        return grant

    @staticmethod
    def _endpoint(request: Request) -> tuple[Endpoint, dict[str, str]]:
        endpoint, params, allowed = match_endpoint(request.method, request.url.path)
        if endpoint is not None:
            return endpoint, params
        if allowed:
            raise ApiError(
                405,
                METHOD_NOT_ALLOWED,
                f"The requested resource does not support http method '{request.method}'.",
                error="MethodNotAllowed",
            )
        raise ApiError(404, NOT_FOUND, f"No resource at {request.url.path}.", error="NotFound")

    def _throttle(self, grant: Grant, method: str, template: str) -> Response | None:
        # Per client and endpoint; by default within one company (tenant), as ledgerpush's
        # contract reads Visma's limit ("per tenant x provider x endpoint"), or across the
        # client's companies with rate_limit_scope "client".
        limit = self.sim.config.rate_limit_per_minute
        company = grant.company_id if self.sim.config.rate_limit_scope == "company" else "*"
        with self.sim.lock:
            wait = self.sim.limiter.wait_seconds(
                f"{grant.client_id} {company} {method} {template.lower()}", limit
            )
        if wait is None:
            return None
        return json_response(throttle_body(limit, wait), 429, {"Retry-After": str(wait)})


def _check_scope(grant: Grant, endpoint: Endpoint) -> None:
    if "ea:api" not in grant.scopes or not set(grant.scopes) & set(endpoint.scopes):
        # Worded at random, without the scope's name: the reference documents neither.
        raise ApiError(
            403,
            FORBIDDEN,
            denied_message(f"{endpoint.method} {endpoint.template}"),
            error="AuthorizationError",
        )


# CompanySettingsApi.ProductVariant -> the names endpoints.json lists per endpoint.
VARIANT_NAMES = {1: "Standard", 2: "Invoicing", 3: "Bookkeeping", 4: "Solo", 5: "Pro"}


def _check_variant(company: Company, endpoint: Endpoint) -> None:
    variant = VARIANT_NAMES.get(company.settings.get("ProductVariant", 1))
    if variant is not None and endpoint.variants and variant not in endpoint.variants:
        raise ApiError(
            403,
            FORBIDDEN,
            f"{endpoint.method} {endpoint.template} is not available in eAccounting "
            f"{variant}; it needs {', '.join(endpoint.variants)}.",
            error="AuthorizationError",
        )
