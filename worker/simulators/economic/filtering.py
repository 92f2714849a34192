"""e-conomic's collection query language, as introduction.md describes it.

`filter=name$eq:Joe$and:(city$like:*port$or:age$lt:40)`: predicates `property$op:value`,
combined with `$and:` / `$or:` (AND binds tighter), parentheses for affinity, escapes
`$$ $( $) $* $, $[ $]`, `$null:` for a missing value, `$in:[1,2]` / `$nin:` on numeric
properties only (at most 200 values). Strings compare case-insensitively. `$like:` uses `*`
as wildcard; without one it means "contains".

`sort=-name,~customerNumber`: `-` descending, `~` alphabetical.

Each collection declares which properties are filterable/sortable and their kind
("string", "number", "date", "bool"); anything else is a 400 (`QueryError`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

OPERATORS = ("$gte:", "$lte:", "$eq:", "$ne:", "$gt:", "$lt:", "$like:", "$in:", "$nin:")
ESCAPABLE = "$()*,[]"
MAX_IN_VALUES = 200
_PROPERTY = re.compile(r"[A-Za-z0-9_.]+")


class QueryError(ValueError):
    """The filter or sort expression is malformed or names a property that isn't allowed."""


class Wildcard:
    """An unescaped `*` inside a `$like:` value."""


WILDCARD = Wildcard()
NULL = object()
Value = list[str | Wildcard]


@dataclass(frozen=True)
class Predicate:
    prop: str
    op: str
    values: tuple[Any, ...]  # NULL, or a parsed Value; several for $in/$nin


@dataclass(frozen=True)
class Combination:
    op: str  # "and" | "or"
    parts: tuple[Node, ...]


Node = Predicate | Combination


