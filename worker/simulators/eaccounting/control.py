"""`/_control` routes of the eAccounting simulator: state, reset, faults, config, stats,
companies and their tokens, identity and client secret; never faulted, authenticated or
counted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulators.common import CONTROL_PREFIX
from worker.simulators.eaccounting.routing import json_response, optional_json

if TYPE_CHECKING:
    from worker.simulators.eaccounting.simulator import EAccountingSimulator


class ControlRoutes:
    def __init__(self, sim: EAccountingSimulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        c = CONTROL_PREFIX
        return [
            Route(f"{c}/state", self.state, methods=["GET"]),
            Route(f"{c}/reset", self.reset, methods=["POST"]),
            Route(f"{c}/faults", self.faults, methods=["GET", "PUT"]),
            Route(f"{c}/config", self.config, methods=["GET", "PUT"]),
            Route(f"{c}/stats", self.stats, methods=["GET"]),
            Route(f"{c}/stats/reset", self.stats_reset, methods=["POST"]),
            Route(f"{c}/companies", self.companies, methods=["GET", "POST"]),
            Route(f"{c}/companies/{{company_id}}/tokens", self.tokens, methods=["POST"]),
            Route(f"{c}/companies/{{company_id}}/revoke", self.revoke, methods=["POST"]),
            Route(f"{c}/expire-tokens", self.expire, methods=["POST"]),
            Route(f"{c}/companies/{{company_id}}/identity", self.identity, methods=["PUT"]),
            Route(f"{c}/client", self.client, methods=["PUT"]),
        ]

    async def state(self, request: Request) -> Response:
        return json_response(self.sim.state_dump())

    async def reset(self, request: Request) -> Response:
        self.sim.reset()
        return json_response({"reset": True})

    async def faults(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.sim.faults.update(await request.json())
            except (ValueError, TypeError) as error:
                return json_response({"error": str(error)}, 400)
        return json_response(self.sim.faults.as_dict())

    async def config(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.sim.update_config(await request.json())
            except (ValueError, TypeError) as error:
                return json_response({"error": str(error)}, 400)
        return json_response(self.sim.config.as_dict())

    async def stats(self, request: Request) -> Response:
        return json_response(
            {
                "requests": self.sim.log.snapshot(),
                "token_calls": self.sim.token_calls,
                "token_calls_by_grant": self.sim.token_calls_by_grant,
            }
        )

    async def stats_reset(self, request: Request) -> Response:
        self.sim.log.reset()
        with self.sim.lock:
            self.sim.tokens.calls.clear()
            self.sim.tokens.company_calls.clear()
        return json_response({"reset": True})

    async def companies(self, request: Request) -> Response:
        if request.method == "POST":
            data = await request.json()
            try:
                self.sim.add_company(str(data["company_id"]), str(data["country"]))
            except (KeyError, ValueError) as error:
                return json_response({"error": str(error)}, 400)
            return json_response(
                {"company_id": data["company_id"], "country": data["country"]}, 201
            )
        with self.sim.lock:
            listed = [
                {"company_id": cid, "country": c.country} for cid, c in self.sim.companies.items()
            ]
        return json_response(listed)

    async def tokens(self, request: Request) -> Response:
        data = await optional_json(request)
        try:
            tokens = self.sim.issue_tokens(
                request.path_params["company_id"], list(data.get("scopes", []))
            )
        except (KeyError, ValueError) as error:
            return json_response({"error": str(error)}, 404 if isinstance(error, KeyError) else 400)
        return json_response(tokens)

    async def revoke(self, request: Request) -> Response:
        self.sim.revoke_refresh_tokens(request.path_params["company_id"])
        return json_response({"revoked": True})

    async def identity(self, request: Request) -> Response:
        data = await optional_json(request)
        try:
            identity = self.sim.update_identity(request.path_params["company_id"], dict(data))
        except KeyError as error:
            return json_response({"error": f"no company {error}"}, 404)
        except ValueError as error:
            return json_response({"error": str(error)}, 400)
        return json_response(identity)

    async def client(self, request: Request) -> Response:
        data = await optional_json(request)
        if not isinstance(data.get("client_secret"), str) or not data["client_secret"]:
            return json_response({"error": "client_secret (a non-empty string) is required"}, 400)
        self.sim.set_client_secret(data["client_secret"])
        return json_response({"client_secret_changed": True})

    async def expire(self, request: Request) -> Response:
        data = await optional_json(request)
        self.sim.expire_access_tokens(data.get("company_id"))
        return json_response({"expired": True})
