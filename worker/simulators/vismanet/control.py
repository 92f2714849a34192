"""`/_control` routes: what tests and the CLI use to drive the simulator (faults, config,
apps, tenants and approvals, tokens, licences, webhook subscriptions, stats, reset)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulators.common import CONTROL_PREFIX
from worker.simulators.vismanet.views import document, payment, to_json

if TYPE_CHECKING:
    from worker.simulators.vismanet.simulator import VismaNetSimulator

Endpoint = Callable[[Request], Awaitable[Response]]


def _answer(payload: Any, status: int = 200) -> Response:
    return Response(to_json(payload), status, media_type="application/json")


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    return data if isinstance(data, dict) else {}


def _guarded(handler: Callable[[dict[str, Any]], Any]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            data = await _json(request)
            data.update(request.path_params)
            return _answer(handler(data))
        except (KeyError, ValueError, TypeError) as error:
            return _answer({"error": str(error)}, 400)

    return endpoint


def routes(sim: VismaNetSimulator) -> list[Route]:
    def state(_: dict[str, Any]) -> Any:
        with sim.lock:
            return {
                tid: {
                    "customers": list(c.customers.values()),
                    "documents": [document(c, d) for d in c.documents.values()],
                    "payments": [payment(c, p) for p in c.payments.values()],
                }
                for tid, c in sim.companies.items()
            }

    def faults(data: dict[str, Any]) -> Any:
        sim.faults.update(data)
        return sim.faults.as_dict()

    def config(data: dict[str, Any]) -> Any:
        page_sizes = data.pop("max_page_sizes", None)
        sim.update_config(data)
        if page_sizes is not None:
            sim.max_page_sizes = {str(k).lower(): int(v) for k, v in page_sizes.items()}
        return {**sim.config.as_dict(), "max_page_sizes": sim.max_page_sizes}

    def companies(data: dict[str, Any]) -> Any:
        if "tenant_id" in data:
            sim.add_company(str(data["tenant_id"]), str(data.get("name", "Demo AS")))
        if "contract_tenant_id" in data:
            sim.add_contract_tenant(str(data["contract_tenant_id"]))
        return {"companies": sorted(sim.companies), "tenants": sorted(sim.identity.tenants)}

    def apps(data: dict[str, Any]) -> Any:
        sim.add_app(str(data["client_id"]), str(data["client_secret"]))
        return {"client_id": data["client_id"]}

    def approval(data: dict[str, Any]) -> Any:
        with sim.lock:
            sim.identity.set_approval(
                str(data["client_id"]), str(data["tenant_id"]), bool(data["approved"])
            )
        return {"approved": bool(data["approved"])}

    def expire(data: dict[str, Any]) -> Any:
        with sim.lock:
            sim.identity.expire(data.get("tenant_id"))
        return {"expired": True}

    def license_(data: dict[str, Any]) -> Any:
        with sim.lock:
            sim.companies[str(data["tenant_id"])].licensed = bool(data["licensed"])
        return {"licensed": bool(data["licensed"])}

    def subscribe(data: dict[str, Any]) -> Any:
        sub = sim.webhooks.subscribe(str(data["url"]), str(data["secret"]), data.get("events"),
                                     data.get("tenant_id"))  # fmt: skip
        return {"id": sub.id}

    def stats(_: dict[str, Any]) -> Any:
        return {"requests": sim.log.snapshot(), "token_calls": sim.identity.calls}

    def reset(_: dict[str, Any]) -> Any:
        sim.reset()
        return {"reset": True}

    def reset_stats(_: dict[str, Any]) -> Any:
        sim.log.reset()
        return {"reset": True}

    def run_background(_: dict[str, Any]) -> Any:
        sim.background.run_due()
        return {"jobs": len(sim.background.jobs)}

    def get_or_put(current: Callable[[dict[str, Any]], Any]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if request.method == "GET":
                return _answer(current({}))
            return await _guarded(current)(request)

        return endpoint

    c = CONTROL_PREFIX
    return [
        Route(f"{c}/state", _guarded(state), methods=["GET"]),
        Route(f"{c}/faults", get_or_put(faults), methods=["GET", "PUT"]),
        Route(f"{c}/config", get_or_put(config), methods=["GET", "PUT"]),
        Route(f"{c}/companies", get_or_put(companies), methods=["GET", "POST"]),
        Route(f"{c}/apps", _guarded(apps), methods=["POST"]),
        Route(f"{c}/approval", _guarded(approval), methods=["PUT"]),
        Route(f"{c}/expire-tokens", _guarded(expire), methods=["POST"]),
        Route(f"{c}/license", _guarded(license_), methods=["PUT"]),
        Route(f"{c}/webhooks", _guarded(subscribe), methods=["POST"]),
        Route(
            f"{c}/webhooks/deliveries", _guarded(lambda _: sim.webhooks.snapshot()), methods=["GET"]
        ),
        Route(f"{c}/stats", _guarded(stats), methods=["GET"]),
        Route(
            f"{c}/stats/reset",
            _guarded(reset_stats),
            methods=["POST"],
        ),
        Route(f"{c}/reset", _guarded(reset), methods=["POST"]),
        Route(f"{c}/background/run", _guarded(run_background), methods=["POST"]),
    ]
