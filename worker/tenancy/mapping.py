"""A tenant's mapping: references an operator pins instead of letting ledgerpush infer them.

Flat keys, so the CLI, the API and the dashboard edit the same thing: plain keys
(`layout`, `bank_account`, …) and `<prefix>.<rate>` keys for one VAT rate (`vat.25`,
`article.12`). Which keys a provider reads, and what each means, is in its spec
(`ProviderSpec.mapping`, worker/providers/<name>/spec.py); `ledgerpush tenants map --help`
and the tenant page list them. `validate(mapping, provider)` refuses keys that provider
does not read.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.providers import registry

#: Keys with a fixed set of values.
CHOICES = {"round_unit_prices": ("half_up",)}
RATE_KEYS = re.compile(r"^([a-z_]+)\.(\d{1,2}(?:\.\d{1,2})?)$")


def _keys(provider: str | None) -> tuple[frozenset[str], tuple[str, ...]]:
    """The plain keys and rate prefixes `provider` reads (every provider's when None)."""
    specs = [registry.spec_for(provider)] if provider else list(registry.specs())
    plain = frozenset(k for spec in specs for k in spec.mapping.plain)
    prefixes = tuple(dict.fromkeys(p for spec in specs for p in spec.mapping.rated))
    return plain, prefixes


class MappingError(ValueError):
    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def rate_key(prefix: str, rate: Decimal) -> str:
    return f"{prefix}.{rate.normalize():f}"


def accepted_keys(provider: str | None) -> str:
    """The keys `provider` reads (every key when None), as a sentence fragment."""
    plain, prefixes = _keys(provider)
    rated = [f"{p}.<rate>" for p in prefixes]
    return f"{', '.join(sorted(plain))}, or {', '.join(rated)} (e.g. vat.25)"


def validate_key(key: str, provider: str | None = None) -> str:
    """The key in canonical form; with a provider, only a key that provider reads."""
    match = RATE_KEYS.match(key)
    every_plain, every_prefix = _keys(None)
    known = key in every_plain or (match is not None and match.group(1) in every_prefix)
    if not known:
        raise MappingError(
            f"unknown mapping key {key!r}: use one of {accepted_keys(provider)}", key
        )
    if provider in registry.names():
        plain, prefixes = _keys(provider)
        if (match is None and key not in plain) or (match and match.group(1) not in prefixes):
            raise MappingError(
                f"mapping key {key!r} is not used by {provider} tenants: "
                f"{provider} reads {accepted_keys(provider)}",
                key,
            )
    if match is None:
        return key
    return rate_key(match.group(1), Decimal(match.group(2)))


def validate(mapping: dict[str, Any], provider: str | None = None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in mapping.items():
        if value is not None and not isinstance(value, str | int):
            raise MappingError(f"mapping {key!r}: value must be a string or an integer")
        if key in CHOICES and value is not None and value not in CHOICES[key]:
            allowed = ", ".join(CHOICES[key])
            raise MappingError(f"mapping {key!r}: value must be one of {allowed}", key)
        clean[validate_key(key, provider)] = value
    return clean


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise MappingError(f"{pair!r}: expected key=value")
        try:
            changes[validate_key(key.strip())] = value.strip() or None
        except InvalidOperation:
            raise MappingError(f"{pair!r}: the rate is not a number") from None
    return changes
