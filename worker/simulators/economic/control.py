"""`/_control` routes of the e-conomic simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlparse

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from worker.simulators.common import CONTROL_PREFIX
from worker.simulators.economic import seed
from worker.simulators.economic.state import to_json

if TYPE_CHECKING:
    from worker.simulators.economic.simulator import EconomicSimulator


def _json(body: Any, status: int = 200) -> Response:
    return Response(to_json(body), status, media_type="application/json")


class ControlRoutes:
    """`/_control`: never faulted, authenticated or counted."""

    def __init__(self, sim: EconomicSimulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        c = CONTROL_PREFIX
        return [
            Route(f"{c}/state", self.state, methods=["GET"]),
            Route(f"{c}/reset", self.reset, methods=["POST"]),
            Route(f"{c}/faults", self.faults, methods=["GET", "PUT"]),
            Route(f"{c}/stats", self.stats, methods=["GET"]),
            Route(f"{c}/stats/reset", self.stats_reset, methods=["POST"]),
            Route(f"{c}/agreements", self.agreements, methods=["GET", "POST"]),
            Route(f"{c}/agreements/{{grant}}/revoke", self.revoke, methods=["POST"]),
            Route(f"{c}/agreements/{{grant}}/modules", self.modules, methods=["PUT"]),
            Route(f"{c}/install", self.install, methods=["GET"]),
        ]

    async def state(self, request: Request) -> Response:
        return _json(self.sim.state_dump())

    async def reset(self, request: Request) -> Response:
        self.sim.reset()
        return _json({"reset": True})

    async def faults(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.sim.faults.update(await request.json())
            except (ValueError, TypeError, AttributeError) as exc:
                return _json({"message": str(exc)}, 400)
        return _json(self.sim.faults.as_dict())

    async def stats(self, request: Request) -> Response:
        with self.sim.lock:
            calls = {token: dict(a.calls) for token, a in self.sim.agreements.items()}
        return _json({**self.sim.log.snapshot(), "callsPerAgreement": calls})

    async def stats_reset(self, request: Request) -> Response:
        self.sim.log.reset()
        with self.sim.lock:
            for agreement in self.sim.agreements.values():
                agreement.calls.clear()
        return _json({"reset": True})

    async def agreements(self, request: Request) -> Response:
        if request.method == "GET":
            with self.sim.lock:
                rows = [
                    {"grant_token": token, "country": a.country, "agreementNumber": a.number,
                     "modules": a.modules, "revoked": a.revoked}
                    for token, a in self.sim.agreements.items()
                ]  # fmt: skip
            return _json(rows)
        try:
            body = await request.json()
            country = str(body.get("country", "DK"))
            token = self.sim.add_agreement(country, body.get("modules"), body.get("grant_token"))
        except (ValueError, TypeError, AttributeError) as exc:
            return _json({"message": str(exc)}, 400)
        return _json({"grant_token": token}, 201)

    async def revoke(self, request: Request) -> Response:
        try:
            self.sim.revoke_grant(request.path_params["grant"])
        except KeyError as exc:
            return _json({"message": str(exc)}, 404)
        return _json({"revoked": True})

    async def modules(self, request: Request) -> Response:
        try:
            body = await request.json()
            names = list((body.get("modules") if isinstance(body, dict) else body) or [])
            self.sim.set_modules(request.path_params["grant"], names)
        except KeyError as exc:
            return _json({"message": str(exc)}, 404)
        except (ValueError, TypeError) as exc:
            return _json({"message": str(exc)}, 400)
        return _json({"modules": seed.normalise_modules(names)})

    async def install(self, request: Request) -> Response:
        """Stands in for secure.e-conomic.com/secure/api1/requestaccess.aspx: the customer
        accepts, and the browser goes on to redirectUrl?token=<agreement grant token>.
        `agreement` picks an existing grant, or a country for a new agreement (default DK)."""
        query = request.query_params
        if query.get("appPublicToken") != self.sim.app_public_token:
            return _json({"message": "Unknown appPublicToken."}, 400)
        redirect = query.get("redirectUrl")
        if not redirect:
            return _json({"message": "redirectUrl is required."}, 400)
        wanted = query.get("agreement", "DK")
        with self.sim.lock:
            known = wanted in self.sim.agreements
        try:
            token = wanted if known else self.sim.add_agreement(wanted)
        except ValueError as exc:
            return _json({"message": str(exc)}, 400)
        separator = "&" if urlparse(redirect).query else "?"
        return RedirectResponse(f"{redirect}{separator}{urlencode({'token': token})}", 302)
