"""A Visma eAccounting simulator: identity server and v2 API in one ASGI app.

Built from `reference/eaccounting` (models.json, endpoints.json) and `reference/README.md`:
the OAuth authorization-code flow with `ea:api offline_access` plus area scopes, access
tokens that expire, re-use or one-time refresh tokens with a grace period, revocation;
per-endpoint scopes from endpoints.json (403 authorization error, never empty data);
pagination (`$page`, `$pagesize`, default 50) and `$filter`/`$orderby`; 600 calls per minute
per client and endpoint with the real 429 body; request validation from models.json in
eAccounting's error format; drafts, booking, immutable invoices, payments. Faults come from
`common.FaultInjector`; `/_control` routes drive it all from tests and the CLI.

    sim = EAccountingSimulator()
    sim.add_company("acme", "NO")
    server = SimulatorServer(sim.app).start()
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import unquote, urlencode, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from worker.simulators.common import FaultInjector, Faults, RequestLog, SimulatorServer
from worker.simulators.eaccounting_api import HANDLERS, ApiCall, Endpoint, match_endpoint
from worker.simulators.eaccounting_auth import (
    KNOWN_SCOPES,
    REQUIRED_SCOPES,
    Grant,
    OAuthError,
    TokenStore,
)
from worker.simulators.eaccounting_seed import COUNTRIES, build_company, seed_documents
from worker.simulators.eaccounting_state import (
    FORBIDDEN,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    NOT_SIMULATED,
    UNAUTHORIZED,
    VALIDATION_FAILED,
    ApiError,
    Company,
    SimConfig,
    denied_message,
    plain,
    throttle_body,
    to_json,
)

DEFAULT_COMPANIES = (("demo-no", "NO"), ("demo-nl", "NL"), ("demo-se", "SE"), ("demo-fi", "FI"))
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: CompanySettingsApi fields that identify a company (what the control API may change).
IDENTITY_FIELDS = frozenset({"CompanyIdentifier", "CorporateIdentityNumber", "Name", "VatCode"})


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = b"" if payload is None else to_json(payload)
    return Response(body, status, headers=headers, media_type="application/json")


class RateLimiter:
    """Sliding one-minute window per key; rejected calls are not counted."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def wait_seconds(self, key: str, limit: int) -> int | None:
        """None if the call may go ahead (and counts it), else seconds until it may."""
        now = self.clock()
        window = self._hits.setdefault(key, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + 60 - now))
        window.append(now)
        return None

    def reset(self) -> None:
        self._hits.clear()


