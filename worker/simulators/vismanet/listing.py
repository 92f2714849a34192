"""Lists: bare JSON arrays whose items carry `metadata {totalCount, maxPageSize}`,
`pageNumber`/`pageSize` with a per-endpoint maximum (silently cut), a small default page
when an endpoint that takes paging parameters is asked without them (silently partial;
endpoints without them answer whole), `lastModifiedDateTime` honoured only with
its `...Condition`; and the paged-object form (`/v1/creditTerm`)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from worker.simulators.modelcheck import parse_datetime
from worker.simulators.vismanet.errors import message_error

_CONDITIONS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le,
}  # fmt: skip
DEFAULT_MAX_PAGE_SIZE = 1000
#: The ERP's page limits are not published; these are the simulator's choice.
MAX_PAGE_SIZES = {
    "customerinvoice": 500, "customercreditnote": 500, "customerpayment": 500, "inventory": 500,
}  # fmt: skip


def max_page_size(resource: str, overrides: dict[str, int]) -> int:
    key = resource.lower()
    return overrides.get(key) or MAX_PAGE_SIZES.get(key, DEFAULT_MAX_PAGE_SIZE)


def _int_param(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name.lower())
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise message_error(400, f"The value '{raw}' is not valid for {name}.") from None
    if value < 1:
        raise message_error(400, f"{name} must be greater than zero.")
    return value


def page_window(query: dict[str, str], max_size: int, default_size: int) -> tuple[int, int]:
    number = _int_param(query, "pageNumber") or 1
    size = _int_param(query, "pageSize")
    return number, min(size or default_size, max_size)


def paged(items: list[dict[str, Any]], query: dict[str, str], max_size: int,
          default_size: int, with_metadata: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    number, size = page_window(query, max_size, default_size)
    window = items[(number - 1) * size : number * size]
    if not with_metadata:
        return window
    metadata = {"totalCount": len(items), "maxPageSize": max_size}
    return [{**item, "metadata": metadata} for item in window]


def whole(items: list[dict[str, Any]], max_size: int, with_metadata: bool = True
          ) -> list[dict[str, Any]]:  # fmt: skip
    """A list whose endpoint takes no paging parameters: every item."""
    if not with_metadata:
        return items
    metadata = {"totalCount": len(items), "maxPageSize": max_size}
    return [{**item, "metadata": metadata} for item in items]


def paged_object(items: list[dict[str, Any]], query: dict[str, str], max_size: int,
                 default_size: int) -> dict[str, Any]:  # fmt: skip
    number, size = page_window(query, max_size, default_size)
    return {
        "pageNumber": number,
        "pageSize": size,
        "totalCount": len(items),
        "records": items[(number - 1) * size : number * size],
    }


def modified_since(items: Iterable[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """Filters on lastModifiedDateTime / createdDateTime, each only when its condition
    comes with it (the two parameters are "mutually inclusive")."""
    rows = list(items)
    for name in ("lastModifiedDateTime", "createdDateTime"):
        raw, condition = query.get(name.lower()), query.get(f"{name}Condition".lower())
        if not raw or not condition:
            continue
        compare = _CONDITIONS.get(condition.strip())
        if compare is None:
            raise message_error(400, f"{name}Condition '{condition}' is not valid.")
        since = _when(raw)
        rows = [r for r in rows if r.get(name) and compare(_when(r[name]), since)]
    return rows


def _when(text: str) -> datetime:
    try:
        return parse_datetime(text.replace(" ", "T", 1))
    except ValueError:
        raise message_error(400, f"The date '{text}' is not in an accepted format.") from None


def matching(rows: Iterable[dict[str, Any]], query: dict[str, str],
             filters: dict[str, Callable[[dict[str, Any]], Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """Rows whose value for every given filter parameter equals the parameter (as text,
    case-insensitive); parameters the endpoint does not know are ignored."""
    selected = list(rows)
    for name, getter in filters.items():
        wanted = query.get(name.lower())
        if wanted is None or wanted == "":
            continue
        selected = [r for r in selected if _equal(getter(r), wanted)]
    return selected


def _equal(value: Any, wanted: str) -> bool:
    if isinstance(value, list | set | tuple):
        return any(_equal(v, wanted) for v in value)
    if isinstance(value, bool):
        return str(value).lower() == wanted.lower()
    return value is not None and str(value).lower() == wanted.lower()
