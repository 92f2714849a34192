"""`/_control` routes of the eAccounting simulator: the shared ones
(worker/simulators/control.py) and its companies and their tokens, identity and client
secret."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from worker.simulators.control import Answer, ControlApi, NotFound
from worker.simulators.eaccounting.state import to_json

if TYPE_CHECKING:
    from worker.simulators.eaccounting.simulator import EAccountingSimulator

API = ControlApi(to_json)


def routes(sim: EAccountingSimulator) -> list[Route]:
    def stats() -> Any:
        return {
            "requests": sim.log.snapshot(),
            "token_calls": sim.token_calls,
            "token_calls_by_grant": sim.token_calls_by_grant,
        }

    def reset_token_calls() -> None:
        with sim.lock:
            sim.tokens.calls.clear()
            sim.tokens.company_calls.clear()

    def config(changes: dict[str, Any]) -> Any:
        sim.update_config(changes)
        return sim.config.as_dict()

    def companies() -> Any:
        with sim.lock:
            return [{"company_id": cid, "country": c.country} for cid, c in sim.companies.items()]

    def add_company(data: dict[str, Any]) -> Any:
        sim.add_company(str(data["company_id"]), str(data["country"]))
        return Answer({"company_id": data["company_id"], "country": data["country"]}, 201)

    def tokens(data: dict[str, Any]) -> Any:
        try:
            return sim.issue_tokens(data["company_id"], list(data.get("scopes", [])))
        except KeyError as error:
            raise NotFound(str(error)) from None

    def revoke(data: dict[str, Any]) -> Any:
        sim.revoke_refresh_tokens(data["company_id"])
        return {"revoked": True}

    def expire(data: dict[str, Any]) -> Any:
        sim.expire_access_tokens(data.get("company_id"))
        return {"expired": True}

    def identity(data: dict[str, Any]) -> Any:
        company_id = data.pop("company_id")
        try:
            return sim.update_identity(company_id, data)
        except KeyError as error:
            raise NotFound(f"no company {error}") from None

    def client(data: dict[str, Any]) -> Any:
        if not isinstance(data.get("client_secret"), str) or not data["client_secret"]:
            raise ValueError("client_secret (a non-empty string) is required")
        sim.set_client_secret(data["client_secret"])
        return {"client_secret_changed": True}

    company = "/companies/{company_id}"
    return [
        *API.common(
            sim, state=sim.state_dump, stats=stats, reset_stats=reset_token_calls, config=config
        ),
        API.route("/companies", get=companies, post=add_company),
        API.route(f"{company}/tokens", post=tokens),
        API.route(f"{company}/revoke", post=revoke),
        API.route("/expire-tokens", post=expire),
        API.route(f"{company}/identity", put=identity),
        API.route("/client", put=client),
    ]
