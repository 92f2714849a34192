"""The FastAPI app: pages, JSON API, OAuth connect routes, /metrics and /health.

Everything needs a session or a bearer API key except /health, /metrics (when
LEDGERPUSH_METRICS_PUBLIC, the default), the OAuth callbacks, the sign-in page and
static files.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from worker.jobs import JOB_ADAPTER, FieldError
from worker.ledger.db import ping
from worker.settings import get_settings
from worker.transport.redis_client import get_redis
from worker.web import (
    api,
    event_pages,
    events_api,
    inbound,
    operator_connect,
    pages,
    poison_pages,
    session_pages,
    tenant_pages,
    webhooks_api,
)
from worker.web.access import JOBS_READ, TENANTS_ADMIN, Forbidden, allow, public
from worker.web.access_log import access_log
from worker.web.auth import CsrfRefused, NotAuthenticated, require_auth
from worker.web.connect import callback_router as connect_callback_router
from worker.web.connect import router as connect_router
from worker.web.metrics import render as render_metrics
from worker.web.templating import render

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api") or path == "/metrics"


async def _not_authenticated(request: Request, _exc: Exception) -> Response:
    if _wants_json(request):
        return JSONResponse(
            {"detail": "sign in or send Authorization: Bearer <api key>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/login?next=" + quote(asked, safe="/")
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _csrf_refused(request: Request, _exc: Exception) -> Response:
    message = "missing or wrong CSRF token; reload the page and try again"
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=403)
    return render(request, "message.html", {"title": "Refused", "text": message}, 403)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Forbidden)
    if _wants_json(request):
        return JSONResponse({"detail": exc.message}, status_code=403)
    if request.headers.get("hx-request"):
        return Response(exc.message, status_code=403)
    return render(request, "message.html", {"title": "Not allowed", "text": exc.message}, 403)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            "field": ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path"))
            or "(body)",
            "message": str(e["msg"]),
        }
        for e in exc.errors()
    ]
    return JSONResponse({"detail": problems}, status_code=422)


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CSP)
    if not request.url.path.startswith("/static"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _health() -> JSONResponse:
    checks = {"database": "ok", "redis": "ok"}
    try:
        ping()
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        get_redis().ping()
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, 200 if ok else 503)


def _metrics_public() -> bool:
    return get_settings().metrics_public


async def _metrics() -> Response:
    return Response(render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _docs_page() -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>ledgerpush API</title>"
        "<link rel='stylesheet' href='/static/swagger-ui.css'></head><body>"
        "<div id='swagger-ui'></div><script src='/static/swagger-ui-bundle.js'></script>"
        "<script src='/static/swagger-init.js'></script></body></html>"
    )


def _document_field_problems(document: dict[str, Any]) -> None:
    """Every 422 has the shape `_invalid_request` answers with, not FastAPI's default."""
    schemas = document["components"]["schemas"]
    schemas["FieldProblem"] = FieldError.model_json_schema()
    schemas["FieldProblems"] = {
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "array", "items": {"$ref": "#/components/schemas/FieldProblem"}}
        },
    }
    ref = {"$ref": "#/components/schemas/FieldProblems"}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"]["content"] = {"application/json": {"schema": ref}}
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the job contract (pydantic's schema) as components."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title="ledgerpush API",
        version="1",
        description=api.__doc__ or "",
        routes=app.routes,
    )
    job = JOB_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(job.pop("$defs", {}))
    schemas["Job"] = job
    _document_field_problems(document)
    document["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
    document["security"] = [{"apiKey": []}]
    app.openapi_schema = document
    return document


def _add_system_routes(app: FastAPI) -> None:
    auth = [Depends(require_auth), *allow()]
    app.add_api_route(
        "/health", _health, methods=["GET"], include_in_schema=False, dependencies=public()
    )
    app.add_api_route(
        "/metrics",
        _metrics,
        methods=["GET"],
        include_in_schema=False,
        dependencies=allow(JOBS_READ, public_if=_metrics_public),
    )
    app.add_api_route(
        "/api/docs", _docs_page, methods=["GET"], include_in_schema=False, dependencies=auth
    )

    def openapi_json() -> JSONResponse:
        return JSONResponse(openapi_document(app))

    app.add_api_route(
        "/api/openapi.json",
        openapi_json,
        methods=["GET"],
        include_in_schema=False,
        dependencies=auth,
    )


def create_app() -> FastAPI:
    app = FastAPI(
        title="ledgerpush",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.add_exception_handler(NotAuthenticated, _not_authenticated)
    app.add_exception_handler(CsrfRefused, _csrf_refused)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.middleware("http")(_security_headers)
    app.middleware("http")(access_log)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    _add_system_routes(app)
    app.include_router(session_pages.public)
    app.include_router(session_pages.protected)
    # Callbacks first: /connect/{provider}/{tenant_id} would match them too.
    app.include_router(connect_callback_router)
    app.include_router(inbound.router)
    app.include_router(connect_router, dependencies=[Depends(require_auth), *allow(TENANTS_ADMIN)])
    app.include_router(api.router)
    app.include_router(events_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(event_pages.router)
    app.include_router(pages.router)
    app.include_router(poison_pages.router)
    app.include_router(operator_connect.router)
    app.include_router(tenant_pages.router)
    return app


app = create_app()
