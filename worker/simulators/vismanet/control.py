"""`/_control` routes of the Visma.net simulator: the shared ones
(worker/simulators/control.py), and its apps, tenants and approvals, tokens, licences,
webhook subscriptions and background jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from worker.simulators.control import ControlApi
from worker.simulators.vismanet.views import document, payment, to_json

if TYPE_CHECKING:
    from worker.simulators.vismanet.simulator import VismaNetSimulator

API = ControlApi(to_json)


def routes(sim: VismaNetSimulator) -> list[Route]:
    def state() -> Any:
        with sim.lock:
            return {
                tid: {
                    "customers": list(c.customers.values()),
                    "documents": [document(c, d) for d in c.documents.values()],
                    "payments": [payment(c, p) for p in c.payments.values()],
                }
                for tid, c in sim.companies.items()
            }

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

    def stats() -> Any:
        return {"requests": sim.log.snapshot(), "token_calls": sim.identity.calls}

    def run_background(_: dict[str, Any]) -> Any:
        sim.background.run_due()
        return {"jobs": len(sim.background.jobs)}

    return [
        *API.common(sim, state=state, stats=stats, config=config),
        API.route("/companies", get=lambda: companies({}), post=companies),
        API.route("/apps", post=apps),
        API.route("/approval", put=approval),
        API.route("/expire-tokens", post=expire),
        API.route("/license", put=license_),
        API.route("/webhooks", post=subscribe),
        API.route("/webhooks/deliveries", get=sim.webhooks.snapshot),
        API.route("/background/run", post=run_background),
    ]
