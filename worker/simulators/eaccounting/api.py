"""The `/v2` resources of the simulated eAccounting API: the endpoint list and its routing,
the call a handler gets, and paging.

Each handler takes an `ApiCall` (company, path parameters, query, parsed JSON body) and
returns `(status, payload)`; it runs under the simulator's state lock. `ENDPOINTS` is the
reference's endpoint list (method, path template, accepted scopes); `HANDLERS` maps the
subset this simulator implements, registered with `route` by `api_masterdata` (reference
data, customers, articles) and `api_invoices` (drafts, invoices, payments).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.simulators.eaccounting.errors import VALIDATION_FAILED, ApiError, not_found
from worker.simulators.eaccounting.filtering import FilterError, compile_filter, order_rows
from worker.simulators.eaccounting.state import ENDPOINTS_FILE, MODELS, Company, public, utc_text

DEFAULT_PAGE_SIZE = 50
#: Not stated by the reference; larger `$pagesize` values are capped to this.
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    scopes: tuple[str, ...]
    pattern: re.Pattern[str]
    variants: tuple[str, ...] = ()

    @property
    def literal_segments(self) -> int:
        return sum(1 for part in self.template.split("/") if part and "{" not in part)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+?)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}/?$", re.IGNORECASE)


def load_endpoints() -> list[Endpoint]:
    raw = json.loads(ENDPOINTS_FILE.read_text(encoding="utf-8"))["endpoints"]
    endpoints = [
        Endpoint(
            e["method"],
            e["path"],
            tuple(dict.fromkeys(e["scopes"])),
            _pattern(e["path"]),
            tuple(e.get("variants") or ()),
        )
        for e in raw
    ]
    endpoints.sort(key=lambda e: (-e.literal_segments, e.template.count("{")))
    return endpoints


ENDPOINTS = load_endpoints()


def match_endpoint(method: str, path: str) -> tuple[Endpoint | None, dict[str, str], set[str]]:
    """The endpoint for this request, its path parameters, and the methods the path allows."""
    allowed: set[str] = set()
    for endpoint in ENDPOINTS:
        found = endpoint.pattern.match(path)
        if found is None:
            continue
        if endpoint.method == method:
            return endpoint, found.groupdict(), allowed
        allowed.add(endpoint.method)
    return None, {}, allowed


@dataclass
class ApiCall:
    company: Company
    params: dict[str, str]
    query: Mapping[str, str]  # keys lower-cased
    body: Any
    now: datetime

    @property
    def ident(self) -> str:
        return next(iter(self.params.values()))

    def flag(self, name: str) -> bool:
        return self.query.get(name.lower(), "").lower() == "true"


Result = tuple[int, Any]
Handler = Callable[[ApiCall], Result]
HANDLERS: dict[tuple[str, str], Handler] = {}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    if not any(e.method == method and e.template == template for e in ENDPOINTS):
        raise ValueError(f"{method} {template} is not in the reference's endpoint list")

    def register(handler: Handler) -> Handler:
        HANDLERS[(method, template)] = handler
        return handler

    return register


# ---------------------------------------------------------------- lists


def paginate(call: ApiCall, items: Iterable[dict[str, Any]], model: str) -> Result:
    types = MODELS.scalar_types(model)
    rows = list(items)
    try:
        if call.query.get("$filter"):
            keep = compile_filter(call.query["$filter"], types)
            rows = [row for row in rows if keep(row)]
        if call.query.get("$orderby"):
            rows = order_rows(rows, call.query["$orderby"], types)
    except FilterError as error:
        raise ApiError(400, VALIDATION_FAILED, str(error), error="InvalidQuery") from None
    page = _positive(call, "$page", 1)
    size = min(_positive(call, "$pagesize", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
    chosen = rows[(page - 1) * size : page * size]
    meta = {
        "CurrentPage": page,
        "PageSize": size,
        "TotalNumberOfPages": math.ceil(len(rows) / size),
        "TotalNumberOfResults": len(rows),
        "ServerTimeUtc": utc_text(call.now),
    }
    return 200, {"Data": [public(row) for row in chosen], "Meta": meta}


def _positive(call: ApiCall, name: str, default: int) -> int:
    raw = call.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ApiError(400, VALIDATION_FAILED, f"{name} must be a whole number of at least 1.")
    return int(raw)


def one(items: Iterable[dict[str, Any]], company: Company, ident: str, what: str) -> dict[str, Any]:
    found = company.find(items, ident)
    if found is None:
        raise not_found(what, ident)
    return found
