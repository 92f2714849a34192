"""The part of OData that eAccounting list endpoints accept: `$filter` and `$orderby`.

`$filter` supports `eq ne gt ge lt le`, `and`, `or`, `not`, parentheses, and the functions
`contains`, `startswith`, `endswith` and `substringof`, on top-level scalar fields. Literals:
'strings' (with '' escapes), numbers, true/false/null, bare or `datetime'...'` dates and
datetimes, bare or `guid'...'` GUIDs. Values are compared by the field's type in the model
(strings without regard to case, as eAccounting's SQL collation does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.simulators.modelcheck import parse_datetime

Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*')
    | (?P<typed>(?:datetimeoffset|datetime|guid)'[^']*')
    | (?P<guid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    | (?P<date>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
    | (?P<num>-?\d+(?:\.\d+)?)[mMdDfFlL]?
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"contains", "startswith", "endswith", "substringof"}


class FilterError(ValueError):
    """The `$filter` or `$orderby` text cannot be understood."""


@dataclass(frozen=True)
class Token:
    kind: str  # "lit", "name", "punct"
    value: Any
    text: str


@dataclass(frozen=True)
class Literal:
    value: Any  # str | Decimal | bool | None | datetime


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterError(f"Syntax error at position {position} in $filter '{text}'.")
        position = match.end()
        tokens.append(_token(match))
    return tokens


def _token(match: re.Match[str]) -> Token:
    kind = match.lastgroup or ""
    raw = match.group(kind)
    if kind == "str":
        return Token("lit", Literal(raw[1:-1].replace("''", "'")), raw)
    if kind == "typed":
        prefix, _, rest = raw.partition("'")
        inner = rest[:-1]
        value = inner if prefix == "guid" else _parse_date_literal(inner)
        return Token("lit", Literal(value), raw)
    if kind == "guid":
        return Token("lit", Literal(raw), raw)
    if kind == "date":
        return Token("lit", Literal(_parse_date_literal(raw)), raw)
    if kind == "num":
        return Token("lit", Literal(Decimal(raw)), raw)
    if kind == "name" and raw.lower() in ("true", "false", "null"):
        value = {"true": True, "false": False, "null": None}[raw.lower()]
        return Token("lit", Literal(value), raw)
    return Token(kind, raw, raw)


def _parse_date_literal(text: str) -> datetime:
    try:
        return parse_datetime(text)
    except ValueError:
        raise FilterError(f"'{text}' is not a valid date.") from None


class _Parser:
    def __init__(self, tokens: Sequence[Token], field_types: Mapping[str, str]) -> None:
        self.tokens = tokens
        self.position = 0
        self.fields = {name.lower(): (name, kind) for name, kind in field_types.items()}

    def parse(self) -> Predicate:
        predicate = self._or()
        if self.position != len(self.tokens):
            raise FilterError(f"Unexpected '{self.tokens[self.position].text}' in $filter.")
        return predicate

    def _peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> Token:
        token = self._peek()
        if token is None:
            raise FilterError("Unexpected end of $filter.")
        self.position += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "name" and token.value.lower() == word:
            self.position += 1
            return True
        return False

    def _expect(self, punct: str) -> None:
        token = self._take()
        if token.kind != "punct" or token.value != punct:
            raise FilterError(f"Expected '{punct}' but found '{token.text}' in $filter.")

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._keyword("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda row: any(p(row) for p in parts))

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._keyword("and"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda row: all(p(row) for p in parts))

    def _unary(self) -> Predicate:
        if self._keyword("not"):
            inner = self._unary()
            return lambda row: not inner(row)
        token = self._peek()
        if token is not None and token.kind == "punct" and token.value == "(":
            self._take()
            inner = self._or()
            self._expect(")")
            return inner
        if token is not None and token.kind == "name" and token.value.lower() in _FUNCTIONS:
            return self._function()
        return self._comparison()

    def _operand(self) -> tuple[str, Any]:
        token = self._take()
        if token.kind == "lit":
            return "lit", token.value.value
        if token.kind == "name":
            return "field", self._field(token.value)
        raise FilterError(f"Unexpected '{token.text}' in $filter.")

    def _field(self, name: str) -> tuple[str, str]:
        found = self.fields.get(name.lower())
        if found is None:
            raise FilterError(f"Could not find a property named '{name}' usable in $filter.")
        return found

    def _comparison(self) -> Predicate:
        left = self._operand()
        token = self._take()
        operator = str(token.value).lower()
        if token.kind != "name" or operator not in _COMPARISONS:
            raise FilterError(f"Expected a comparison operator but found '{token.text}'.")
        right = self._operand()
        if left[0] == "lit" and right[0] == "field":
            left, right = right, left
            operator = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(operator, operator)
        if left[0] != "field" or right[0] != "lit":
            raise FilterError("A comparison needs one property and one literal.")
        return _compare(left[1], operator, right[1])

    def _function(self) -> Predicate:
        name = str(self._take().value).lower()
        self._expect("(")
        first = self._operand()
        self._expect(",")
        second = self._operand()
        self._expect(")")
        field, needle = (second, first) if name == "substringof" else (first, second)
        if field[0] != "field" or needle[0] != "lit" or not isinstance(needle[1], str):
            raise FilterError(f"{name}() needs a property and a string literal.")
        return _text_function(name, field[1], needle[1])


def _text_function(name: str, field: tuple[str, str], needle: str) -> Predicate:
    key, wanted = field[0], needle.casefold()

    def test(row: Row) -> bool:
        value = row.get(key)
        if value is None:
            return False
        text = str(value).casefold()
        if name == "startswith":
            return text.startswith(wanted)
        if name == "endswith":
            return text.endswith(wanted)
        return wanted in text

    return test


def _coerce(kind: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if kind == "datetime":
            return value if isinstance(value, datetime) else parse_datetime(str(value))
        if kind in ("int", "double"):
            return Decimal(str(value))
        if kind == "bool":
            return value if isinstance(value, bool) else str(value).lower() == "true"
    except (ValueError, InvalidOperation):
        raise FilterError(f"'{value}' is not a valid {kind}.") from None
    if isinstance(value, datetime):
        return value.isoformat().casefold()
    return str(value).casefold()


def _compare(field: tuple[str, str], operator: str, literal: Any) -> Predicate:
    key, kind = field
    wanted = _coerce(kind, literal)

    def test(row: Row) -> bool:
        try:
            actual = _coerce(kind, row.get(key))
        except FilterError:
            return False
        if operator in ("eq", "ne"):
            return bool(actual == wanted) == (operator == "eq")
        if actual is None or wanted is None:
            return False
        return bool(_ORDER[operator](actual, wanted))

    return test


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def compile_filter(text: str, field_types: Mapping[str, str]) -> Predicate:
    """`field_types` maps each filterable field to its model type (string, int, double, ...)."""
    tokens = tokenize(text)
    if not tokens:
        return lambda row: True
    return _Parser(tokens, field_types).parse()


def order_rows(
    rows: list[dict[str, Any]], text: str, field_types: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Sort by `$orderby` ("Name desc, CustomerNumber"); nulls sort first, as in SQL Server."""
    lookup = {name.lower(): (name, kind) for name, kind in field_types.items()}
    ordered = list(rows)
    for clause in reversed([part.strip() for part in text.split(",") if part.strip()]):
        name, _, direction = clause.partition(" ")
        found = lookup.get(name.lower())
        if found is None or direction.strip().lower() not in ("", "asc", "desc"):
            raise FilterError(f"Cannot order by '{clause}'.")
        ordered.sort(key=_sort_key(*found), reverse=direction.strip().lower() == "desc")
    return ordered


def _sort_key(key: str, kind: str) -> Callable[[Row], tuple[int, Any]]:
    def sort_key(row: Row) -> tuple[int, Any]:
        value = _coerce(kind, row.get(key))
        return (0, 0) if value is None else (1, value)

    return sort_key
