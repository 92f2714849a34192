"""The e-conomic simulator object: agreements, tokens, the fair-use budget, and `serve`."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import itertools
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from worker.simulators.common import FaultInjector, Faults, RequestLog, SimulatorServer
from worker.simulators.economic import control, seed
from worker.simulators.economic.api import ApiRoutes
from worker.simulators.economic.errors import (
    ApiError,
    ErrorCode,
    error_body,
    module_error,
    not_found,
)
from worker.simulators.economic.routing import error_response, read_body
from worker.simulators.economic.state import Agreement, Call, Handler, Reply, to_json

DEFAULT_AGREEMENTS = (("DK", "demo-dk"), ("NO", "demo-no"), ("SE", "demo-se"))


# Agreement numbers are unique across e-conomic, so across every simulator in a process
# too: a ledger that saw one simulator's agreement never meets it again in another's.
_AGREEMENT_NUMBERS = itertools.count(700001)


class EconomicSimulator:
    """In-memory e-conomic: agreements with seeded reference data, draft and booked invoices,
    journal vouchers; served as an ASGI app (`app`) wrapped in fault injection."""

    def __init__(
        self,
        app_secret_token: str = "sim-app-secret",
        app_public_token: str = "sim-app-public",
        rate_limit_per_day: int = 50000,
        faults: Faults | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.app_secret_token = app_secret_token
        self.app_public_token = app_public_token
        self.rate_limit_per_day = rate_limit_per_day
        self.faults = faults or Faults()
        self.log = RequestLog()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.lock = threading.RLock()
        self.agreements: dict[str, Agreement] = {}
        inner = Starlette(
            routes=[*ApiRoutes(self).routes(), *control.routes(self)],
            exception_handlers={HTTPException: self._http_exception},
        )
        throttle = to_json(error_body(self._fair_use_error()))
        self.app = FaultInjector(inner, self.faults, self.log, throttle)

    # -- public interface -------------------------------------------------------------------

    def add_agreement(
        self, country: str, modules: list[str] | None = None, grant_token: str | None = None
    ) -> str:
        """A new agreement with realistic reference data; returns its grant token."""
        country = country.upper()
        if country not in seed.COUNTRIES:
            raise ValueError(f"unknown country {country!r}; known: {sorted(seed.COUNTRIES)}")
        names = seed.normalise_modules(modules)
        with self.lock:
            number = next(_AGREEMENT_NUMBERS)
            token = grant_token or self._grant_token(number, country)
            if token in self.agreements:
                raise ValueError(f"grant token {token!r} is already in use")
            # Seeded by its place in this simulator: the same set-up gives the same data.
            ref = seed.build_reference(country, 700001 + len(self.agreements))
            agreement = Agreement(token, number, country, names, ref, copy.deepcopy(ref))
            self.agreements[token] = agreement
        return token

    def revoke_grant(self, grant_token: str) -> None:
        with self.lock:
            self._agreement(grant_token).revoked = True

    def set_modules(self, grant_token: str, modules: list[str]) -> None:
        names = seed.normalise_modules(modules)
        with self.lock:
            self._agreement(grant_token).modules = names

    def installation_url(self, redirect_url: str, base_url: str = "") -> str:
        """The simulator's stand-in for requestaccess.aspx; prefix it with the server URL."""
        query = urlencode({"appPublicToken": self.app_public_token, "redirectUrl": redirect_url})
        return f"{base_url.rstrip('/')}/_control/install?{query}"

    def state_dump(self) -> dict[str, Any]:
        with self.lock:
            return {token: a.dump() for token, a in self.agreements.items()}

    def reset(self) -> None:
        """Forget documents written through the API; agreements and reference data stay."""
        with self.lock:
            for agreement in self.agreements.values():
                agreement.reset_documents()

    # -- request plumbing -------------------------------------------------------------------

    def _grant_token(self, number: int, country: str) -> str:
        digest = hashlib.sha256(f"{self.app_secret_token}:{country}:{number}".encode())
        return f"{country.lower()}{number}-{digest.hexdigest()[:32]}"

    def _agreement(self, grant_token: str) -> Agreement:
        agreement = self.agreements.get(grant_token)
        if agreement is None:
            raise KeyError(f"unknown agreement grant token {grant_token!r}")
        return agreement

    def _fair_use_error(self) -> ApiError:
        message = (
            f"Too many requests. The fair use limit of {self.rate_limit_per_day} API calls "
            "per 24 hours for this agreement has been exceeded."
        )
        hint = "Spread the calls over time and cache reference data."
        return ApiError(429, ErrorCode.FAIR_USE, message, hint)

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code != 405:
            return error_response(not_found(f"The resource {request.url.path}"))
        message = f"The HTTP method {request.method} is not allowed on {request.url.path}."
        hint = "There is no PATCH: PUT the whole document. Booked invoices cannot be changed."
        return error_response(ApiError(405, ErrorCode.METHOD, message, hint, None, exc.headers))

    async def authorize(self, request: Request, module: str | None) -> Call:
        secret = request.headers.get("x-appsecrettoken")
        grant = request.headers.get("x-agreementgranttoken")
        with self.lock:
            agreement = self._check_tokens(secret, grant)
            self._count_call(agreement)
            if module and module not in agreement.modules:
                raise module_error(module)
        return Call(
            agreement=agreement,
            base=str(request.base_url).rstrip("/"),
            url=str(request.url),
            path=request.url.path,
            query=request.query_params,
            params=request.path_params,
            body=await read_body(request),
        )

    def _check_tokens(self, secret: str | None, grant: str | None) -> Agreement:
        hint = "Send the X-AppSecretToken and X-AgreementGrantToken headers."
        if not secret or not grant:
            missing = "X-AppSecretToken" if not secret else "X-AgreementGrantToken"
            raise ApiError(401, ErrorCode.UNAUTHORIZED, f"The {missing} header is missing.", hint)
        if secret != self.app_secret_token:
            raise ApiError(401, ErrorCode.UNAUTHORIZED, "The X-AppSecretToken is not valid.", hint)
        agreement = self.agreements.get(grant)
        if agreement is None or agreement.revoked:
            message = "The X-AgreementGrantToken is not valid; the grant may have been revoked."
            hint = "The customer must install the app again to issue a new grant token."
            raise ApiError(401, ErrorCode.UNAUTHORIZED, message, hint)
        return agreement

    def _count_call(self, agreement: Agreement) -> None:
        now = self.clock()
        day = now.date().isoformat()
        agreement.calls[day] = agreement.calls.get(day, 0) + 1
        if agreement.calls[day] > self.rate_limit_per_day:
            midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), now.tzinfo)
            err = self._fair_use_error()
            err.headers["Retry-After"] = str(max(1, int((midnight - now).total_seconds())))
            raise err

    def run(self, handler: Handler, call: Call) -> Reply:
        with self.lock:
            return handler(call)


def serve(
    port: int,
    agreements: list[tuple[str, str]] | None = None,
    host: str = "127.0.0.1",
    **options: Any,
) -> None:
    """Foreground server for `ledgerpush simulate economic --port P`. `agreements` are
    (country, grant token) pairs; by default DK "demo-dk", NO "demo-no" and SE "demo-se"."""
    sim = EconomicSimulator(**options)
    for country, grant in agreements or DEFAULT_AGREEMENTS:
        sim.add_agreement(country, grant_token=grant)
    SimulatorServer(sim.app, host=host, port=port).serve_forever()
