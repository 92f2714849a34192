"""HTTP glue of the API routes: request bodies, error and reply responses, and the base of
the endpoint groups."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.simulators.economic.errors import ApiError, ErrorCode, bad_request, error_body
from worker.simulators.economic.state import Handler, Reply, to_json

if TYPE_CHECKING:
    from worker.simulators.economic.simulator import EconomicSimulator


async def read_body(request: Request) -> Any:
    if request.method not in ("POST", "PUT"):
        return None
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        message = f"Unsupported media type {media or '(none)'}: this is a JSON API."
        raise ApiError(415, ErrorCode.MEDIA_TYPE, message, "Send Content-Type: application/json.")
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.") from exc


def error_response(err: ApiError) -> Response:
    return Response(to_json(error_body(err)), err.status, err.headers, "application/json")


def reply_response(reply: Reply) -> Response:
    if reply.status == 204:
        return Response(status_code=204, headers=reply.headers)
    return Response(to_json(reply.body), reply.status, reply.headers, "application/json")


class RouteGroup:
    """A group of e-conomic endpoints; `route` runs a handler authorised, under the
    simulator's lock, and answers errors in the API's format."""

    def __init__(self, sim: EconomicSimulator) -> None:
        self.sim = sim

    def route(self, path: str, module: str | None = None, **handlers: Handler) -> Route:
        sim = self.sim

        async def endpoint(request: Request) -> Response:
            handler = handlers.get(request.method) or handlers["GET"]  # HEAD
            try:
                call = await sim.authorize(request, module)
                reply = sim.run(handler, call)
            except ApiError as err:
                return error_response(err)
            return reply_response(reply)

        return Route(path, endpoint, methods=list(handlers))
