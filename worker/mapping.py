"""A tenant's mapping: references an operator pins instead of letting ledgerpush infer them.

Flat keys, so the CLI, the API and the dashboard edit the same thing:

| key | meaning |
|---|---|
| `vat.<rate>` | eAccounting: article account coding id; e-conomic: VAT account code, for that VAT rate |
| `account.<rate>` | sales account number for that VAT rate |
| `article.<rate>` | eAccounting article id / e-conomic product number to use for that VAT rate |
| `layout` | e-conomic layout number |
| `payment_terms` | e-conomic payment terms number / eAccounting terms of payment id |
| `product` | default product for free-text lines |
| `bank_account` | eAccounting bank account id for payments |
| `journal` | e-conomic daybook journal number for payments |
| `contra_account` | e-conomic account the payment is booked against (the bank) |
| `customer_group` | e-conomic customer group number for new customers |
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
    }
)
RATE_KEYS = re.compile(r"^(vat|account|article)\.(\d{1,2}(?:\.\d{1,2})?)$")


class MappingError(ValueError):
    pass


def rate_key(prefix: str, rate: Decimal) -> str:
    return f"{prefix}.{rate.normalize():f}"


def validate_key(key: str) -> str:
    if key in PLAIN_KEYS:
        return key
    match = RATE_KEYS.match(key)
    if not match:
        raise MappingError(
            f"unknown mapping key {key!r}: use one of {', '.join(sorted(PLAIN_KEYS))}, "
            "or vat.<rate>, account.<rate>, article.<rate> (e.g. vat.25)"
        )
    return rate_key(match.group(1), Decimal(match.group(2)))


def validate(mapping: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in mapping.items():
        if value is not None and not isinstance(value, str | int):
            raise MappingError(f"mapping {key!r}: value must be a string or an integer")
        clean[validate_key(key)] = value
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
