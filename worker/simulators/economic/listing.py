"""Collections: `skippages`/`pagesize` paging, `filter=`/`sort=`, and the pagination block."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, urlencode

from worker.simulators.economic.errors import Doc, bad_request
from worker.simulators.economic.filtering import (
    QueryError,
    matches,
    sort_documents,
    validate_filter,
)
from worker.simulators.economic.state import Call, Reply, linked_doc

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000


def _query_int(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be an integer.") from exc


def collection(
    call: Call,
    docs: Iterable[Doc],
    filters: Mapping[str, str],
    sorts: Mapping[str, str] | None = None,
    render: Callable[[Doc], Doc] | None = None,
) -> Reply:
    """One page of a collection (introduction.md: "Pagination", "Filtering", "Sorting")."""
    skip = _query_int(call.query, "skippages", 0)
    size = _query_int(call.query, "pagesize", DEFAULT_PAGE_SIZE)
    if not 1 <= size <= MAX_PAGE_SIZE or skip < 0:
        message = f"pagesize must be between 1 and {MAX_PAGE_SIZE}, skippages at least 0."
        raise bad_request(message, "Follow pagination.nextPage through larger collections.")
    everything = list(docs)
    selected = filtered(call, everything, filters)
    if call.query.get("sort"):
        selected = _sorted(selected, call.query["sort"], filters if sorts is None else sorts)
    page = selected[skip * size : (skip + 1) * size]
    draw = render or (lambda d: linked_doc(d, call.base))
    body = {
        "collection": [draw(d) for d in page],
        "pagination": _pagination(call, skip, size, len(selected), len(everything)),
        "self": call.url,
    }
    return Reply(200, body)


def filtered(call: Call, docs: list[Doc], filters: Mapping[str, str]) -> list[Doc]:
    text = call.query.get("filter")
    if not text:
        return docs
    try:
        node = validate_filter(text, filters)
        return [d for d in docs if matches(d, node, filters)]
    except QueryError as exc:
        raise bad_request(str(exc), "See the collection's filterable properties.") from exc


def _sorted(docs: list[Doc], sort: str, sorts: Mapping[str, str]) -> list[Doc]:
    try:
        return sort_documents(docs, sort, sorts)
    except QueryError as exc:
        raise bad_request(str(exc), "See the collection's sortable properties.") from exc


def _pagination(call: Call, skip: int, size: int, results: int, unfiltered: int) -> Doc:
    last = max(0, (results - 1) // size)
    extra = {k: call.query[k] for k in ("filter", "sort") if call.query.get(k)}

    def page(number: int) -> str:
        query = urlencode({"skippages": number, "pagesize": size, **extra}, quote_via=quote)
        return f"{call.base}{call.path}?{query}"

    info: Doc = {
        "maxPageSizeAllowed": MAX_PAGE_SIZE,
        "skipPages": skip,
        "pageSize": size,
        "results": results,
        "resultsWithoutFilter": unfiltered,
        "firstPage": page(0),
    }
    if skip > 0:
        info["previousPage"] = page(min(skip - 1, last))
    if skip < last:
        info["nextPage"] = page(skip + 1)
    info["lastPage"] = page(last)
    return info