class EAccountingSimulator:
    def __init__(
        self,
        client_id: str = "ledgerpush",
        client_secret: str = "sim-secret",
        token_lifetime_seconds: float = 3600,
        refresh_mode: Literal["reuse", "one_time"] = "reuse",
        refresh_grace_seconds: float = 0,
        rate_limit_per_minute: int = 600,
        rate_limit_scope: Literal["company", "client"] = "company",
        faults: Faults | None = None,
        auto_approve: bool = True,
        redirect_uris: list[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = redirect_uris
        self.clock = clock
        self.config = SimConfig(
            token_lifetime_seconds=token_lifetime_seconds,
            refresh_mode=refresh_mode,
            refresh_grace_seconds=refresh_grace_seconds,
            rate_limit_per_minute=rate_limit_per_minute,
            rate_limit_scope=rate_limit_scope,
            auto_approve=auto_approve,
        )
        self.faults = faults if faults is not None else Faults()
        self.log = RequestLog()
        self.companies: dict[str, Company] = {}
        self.tokens = TokenStore(self.config, clock)
        self.limiter = RateLimiter(clock)
        self._lock = threading.RLock()
        self._injector = FaultInjector(
            self._starlette(), self.faults, self.log, self._throttle_bytes
        )
        self.app = self._injector

    # ------------------------------------------------------------ public interface

    @property
    def token_calls(self) -> int:
        return sum(self.tokens.calls.values())

    @property
    def token_calls_by_grant(self) -> dict[str, int]:
        return dict(self.tokens.calls)

    def token_calls_for(self, company_id: str) -> dict[str, int]:
        """Token-endpoint calls by grant type that used this company's code or refresh token."""
        with self._lock:
            return {
                grant: count
                for (company, grant), count in self.tokens.company_calls.items()
                if company == company_id
            }

    def add_company(self, company_id: str, country: str) -> None:
        if country not in COUNTRIES:
            raise ValueError(f"country must be one of {COUNTRIES}, not {country!r}")
        with self._lock:
            existing = self.companies.get(company_id)
            if existing is not None and existing.country != country:
                raise ValueError(f"company {company_id!r} already exists in {existing.country}")
            if existing is None:
                company = build_company(company_id, country, self._now().year)
                self.companies[company_id] = company

    def issue_tokens(self, company_id: str, scopes: list[str]) -> dict[str, Any]:
        """Tokens as the browser flow would give them; `ea:api offline_access` are implied."""
        wanted = tuple(dict.fromkeys([*REQUIRED_SCOPES, *scopes]))
        unknown = set(wanted) - KNOWN_SCOPES
        if unknown:
            raise ValueError(f"unknown scopes: {sorted(unknown)}")
        with self._lock:
            if company_id not in self.companies:
                raise KeyError(f"no company {company_id!r}")
            return dict(self.tokens.issue(company_id, self.client_id, wanted))

    def update_identity(self, company_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change what `GET /v2/companysettings` says identifies the company, under the
        tokens already issued for it (as when the company behind a connection changes)."""
        unknown = set(changes) - IDENTITY_FIELDS
        if unknown:
            raise ValueError(
                f"only {sorted(IDENTITY_FIELDS)} can be changed, not {sorted(unknown)}"
            )
        with self._lock:
            company = self.companies[company_id]
            company.settings.update({k: str(v) for k, v in changes.items()})
            return {k: company.settings.get(k) for k in sorted(IDENTITY_FIELDS)}

    def set_client_secret(self, secret: str) -> None:
        """The client secret the token endpoint accepts (a rotation at Visma's side)."""
        with self._lock:
            self.client_secret = secret

    def revoke_refresh_tokens(self, company_id: str) -> None:
        with self._lock:
            self.tokens.revoke_refresh(company_id)

    def expire_access_tokens(self, company_id: str | None = None) -> None:
        with self._lock:
            self.tokens.expire_access(company_id)

    def state_dump(self) -> dict[str, Any]:
        with self._lock:
            return {cid: plain(self._dump(company)) for cid, company in self.companies.items()}

    def reset(self) -> None:
        with self._lock:
            for company in self.companies.values():
                seed_documents(company)
            self.limiter.reset()

    def update_config(self, changes: dict[str, Any]) -> None:
        with self._lock:
            self.config.update(changes)
            self._injector.throttle_body = self._throttle_bytes

    def _throttle_bytes(self, retry_after: int) -> bytes:
        # An injected 429's body names the same wait as its Retry-After header.
        return to_json(throttle_body(self.config.rate_limit_per_minute, retry_after))

    @staticmethod
    def _dump(company: Company) -> dict[str, Any]:
        invoices = [
            dict(invoice, Payments=company.payments.get(invoice["Id"], []))
            for invoice in company.invoices.values()
        ]
        return {
            "country": company.country,
            "currency": company.currency,
            "next_invoice_number": company.next_invoice_number,
            "customers": list(company.customers.values()),
            "articles": list(company.articles.values()),
            "drafts": list(company.drafts.values()),
            "invoices": invoices,
        }

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(tzinfo=None)

    # ------------------------------------------------------------ app

    def _starlette(self) -> Starlette:
        control = "/_control"
        routes = [
            Route("/connect/authorize", self._authorize, methods=["GET", "POST"]),
            Route("/connect/token", self._token, methods=["POST"]),
            Route(f"{control}/state", self._control_state, methods=["GET"]),
            Route(f"{control}/reset", self._control_reset, methods=["POST"]),
            Route(f"{control}/faults", self._control_faults, methods=["GET", "PUT"]),
            Route(f"{control}/config", self._control_config, methods=["GET", "PUT"]),
            Route(f"{control}/stats", self._control_stats, methods=["GET"]),
            Route(f"{control}/stats/reset", self._control_stats_reset, methods=["POST"]),
            Route(f"{control}/companies", self._control_companies, methods=["GET", "POST"]),
            Route(
                f"{control}/companies/{{company_id}}/tokens", self._control_tokens, methods=["POST"]
            ),
            Route(
                f"{control}/companies/{{company_id}}/revoke", self._control_revoke, methods=["POST"]
            ),
            Route(f"{control}/expire-tokens", self._control_expire, methods=["POST"]),
            Route(
                f"{control}/companies/{{company_id}}/identity",
                self._control_identity,
                methods=["PUT"],
            ),
            Route(f"{control}/client", self._control_client, methods=["PUT"]),
            Route(
                "/v2/{rest:path}",
                self._api,
                methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            ),
        ]
        return Starlette(routes=routes)

    # ------------------------------------------------------------ identity

    async def _authorize(self, request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        if params.get("client_id") != self.client_id:
            return _error_page("The client is unknown (client_id).")
        redirect_uri = params.get("redirect_uri", "")
        if not self._redirect_allowed(redirect_uri):
            return _error_page("The redirect_uri is not registered for this client.")
        state = params.get("state")
        if params.get("response_type") != "code":
            return _redirect_error(
                redirect_uri, "unsupported_response_type", "Only response_type=code.", state
            )
        scopes = tuple(dict.fromkeys(params.get("scope", "").split()))
        scope_problem = _scope_problem(scopes)
        if scope_problem:
            return _redirect_error(redirect_uri, "invalid_scope", scope_problem, state)
        if request.method == "POST":
            return self._consent_answer(params, redirect_uri, scopes, state)
        with self._lock:
            chosen = self._preselected_company(params.get("login_hint"))
        if self.config.auto_approve and chosen is not None:
            return self._redirect_with_code(chosen, redirect_uri, scopes, state)
        return self._consent_page(params)

    def _redirect_allowed(self, uri: str) -> bool:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            return False
        if self.redirect_uris is not None:
            return uri in self.redirect_uris
        return parts.scheme == "https" or (parts.hostname or "") in _LOOPBACK

    def _preselected_company(self, login_hint: str | None) -> str | None:
        if login_hint and login_hint in self.companies:
            return login_hint
        return next(iter(self.companies)) if len(self.companies) == 1 else None

    def _consent_answer(
        self, params: dict[str, str], redirect_uri: str, scopes: tuple[str, ...], state: str | None
    ) -> Response:
        if params.get("decision") != "allow":
            return _redirect_error(redirect_uri, "access_denied", "The user denied access.", state)
        company_id = params.get("company_id", "")
        if company_id not in self.companies:
            return _error_page("Choose one of the listed companies.")
        return self._redirect_with_code(company_id, redirect_uri, scopes, state)

    def _redirect_with_code(
        self, company_id: str, redirect_uri: str, scopes: tuple[str, ...], state: str | None
    ) -> Response:
        with self._lock:
            code = self.tokens.new_code(company_id, self.client_id, redirect_uri, scopes)
        query = {"code": code, **({"state": state} if state is not None else {})}
        return RedirectResponse(_with_query(redirect_uri, query), status_code=302)

    def _consent_page(self, params: dict[str, str]) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
            if k in ("client_id", "redirect_uri", "response_type", "scope", "state", "acr_values")
        )
        with self._lock:
            companies = [(cid, c.settings["Name"], c.country) for cid, c in self.companies.items()]
        options = "".join(
            f'<li><label><input type="radio" name="company_id" value="{html.escape(cid)}"'
            f" required> {html.escape(name)} ({country}, {html.escape(cid)})"
            "</label></li>"
            for cid, name, country in companies
        )
        scopes = html.escape(params.get("scope", ""))
        page = (
            "<!doctype html><html><head><title>Visma eAccounting (simulated) - sign in</title></head>"
            "<body><h1>Select company</h1>"
            f"<p>The application <b>{html.escape(self.client_id)}</b> asks for: {scopes}</p>"
            f'<form method="post" action="/connect/authorize">{hidden}<ul>{options}</ul>'
            '<button name="decision" value="allow">Allow</button> '
            '<button name="decision" value="deny">Deny</button></form></body></html>'
        )
        return HTMLResponse(page)

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        grant_type = form.get("grant_type", "")
        with self._lock:
            self.tokens.calls[grant_type or "(none)"] += 1
        try:
            self._authenticate_client(request, form)
            with self._lock:
                answer = self._grant(grant_type, form)
        except OAuthError as error:
            headers = {"Cache-Control": "no-store"}
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="identity"'
            return json_response(error.body(), error.status, headers)
        return json_response(answer, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _authenticate_client(self, request: Request, form: dict[str, str]) -> None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, secret = _basic_credentials(header[6:])
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id != self.client_id or secret != self.client_secret:
            raise OAuthError("invalid_client", "Client authentication failed.", status=401)

    def _grant(self, grant_type: str, form: dict[str, str]) -> dict[str, object]:
        if grant_type == "authorization_code":
            if not form.get("code") or not form.get("redirect_uri"):
                raise OAuthError("invalid_request", "code and redirect_uri are required.")
            return self.tokens.redeem_code(form["code"], self.client_id, form["redirect_uri"])
        if grant_type == "refresh_token":
            if not form.get("refresh_token"):
                raise OAuthError("invalid_request", "refresh_token is required.")
            return self.tokens.use_refresh(form["refresh_token"], self.client_id)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported.")

    # ------------------------------------------------------------ API

    async def _api(self, request: Request) -> Response:
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
        body = await _json_body(request)
        query = {k.lower(): v for k, v in request.query_params.items()}
        with self._lock:
            company = self.companies.get(grant.company_id)
            if company is None:
                raise ApiError(401, UNAUTHORIZED, "The company of this token no longer exists.")
            _check_variant(company, endpoint)
            status, payload = handler(ApiCall(company, params, query, body, self._now()))
            # Encoded under the lock: the payload may share dicts with the state.
            return json_response(payload, status)

    def _bearer(self, request: Request) -> Grant:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ApiError(401, UNAUTHORIZED, "Authorization has been denied for this request.")
        with self._lock:
            grant = self.tokens.grant_for(header[7:].strip())
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
        limit = self.config.rate_limit_per_minute
        company = grant.company_id if self.config.rate_limit_scope == "company" else "*"
        with self._lock:
            wait = self.limiter.wait_seconds(
                f"{grant.client_id} {company} {method} {template.lower()}", limit
            )
        if wait is None:
            return None
        return json_response(throttle_body(limit, wait), 429, {"Retry-After": str(wait)})

    # ------------------------------------------------------------ control

    async def _control_state(self, request: Request) -> Response:
        return json_response(self.state_dump())

    async def _control_reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": True})

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.faults.update(await request.json())
            except (ValueError, TypeError) as error:
                return json_response({"error": str(error)}, 400)
        return json_response(self.faults.as_dict())

    async def _control_config(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.update_config(await request.json())
            except (ValueError, TypeError) as error:
                return json_response({"error": str(error)}, 400)
        return json_response(self.config.as_dict())

    async def _control_stats(self, request: Request) -> Response:
        return json_response(
            {
                "requests": self.log.snapshot(),
                "token_calls": self.token_calls,
                "token_calls_by_grant": self.token_calls_by_grant,
            }
        )

    async def _control_stats_reset(self, request: Request) -> Response:
        self.log.reset()
        with self._lock:
            self.tokens.calls.clear()
            self.tokens.company_calls.clear()
        return json_response({"reset": True})

    async def _control_companies(self, request: Request) -> Response:
        if request.method == "POST":
            data = await request.json()
            try:
                self.add_company(str(data["company_id"]), str(data["country"]))
            except (KeyError, ValueError) as error:
                return json_response({"error": str(error)}, 400)
            return json_response(
                {"company_id": data["company_id"], "country": data["country"]}, 201
            )
        with self._lock:
            listed = [
                {"company_id": cid, "country": c.country} for cid, c in self.companies.items()
            ]
        return json_response(listed)

    async def _control_tokens(self, request: Request) -> Response:
        data = await _optional_json(request)
        try:
            tokens = self.issue_tokens(
                request.path_params["company_id"], list(data.get("scopes", []))
            )
        except (KeyError, ValueError) as error:
            return json_response({"error": str(error)}, 404 if isinstance(error, KeyError) else 400)
        return json_response(tokens)

    async def _control_revoke(self, request: Request) -> Response:
        self.revoke_refresh_tokens(request.path_params["company_id"])
        return json_response({"revoked": True})

    async def _control_identity(self, request: Request) -> Response:
        data = await _optional_json(request)
        try:
            identity = self.update_identity(request.path_params["company_id"], dict(data))
        except KeyError as error:
            return json_response({"error": f"no company {error}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response(identity)

    async def _control_client(self, request: Request) -> Response:
        data = await _optional_json(request)
        if not isinstance(data.get("client_secret"), str) or not data["client_secret"]:
            return json_response({"error": "client_secret (a non-empty string) is required"}, 400)
        self.set_client_secret(data["client_secret"])
        return json_response({"client_secret_changed": True})

    async def _control_expire(self, request: Request) -> Response:
        data = await _optional_json(request)
        self.expire_access_tokens(data.get("company_id"))
        return json_response({"expired": True})


# ---------------------------------------------------------------- helpers


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


def _scope_problem(scopes: tuple[str, ...]) -> str | None:
    missing = [s for s in REQUIRED_SCOPES if s not in scopes]
    if missing:
        return f"The scope must include {' and '.join(missing)}."
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    return f"Unknown scope(s): {' '.join(unknown)}." if unknown else None


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, VALIDATION_FAILED, "The request body is not valid JSON.") from None


async def _optional_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    return data if isinstance(data, dict) else {}


def _basic_credentials(encoded: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _with_query(uri: str, query: dict[str, str]) -> str:
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{urlencode(query)}"


def _redirect_error(uri: str, error: str, description: str, state: str | None) -> Response:
    query = {"error": error, "error_description": description}
    if state is not None:
        query["state"] = state
    return RedirectResponse(_with_query(uri, query), status_code=302)


def _error_page(message: str) -> Response:
    page = (
        "<!doctype html><html><head><title>Error</title></head><body>"
        f"<h1>Sign-in error</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(page, status_code=400)


def serve(
    port: int,
    companies: list[tuple[str, str]] | None = None,
    host: str = "127.0.0.1",
    **options: Any,
) -> None:
    """Runs the simulator in the foreground (`ledgerpush simulate eaccounting --port P`)."""
    simulator = EAccountingSimulator(**options)
    for company_id, country in companies or list(DEFAULT_COMPANIES):
        simulator.add_company(company_id, country)
    SimulatorServer(simulator.app, host=host, port=port).serve_forever()


__all__ = ["DEFAULT_COMPANIES", "EAccountingSimulator", "RateLimiter", "serve"]
