"""The `/_control` routes every simulator serves, built one way: state, reset, faults,
config, stats and stats reset, and each simulator's own (companies, tokens, agreements,
approvals…) as plain handlers. Tests, the demo and the CLI drive the simulators
through them; they are never faulted, authenticated or counted (FaultInjector lets the
prefix through).

A handler takes the request's JSON object (an empty body is `{}`, another JSON value
is under `"body"`) with the path parameters added, and returns what to answer as JSON:
`Answer` for a status other than 200, a Response as it is. It raises `NotFound` for a
404; KeyError, ValueError, TypeError and AttributeError answer 400 with the message.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulators.common import CONTROL_PREFIX, Faults, RequestLog

Handler = Callable[[dict[str, Any]], Any]
Reader = Callable[[], Any]
Endpoint = Callable[[Request], Awaitable[Response]]
BAD_REQUEST = (KeyError, ValueError, TypeError, AttributeError)


class Controlled(Protocol):
    """What the shared routes need of a simulator."""

    faults: Faults
    log: RequestLog

    def reset(self) -> None: ...


class NotFound(LookupError):
    """The thing a control call names does not exist: answered 404."""


@dataclass(frozen=True)
class Answer:
    """A handler's answer with another status than 200."""

    body: Any
    status: int


@dataclass(frozen=True)
class ControlApi:
    """One simulator's way of answering: its JSON encoder (its dates and Decimals) and
    the key its error bodies use (each follows the API it simulates)."""

    dump: Callable[[Any], bytes]
    error_key: str = "error"

    def answer(self, body: Any, status: int = 200) -> Response:
        return Response(self.dump(body), status, media_type="application/json")

    def route(
        self,
        path: str,
        *,
        get: Reader | None = None,
        post: Handler | None = None,
        put: Handler | None = None,
    ) -> Route:
        """`/_control<path>` answering GET with `get()` and POST or PUT with the handler."""
        writes = {"POST": post, "PUT": put}
        methods = [m for m, given in (("GET", get), *writes.items()) if given is not None]

        async def endpoint(request: Request) -> Response:
            if request.method == "GET" and get is not None:
                return self._respond(get())
            handler = writes[request.method]
            assert handler is not None  # starlette routes only the methods listed
            try:
                return self._respond(handler(await _data(request)))
            except NotFound as error:
                return self.answer({self.error_key: str(error)}, 404)
            except BAD_REQUEST as error:
                return self.answer({self.error_key: str(error)}, 400)

        return Route(f"{CONTROL_PREFIX}{path}", endpoint, methods=methods)

    def _respond(self, result: Any) -> Response:
        if isinstance(result, Response):
            return result
        if isinstance(result, Answer):
            return self.answer(result.body, result.status)
        return self.answer(result)

    def common(
        self,
        sim: Controlled,
        *,
        state: Reader,
        stats: Reader,
        reset_stats: Callable[[], None] = lambda: None,
        config: Handler | None = None,
    ) -> list[Route]:
        """The routes every simulator has. `reset_stats` clears what the simulator counts
        besides its request log; `config({})` answers the current configuration."""

        def current_faults() -> Any:
            return sim.faults.as_dict()

        def faults(changes: dict[str, Any]) -> Any:
            sim.faults.update(changes)
            return current_faults()

        def reset(_: dict[str, Any]) -> Any:
            sim.reset()
            return {"reset": True}

        def stats_reset(_: dict[str, Any]) -> Any:
            sim.log.reset()
            reset_stats()
            return {"reset": True}

        routes = [
            self.route("/state", get=state),
            self.route("/reset", post=reset),
            self.route("/faults", get=current_faults, put=faults),
            self.route("/stats", get=stats),
            self.route("/stats/reset", post=stats_reset),
        ]
        if config is not None:
            routes.append(self.route("/config", get=lambda: config({}), put=config))
        return routes


async def _data(request: Request) -> dict[str, Any]:
    raw = await request.body()
    body = json.loads(raw) if raw.strip() else {}
    data = dict(body) if isinstance(body, dict) else {"body": body}
    data.update(request.path_params)
    return data