def lookup(doc: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path, or None when any step is missing."""
    current: Any = doc
    for part in dotted.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


class _Parser:
    def __init__(self, text: str, kinds: Mapping[str, str]) -> None:
        self.text = text
        self.pos = 0
        self.kinds = kinds

    def parse(self) -> Node:
        node = self._or()
        if self.pos != len(self.text):
            raise QueryError(f"Unexpected text at position {self.pos} in filter.")
        return node

    def _starts(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def _or(self) -> Node:
        parts = [self._and()]
        while self._starts("$or:"):
            self.pos += 4
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Combination("or", tuple(parts))

    def _and(self) -> Node:
        parts = [self._term()]
        while self._starts("$and:"):
            self.pos += 5
            parts.append(self._term())
        return parts[0] if len(parts) == 1 else Combination("and", tuple(parts))

    def _term(self) -> Node:
        if self._starts("("):
            self.pos += 1
            node = self._or()
            if not self._starts(")"):
                raise QueryError("Unbalanced parentheses in filter.")
            self.pos += 1
            return node
        return self._predicate()

    def _predicate(self) -> Predicate:
        match = _PROPERTY.match(self.text, self.pos)
        if not match:
            raise QueryError(f"Expected a property name at position {self.pos} in filter.")
        prop = match.group(0)
        self.pos = match.end()
        op = next((o for o in OPERATORS if self._starts(o)), None)
        if op is None:
            raise QueryError(f"Expected an operator after '{prop}' in filter.")
        self.pos += len(op)
        kind = self.kinds.get(prop)
        if kind is None:
            raise QueryError(f"Property '{prop}' is not filterable on this collection.")
        if op in ("$in:", "$nin:"):
            if kind != "number":
                raise QueryError(f"'{op}' is only allowed on numeric properties, not '{prop}'.")
            return Predicate(prop, op, self._list())
        return Predicate(prop, op, (self._value(stop_at_comma=False),))

    def _list(self) -> tuple[Any, ...]:
        if not self._starts("["):
            raise QueryError("The list of an $in:/$nin: filter must be enclosed in brackets.")
        self.pos += 1
        values = [self._value(stop_at_comma=True)]
        while self._starts(","):
            self.pos += 1
            values.append(self._value(stop_at_comma=True))
        if not self._starts("]"):
            raise QueryError("Unterminated list in $in:/$nin: filter.")
        self.pos += 1
        if len(values) > MAX_IN_VALUES:
            raise QueryError(f"At most {MAX_IN_VALUES} values are allowed in $in:/$nin:.")
        return tuple(values)

    def _value(self, stop_at_comma: bool) -> Any:
        if self._starts("$null:"):
            self.pos += 6
            return NULL
        parts: Value = []
        stops = ",]" if stop_at_comma else ")"
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in stops or self._starts("$and:") or self._starts("$or:"):
                break
            if char == "$":
                parts.append(self._escape())
            elif char == "*":
                parts.append(WILDCARD)
                self.pos += 1
            else:
                parts.append(char)
                self.pos += 1
        return parts

    def _escape(self) -> str:
        nxt = self.text[self.pos + 1 : self.pos + 2]
        if not nxt or nxt not in ESCAPABLE:
            raise QueryError(f"Invalid escape sequence '${nxt}' in filter.")
        self.pos += 2
        return nxt


def parse_filter(text: str, kinds: Mapping[str, str]) -> Node:
    return _Parser(text, kinds).parse()


def _plain(value: Value) -> str:
    return "".join("*" if isinstance(p, Wildcard) else p for p in value)


def _coerce(value: Any, kind: str) -> Any:
    if value is NULL:
        return NULL
    text = _plain(value)
    if kind == "number":
        try:
            return Decimal(text)
        except InvalidOperation as exc:
            raise QueryError(f"'{text}' is not a number.") from exc
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise QueryError(f"'{text}' is not a boolean.")
        return text.lower() == "true"
    return text.casefold()


def _normalise(actual: Any, kind: str) -> Any:
    if actual is None:
        return None
    if kind == "number":
        return Decimal(str(actual))
    if kind == "bool":
        return bool(actual)
    return str(actual).casefold()


def _like(actual: Any, value: Any) -> bool:
    if actual is None or value is NULL:
        return False
    if not any(isinstance(p, Wildcard) for p in value):
        return _plain(value).casefold() in str(actual).casefold()
    pattern = "".join(".*" if isinstance(p, Wildcard) else re.escape(p) for p in value)
    return re.fullmatch(pattern, str(actual), re.IGNORECASE | re.DOTALL) is not None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt:": lambda a, b: a > b,
    "$gte:": lambda a, b: a >= b,
    "$lt:": lambda a, b: a < b,
    "$lte:": lambda a, b: a <= b,
}


def _matches_predicate(doc: Mapping[str, Any], pred: Predicate, kinds: Mapping[str, str]) -> bool:
    kind = kinds[pred.prop]
    actual = _normalise(lookup(doc, pred.prop), kind)
    if pred.op == "$like:":
        return _like(lookup(doc, pred.prop), pred.values[0])
    wanted = [_coerce(v, kind) for v in pred.values]
    hits = [actual is None if w is NULL else actual == w for w in wanted]
    if pred.op in ("$eq:", "$in:"):
        return any(hits)
    if pred.op in ("$ne:", "$nin:"):
        return not any(hits)
    if actual is None or wanted[0] is NULL:
        return False
    return _COMPARE[pred.op](actual, wanted[0])


def matches(doc: Mapping[str, Any], node: Node, kinds: Mapping[str, str]) -> bool:
    if isinstance(node, Predicate):
        return _matches_predicate(doc, node, kinds)
    results = (matches(doc, part, kinds) for part in node.parts)
    return all(results) if node.op == "and" else any(results)


def validate_filter(text: str, kinds: Mapping[str, str]) -> Node:
    """Parse, and type-check the values once, so a bad number fails even on an empty page."""
    node = parse_filter(text, kinds)
    _check_values(node, kinds)
    return node


def _check_values(node: Node, kinds: Mapping[str, str]) -> None:
    if isinstance(node, Combination):
        for part in node.parts:
            _check_values(part, kinds)
    elif node.op != "$like:":
        for value in node.values:
            _coerce(value, kinds[node.prop])


def sort_documents(
    docs: list[dict[str, Any]], sort: str, kinds: Mapping[str, str]
) -> list[dict[str, Any]]:
    keys = [k for k in sort.split(",") if k]
    result = list(docs)
    for key in reversed(keys):
        descending = key.startswith("-")
        name = key.lstrip("-")
        alphabetical = name.startswith("~")
        name = name.lstrip("~")
        kind = kinds.get(name)
        if kind is None:
            raise QueryError(f"Property '{name}' is not sortable on this collection.")
        result.sort(key=_sort_key(name, "string" if alphabetical else kind), reverse=descending)
    return result


def _sort_key(name: str, kind: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    def key(doc: dict[str, Any]) -> tuple[int, Any]:
        value = _normalise(lookup(doc, name), kind)
        return (0, "") if value is None else (1, value)

    return key
