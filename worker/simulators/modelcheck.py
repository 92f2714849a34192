"""Validates JSON bodies against a `models.json` reference (as in `reference/eaccounting`).

Every model there is a mapping of wire field name -> {type, required, maxLength, minimum,
maximum, enum, description}. `ModelCatalog.check` walks a body the way ASP.NET model
binding would: field names match case-insensitively, unknown fields are ignored, and each
rule that the reference states (plus "Format: N decimals" from a description) is enforced.
It returns the body with canonical field names, numbers as `Decimal`/`int` and datetimes in
one format, together with every violation found (not just the first).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

_DECIMALS_RULE = re.compile(r"Format:\s*(?:Max\s+)?(\d+)\s+decimals", re.IGNORECASE)
#: Descriptions whose decimals rule depends on context; the caller enforces those.
_CONDITIONAL_RULE = "if the customer is domestic"
SCALAR_TYPES = frozenset({"string", "int", "double", "bool", "datetime"})


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool = False
    max_length: int | None = None
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    enum: tuple[Any, ...] | None = None
    max_decimals: int | None = None
    description: str = ""

    @property
    def is_list(self) -> bool:
        return self.type.endswith("[]")

    @property
    def item_type(self) -> str:
        return self.type.removesuffix("[]")


@dataclass(frozen=True)
class Violation:
    field: str
    message: str


def _number(raw: Any) -> Decimal | None:
    return None if raw is None else Decimal(str(raw))


def _spec(name: str, raw: Mapping[str, Any]) -> FieldSpec:
    description = str(raw.get("description", ""))
    rule = _DECIMALS_RULE.search(description)
    conditional = _CONDITIONAL_RULE in description
    enum = raw.get("enum")
    return FieldSpec(
        name=name,
        type=str(raw["type"]),
        required=bool(raw.get("required", False)),
        max_length=raw.get("maxLength"),
        minimum=_number(raw.get("minimum")),
        maximum=_number(raw.get("maximum")),
        enum=tuple(enum) if enum is not None else None,
        max_decimals=int(rule.group(1)) if rule and not conditional else None,
        description=description,
    )


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def parse_datetime(text: str) -> datetime:
    """ISO date or datetime (optional fraction and offset) -> naive UTC datetime."""
    value = text.strip()
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def format_datetime(value: datetime) -> str:
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")


class ModelCatalog:
    """The models of one API, loaded from its `models.json`."""

    def __init__(self, models: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        self._models = {
            model: {name: _spec(name, raw) for name, raw in fields.items()}
            for model, fields in models.items()
        }
        self._by_lower = {
            model: {name.lower(): spec for name, spec in fields.items()}
            for model, fields in self._models.items()
        }

    @classmethod
    def from_file(cls, path: Path) -> ModelCatalog:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["models"])

    def has(self, model: str) -> bool:
        return model in self._models

    def fields(self, model: str) -> dict[str, FieldSpec]:
        return self._models[model]

    def field(self, model: str, name: str) -> FieldSpec | None:
        return self._by_lower[model].get(name.lower())

    def required(self, model: str) -> list[str]:
        return [name for name, spec in self._models[model].items() if spec.required]

    def scalar_types(self, model: str) -> dict[str, str]:
        """Top-level fields usable in `$filter`/`$orderby`: name -> scalar type."""
        return {n: s.type for n, s in self._models[model].items() if s.type in SCALAR_TYPES}

    def check(
        self, model: str, body: Any, prefix: str = ""
    ) -> tuple[dict[str, Any], list[Violation]]:
        if not isinstance(body, Mapping):
            return {}, [
                Violation(prefix or model, f"{prefix or 'The body'} must be a JSON object.")
            ]
        clean: dict[str, Any] = {}
        problems: list[Violation] = []
        for key, value in body.items():
            spec = self.field(model, str(key))
            if spec is None or value is None:
                continue
            path = f"{prefix}{spec.name}"
            clean[spec.name], found = self._check_value(spec, value, path)
            problems.extend(found)
        for spec in self._models[model].values():
            if spec.required and _is_missing(clean.get(spec.name), spec):
                problems.append(
                    Violation(f"{prefix}{spec.name}", f"The {prefix}{spec.name} field is required.")
                )
        return clean, problems

    def _check_value(self, spec: FieldSpec, value: Any, path: str) -> tuple[Any, list[Violation]]:
        if spec.is_list:
            if not isinstance(value, list):
                return value, [Violation(path, f"The field {path} must be a JSON array.")]
            items: list[Any] = []
            problems: list[Violation] = []
            for index, item in enumerate(value):
                item_spec = FieldSpec(name=spec.name, type=spec.item_type)
                clean, found = self._check_value(item_spec, item, f"{path}[{index}]")
                items.append(clean)
                problems.extend(found)
            return items, problems
        if spec.type in self._models:
            return self.check(spec.type, value, prefix=f"{path}.")
        return _check_scalar(spec, value, path)


def _is_missing(value: Any, spec: FieldSpec) -> bool:
    return value is None or (spec.type == "string" and isinstance(value, str) and not value.strip())


def _check_scalar(spec: FieldSpec, value: Any, path: str) -> tuple[Any, list[Violation]]:
    converted = _convert(spec.type, value)
    if converted is _INVALID:
        return value, [Violation(path, f"The field {path} must be of type {spec.type}.")]
    return converted, _rules(spec, converted, path)


_INVALID: Any = object()


def _convert(kind: str, value: Any) -> Any:
    if kind == "string":
        return value if isinstance(value, str) else _INVALID
    if kind == "bool":
        return value if isinstance(value, bool) else _INVALID
    if kind in ("int", "double"):
        return _convert_number(kind, value)
    if kind == "datetime":
        return _convert_datetime(value)
    return value


def _convert_number(kind: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return _INVALID
    number = Decimal(str(value))
    if not number.is_finite():
        return _INVALID
    if kind == "double":
        return number
    return int(number) if number == number.to_integral_value() else _INVALID


def _convert_datetime(value: Any) -> Any:
    if not isinstance(value, str):
        return _INVALID
    try:
        return format_datetime(parse_datetime(value))
    except ValueError:
        return _INVALID


def _rules(spec: FieldSpec, value: Any, path: str) -> list[Violation]:
    problems: list[Violation] = []
    if spec.max_length is not None and isinstance(value, str) and len(value) > spec.max_length:
        problems.append(
            Violation(
                path,
                f"The field {path} must be a string with a maximum length of {spec.max_length}.",
            )
        )
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        problems.extend(_numeric_rules(spec, Decimal(value), path))
    if spec.enum is not None and value not in spec.enum:
        allowed = ", ".join(str(v) for v in spec.enum)
        problems.append(Violation(path, f"The field {path} must be one of: {allowed}."))
    return problems


def _numeric_rules(spec: FieldSpec, number: Decimal, path: str) -> list[Violation]:
    problems: list[Violation] = []
    too_low = spec.minimum is not None and number < spec.minimum
    too_high = spec.maximum is not None and number > spec.maximum
    if too_low or too_high:
        low = "-inf" if spec.minimum is None else spec.minimum
        high = "inf" if spec.maximum is None else spec.maximum
        problems.append(Violation(path, f"The field {path} must be between {low} and {high}."))
    if spec.max_decimals is not None and decimal_places(number) > spec.max_decimals:
        problems.append(
            Violation(path, f"The field {path} allows at most {spec.max_decimals} decimals.")
        )
    return problems
