"""The Visma.net reference contract as the simulator uses it: the models catalog (write
bodies are checked against it) and the endpoint list (which paths and methods exist)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.simulators.modelcheck import ModelCatalog, Violation

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MODELS_FILE = DATA_DIR / "vismanet_models.json"
ENDPOINTS_FILE = DATA_DIR / "vismanet_endpoints.json"
#: models.json types -> the scalar names `ModelCatalog` knows.
_TYPE_ALIASES = {"float": "double"}


def _load_catalog() -> ModelCatalog:
    models = json.loads(MODELS_FILE.read_text(encoding="utf-8"))["models"]
    for fields in models.values():
        for spec in fields.values():
            base = spec["type"].removesuffix("[]")
            if base in _TYPE_ALIASES:
                spec["type"] = spec["type"].replace(base, _TYPE_ALIASES[base], 1)
    return ModelCatalog(models)


MODELS = _load_catalog()


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    body_model: str | None
    #: The model of the 200 answer ("CustomerDto[]" for lists).
    response_model: str | None
    pattern: re.Pattern[str]
    #: Takes `pageNumber`: only such lists are cut to a default page when it is not sent.
    paged: bool = False


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$", re.IGNORECASE)


def _load_endpoints() -> list[Endpoint]:
    data = json.loads(ENDPOINTS_FILE.read_text(encoding="utf-8"))
    endpoints = []
    for raw in data["endpoints"]:
        body = raw.get("body") or {}
        endpoints.append(
            Endpoint(
                raw["method"],
                raw["path"],
                body.get("type"),
                (raw.get("responses") or {}).get("200"),
                _compile(raw["path"]),
                any(p.get("name") == "pageNumber" for p in raw.get("parameters") or ()),
            )
        )
    # Literal segments win over parameters (`/v1/customer/balance` before `/{customerCd}`).
    endpoints.sort(key=lambda e: (e.template.count("{"), -len(e.template)))
    return endpoints


ENDPOINTS = _load_endpoints()


def match_endpoint(method: str, path: str) -> tuple[Endpoint | None, dict[str, str], bool]:
    """The endpoint for a request, its path parameters, and whether the path exists
    under another method (for 405)."""
    path_exists = False
    for endpoint in ENDPOINTS:
        found = endpoint.pattern.match(path)
        if found is None:
            continue
        if endpoint.method == method:
            return endpoint, found.groupdict(), True
        path_exists = True
    return None, {}, path_exists


def check_body(model: str, body: Any) -> tuple[dict[str, Any], list[Violation]]:
    return MODELS.check(model, body)


def carries_metadata(list_model: str | None) -> bool:
    """Whether the items of a list answer carry `metadata` (only models that have it)."""
    if not list_model:
        return False
    item = list_model.removesuffix("[]")
    return MODELS.has(item) and "metadata" in MODELS.fields(item)
