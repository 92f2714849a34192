"""The e-conomic simulator's error answers: codes, the annotated 400 format and the
issue collector that builds it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

Doc = dict[str, Any]
Path = tuple[str | int, ...]


class ErrorCode:
    # Shown in introduction.md:
    NOT_EXIST = "E06000"
    NO_IDENTIFIER = "E04500"
    QUANTITY_REQUIRED = "E04730"
    SCALE = "E04740"
    # The simulator's own:
    VALIDATION = "E04300"
    WRONG_TYPE = "E00100"
    BAD_DATE = "E00110"
    BAD_ENUM = "E00120"
    REQUIRED = "E00200"
    NULL = "E00210"
    TOO_LONG = "E00300"
    TOO_SHORT = "E00310"
    OUT_OF_RANGE = "E00320"
    ALREADY_EXISTS = "E06010"
    MODULE_PROPERTY = "E06100"
    RULE = "E07000"
    BAD_REQUEST = "E04000"
    UNAUTHORIZED = "E00500"
    MODULE = "E01100"
    NOT_FOUND = "E04040"
    METHOD = "E04050"
    MEDIA_TYPE = "E04150"
    FAIR_USE = "E04290"


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str = "",
        errors: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.hint = status, code, message, hint
        self.errors = errors
        self.headers = dict(headers or {})


def error_body(err: ApiError) -> Doc:
    body: Doc = {
        "message": err.message,
        "errorCode": err.code,
        "developerHint": err.hint,
        "logId": str(uuid.uuid4()),
        "httpStatusCode": err.status,
    }
    if err.errors is not None:
        body["errors"] = err.errors
    body["logTime"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return body


def not_found(what: str) -> ApiError:
    return ApiError(404, ErrorCode.NOT_FOUND, f"{what} not found.", "Use the links the API gives.")


def bad_request(message: str, hint: str = "Please check your request.") -> ApiError:
    return ApiError(400, ErrorCode.BAD_REQUEST, message, hint)


# --- annotated errors -----------------------------------------------------------------------

_MISSING = object()


class Issues:
    """Collects validation errors by payload path and renders them the way e-conomic does:
    a copy of the payload's shape with failing properties replaced by `{"errors": [...]}`,
    array items as `{"arrayIndex": i, ...}`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.items: list[tuple[Path, Doc]] = []

    def add(
        self,
        path: Path,
        code: str,
        message: str,
        value: Any = _MISSING,
        hint: str = "Please check your request data.",
    ) -> None:
        error: Doc = {"errorCode": code, "message": message}
        if value is not _MISSING:
            error["value"] = value
        error["developerHint"] = hint
        self.items.append((path, error))

    def missing(self, path: Path, why: str = "") -> None:
        self.add(path, ErrorCode.REQUIRED, f"Property {path[-1]} is required{why}.")

    def not_exist(self, path: Path, value: Any, collection: str) -> None:
        hint = f"Find a list of resources at {self.base}/{collection}."
        self.add(path, ErrorCode.NOT_EXIST, f"{path[-1]} does not exist.", value, hint)

    def rule(self, path: Path, message: str, value: Any = _MISSING) -> None:
        self.add(path, ErrorCode.RULE, message, value)

    def raise_if_any(self) -> None:
        if self.items:
            raise ApiError(
                400,
                ErrorCode.VALIDATION,
                "Validation error.",
                "Inspect validation errors and correct your request.",
                errors=annotate(self.items),
            )


def annotate(items: Iterable[tuple[Path, Doc]]) -> Any:
    root: Doc = {}
    for path, error in items:
        node = root
        segments: Path = ("_", *path)
        i = 0
        while i < len(segments):
            key, nxt = segments[i], segments[i + 1] if i + 1 < len(segments) else None
            if isinstance(nxt, int):
                node, i = _array_item(node.setdefault(str(key), []), nxt), i + 2
            else:
                node, i = node.setdefault(str(key), {}), i + 1
        node.setdefault("errors", []).append(error)
    return root["_"]


def _array_item(items: list[Doc], index: int) -> Doc:
    for item in items:
        if item["arrayIndex"] == index:
            return item
    item = {"arrayIndex": index}
    items.append(item)
    items.sort(key=lambda x: int(x["arrayIndex"]))
    return item


def module_error(module: str) -> ApiError:
    message = f"The agreement does not have the {module} module, which this endpoint requires."
    hint = "The customer must add the module to the e-conomic subscription; see /self modules."
    return ApiError(403, ErrorCode.MODULE, message, hint)
