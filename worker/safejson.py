"""JSON from outside, read with limits: one loader for every door a job comes in by
(`ledgerpush enqueue`, the HTTP API, the `ledgerpush.ingest` list).

Python's `json` parses recursively (100,000 nested brackets raise RecursionError, and
whatever holds the result later may recurse too), turns `NaN`/`Infinity` and numbers like
`1e999` into floats no database column or JSON writer accepts, converts integers of
thousands of digits in quadratic time (or refuses them with a ValueError), keeps the last
of duplicate keys silently, and lets `"\\ud800"` through as a string that cannot be
encoded as UTF-8. Here each of those is refused before anything else reads the value:

- more than `max_bytes` (the caller's limit) or nested deeper than `MAX_DEPTH`;
- `NaN`, `Infinity`, `-Infinity`; an integer of more than `MAX_INT_DIGITS` digits; a number
  beyond the range of a double;
- a key that appears twice in one object;
- an unpaired surrogate, a control or a bidirectional-control character in a key.

Errors name where they are (`invoice.lines.0.unit_price`), like the job contract's.
Texts (values) are checked by the contract itself (worker/jobs.py), which knows which
fields may hold line breaks.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 32  # a job is 6 levels deep; anything near this limit is not a job
MAX_INT_DIGITS = 20
MAX_JOB_BYTES = 2_000_000  # 500 lines of 2,000-character descriptions fit
MAX_ERRORS = 20
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_BAD_KEY = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


class UnsafeJSON(ValueError):
    """The text is not JSON, or JSON this loader refuses; `problems` say where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


@dataclass(frozen=True)
class _Refused:
    """Put in place of a refused value while parsing; reported with its path afterwards."""

    message: str


def loads(data: str | bytes, max_bytes: int = MAX_JOB_BYTES) -> Any:
    """Parse `data` or raise UnsafeJSON naming each refused value's place."""
    try:
        value = parse(data, max_bytes)
    except json.JSONDecodeError as exc:
        raise UnsafeJSON([Problem("(body)", not_json(exc))]) from None
    found = problems(value)
    if found:
        raise UnsafeJSON(found)
    return value


def parse(data: str | bytes, max_bytes: int = MAX_JOB_BYTES) -> Any:
    """The value, with refused values left in it as markers for `problems` to name (so a
    JSON array of jobs can be taken item by item). Raises UnsafeJSON for input refused
    as a whole (too large, too deep, not UTF-8) and json.JSONDecodeError for not JSON."""
    text = _text(data, max_bytes)
    _check_depth(text)
    return json.loads(
        text,
        parse_constant=_constant,
        parse_int=_integer,
        parse_float=_float,
        object_pairs_hook=_object,
    )


def problems(value: Any) -> list[Problem]:
    """What `parse` refused in `value` (at most MAX_ERRORS), each with its place."""
    return list(itertools.islice(_refused(value, ""), MAX_ERRORS))


def not_json(exc: json.JSONDecodeError) -> str:
    where = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno}, column {exc.colno}"
    return f"not JSON ({where}: {exc.msg})"


def _text(data: str | bytes, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise UnsafeJSON([Problem("(body)", f"larger than {max_bytes} bytes")])
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeJSON([Problem("(body)", f"not UTF-8 (byte {exc.start})")]) from None


def _check_depth(text: str) -> None:
    """Count brackets outside strings, without recursion, and stop at the limit."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - text.rfind("\n", 0, match.start())
                message = f"nested deeper than {MAX_DEPTH} levels (line {line}, column {column})"
                raise UnsafeJSON([Problem("(body)", message)])
        elif token in "]}":
            depth -= 1


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON allows")


def _integer(digits: str) -> int | _Refused:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        return _Refused(f"a number of more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _float(text: str) -> float | _Refused:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Refused("a number beyond the range of a double")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if _BAD_KEY.search(key):
            result[_BAD_KEY.sub("?", key)] = _Refused(
                "the key holds a control, bidirectional-control or unpaired surrogate character"
            )
        elif key in result:
            result[key] = _Refused("the key appears more than once")
        else:
            result[key] = value
    return result


def _refused(value: Any, path: str) -> Iterator[Problem]:
    """Refused values and unencodable strings; recursion is bounded by MAX_DEPTH."""
    if isinstance(value, _Refused):
        yield Problem(path or "(body)", value.message)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _refused(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _refused(item, f"{path}.{index}" if path else str(index))
    elif isinstance(value, str) and _BAD_KEY.search(value) and _unpaired_surrogate(value):
        yield Problem(path or "(body)", "holds an unpaired surrogate (not encodable as UTF-8)")


def _unpaired_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
