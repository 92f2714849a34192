"""A tenant's mapping: references an operator pins instead of letting ledgerpush infer them.

Flat keys, so the CLI, the API and the dashboard edit the same thing:

| key | provider | meaning |
|---|---|---|
| `vat.<rate>` | both | eAccounting: article account coding id; e-conomic: VAT account code, for that VAT rate |
| `account.<rate>` | e-conomic | sales account number for that VAT rate (eAccounting: the coding decides it) |
| `article.<rate>` | both | eAccounting article id / e-conomic product number to use for that VAT rate |
| `layout` | e-conomic | layout number |
| `payment_terms` | both | e-conomic payment terms number / eAccounting terms of payment id |
| `product` | e-conomic | default product |
| `bank_account` | eAccounting | bank account id for payments |
| `journal` | e-conomic | daybook journal number for payments |
| `contra_account` | e-conomic | account the payment is booked against (the bank) |
| `customer_group` | e-conomic | customer group number for new customers |
| `round_unit_prices` | both | `half_up`: round unit prices to the provider's precision instead of refusing the job |

`validate(mapping, provider)` also refuses keys that provider does not read.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

PLAIN_KEYS = frozenset(
    {
        "layout",
        "payment_terms",
        "product",
        "bank_account",
        "journal",
        "contra_account",
        "customer_group",
        "round_unit_prices",
    }
)
#: Keys with a fixed set of values.
CHOICES = {"round_unit_prices": ("half_up",)}
RATE_KEYS = re.compile(r"^(vat|account|article)\.(\d{1,2}(?:\.\d{1,2})?)$")
PREFIXES = ("vat", "account", "article")
#: What each provider reads: plain keys, and the prefixes of `<prefix>.<rate>` keys.
PROVIDER_KEYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "eaccounting": (
        frozenset({"payment_terms", "bank_account", "round_unit_prices"}),
        frozenset({"vat", "article"}),
    ),
    "economic": (
        PLAIN_KEYS - {"bank_account"},
        frozenset({"vat", "account", "article"}),
    ),
}


class MappingError(ValueError):
    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def rate_key(prefix: str, rate: Decimal) -> str:
    return f"{prefix}.{rate.normalize():f}"


def accepted_keys(provider: str | None) -> str:
    """The keys `provider` reads (every key when None), as a sentence fragment."""
    plain, prefixes = PROVIDER_KEYS.get(provider or "", (PLAIN_KEYS, frozenset(PREFIXES)))
    rated = [f"{p}.<rate>" for p in PREFIXES if p in prefixes]
    return f"{', '.join(sorted(plain))}, or {', '.join(rated)} (e.g. vat.25)"


def validate_key(key: str, provider: str | None = None) -> str:
    """The key in canonical form; with a provider, only a key that provider reads."""
    match = RATE_KEYS.match(key)
    if key not in PLAIN_KEYS and not match:
        raise MappingError(
            f"unknown mapping key {key!r}: use one of {accepted_keys(provider)}", key
        )
    if provider in PROVIDER_KEYS:
        plain, prefixes = PROVIDER_KEYS[provider]
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
