"""`/_control` routes of the e-conomic simulator: the shared ones
(worker/simulators/control.py), its agreements (grants, modules, revocation) and the
installation page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlparse

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from worker.simulators.common import CONTROL_PREFIX
from worker.simulators.control import Answer, ControlApi, NotFound
from worker.simulators.economic import seed
from worker.simulators.economic.state import to_json

if TYPE_CHECKING:
    from worker.simulators.economic.simulator import EconomicSimulator

API = ControlApi(to_json, error_key="message")


def routes(sim: EconomicSimulator) -> list[Route]:
    def stats() -> Any:
        with sim.lock:
            calls = {token: dict(a.calls) for token, a in sim.agreements.items()}
        return {**sim.log.snapshot(), "callsPerAgreement": calls}

    def reset_agreement_calls() -> None:
        with sim.lock:
            for agreement in sim.agreements.values():
                agreement.calls.clear()

    def agreements() -> Any:
        with sim.lock:
            return [
                {"grant_token": token, "country": a.country, "agreementNumber": a.number,
                 "modules": a.modules, "revoked": a.revoked}
                for token, a in sim.agreements.items()
            ]  # fmt: skip

    def add_agreement(data: dict[str, Any]) -> Any:
        country = str(data.get("country", "DK"))
        token = sim.add_agreement(country, data.get("modules"), data.get("grant_token"))
        return Answer({"grant_token": token}, 201)

    def revoke(data: dict[str, Any]) -> Any:
        try:
            sim.revoke_grant(data["grant"])
        except KeyError as exc:
            raise NotFound(str(exc)) from None
        return {"revoked": True}

    def modules(data: dict[str, Any]) -> Any:
        names = list(data.get("modules", data.get("body")) or [])
        try:
            sim.set_modules(data["grant"], names)
        except KeyError as exc:
            raise NotFound(str(exc)) from None
        return {"modules": seed.normalise_modules(names)}

    async def install(request: Request) -> Response:
        """Stands in for secure.e-conomic.com/secure/api1/requestaccess.aspx: the customer
        accepts, and the browser goes on to redirectUrl?token=<agreement grant token>.
        `agreement` picks an existing grant, or a country for a new agreement (default DK)."""
        query = request.query_params
        if query.get("appPublicToken") != sim.app_public_token:
            return API.answer({"message": "Unknown appPublicToken."}, 400)
        redirect = query.get("redirectUrl")
        if not redirect:
            return API.answer({"message": "redirectUrl is required."}, 400)
        wanted = query.get("agreement", "DK")
        with sim.lock:
            known = wanted in sim.agreements
        try:
            token = wanted if known else sim.add_agreement(wanted)
        except ValueError as exc:
            return API.answer({"message": str(exc)}, 400)
        separator = "&" if urlparse(redirect).query else "?"
        return RedirectResponse(f"{redirect}{separator}{urlencode({'token': token})}", 302)

    grant = "/agreements/{grant}"
    return [
        *API.common(sim, state=sim.state_dump, stats=stats, reset_stats=reset_agreement_calls),
        API.route("/agreements", get=agreements, post=add_agreement),
        API.route(f"{grant}/revoke", post=revoke),
        API.route(f"{grant}/modules", put=modules),
        Route(f"{CONTROL_PREFIX}/install", install, methods=["GET"]),
    ]
