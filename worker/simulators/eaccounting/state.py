"""State of the eAccounting simulator: the reference files, companies, config, money,
dates and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from worker.simulators.modelcheck import ModelCatalog

DATA_DIR = Path(__file__).parents[1] / "data"
MODELS = ModelCatalog.from_file(DATA_DIR / "eaccounting_models.json")
ENDPOINTS_FILE = DATA_DIR / "eaccounting_endpoints.json"
CENT = Decimal("0.01")


@dataclass
class SimConfig:
    """Settings that can change while the simulator runs (`/_control/config`)."""

    token_lifetime_seconds: float = 3600
    refresh_mode: str = "reuse"
    refresh_grace_seconds: float = 0
    rate_limit_per_minute: int = 600
    # What one 600-a-minute budget covers besides the endpoint: each company the client
    # works for ("company", as ledgerpush's contract reads Visma's "per client"), or the
    # client across all its companies ("client", the strictest reading).
    rate_limit_scope: str = "company"
    auto_approve: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.refresh_mode not in ("reuse", "one_time"):
            raise ValueError("refresh_mode must be 'reuse' or 'one_time'")
        if self.rate_limit_scope not in ("company", "client"):
            raise ValueError("rate_limit_scope must be 'company' or 'client'")
        if self.token_lifetime_seconds <= 0 or self.rate_limit_per_minute < 1:
            raise ValueError("token_lifetime_seconds and rate_limit_per_minute must be positive")
        if self.refresh_grace_seconds < 0:
            raise ValueError("refresh_grace_seconds must not be negative")

    def update(self, changes: dict[str, Any]) -> None:
        kinds = {f.name: f.type for f in fields(self)}
        for key in changes:
            if key not in kinds:
                raise ValueError(f"unknown setting {key!r}; known: {sorted(kinds)}")
        before = asdict(self)
        for key, value in changes.items():
            setattr(self, key, _typed(kinds[key], value))
        try:
            self.validate()
        except ValueError:
            for key, value in before.items():
                setattr(self, key, value)
            raise

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _typed(kind: Any, value: Any) -> Any:
    converters = {"float": float, "int": int, "str": str, "bool": bool}
    return converters.get(str(kind), lambda v: v)(value)


@dataclass
class Company:
    """One eAccounting company (tenant): reference data plus documents."""

    id: str
    country: str
    settings: dict[str, Any]
    fiscal_years: list[dict[str, Any]]
    accounts: dict[str, list[dict[str, Any]]]
    vat_codes: list[dict[str, Any]]
    codings: list[dict[str, Any]]
    terms: list[dict[str, Any]]
    units: list[dict[str, Any]]
    bank_accounts: list[dict[str, Any]]
    articles: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    drafts: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_invoice_number: int = 1
    next_customer_number: int = 1
    next_article_number: int = 1
    next_voucher_number: int = 1

    @property
    def currency(self) -> str:
        return str(self.settings["CurrencyCode"])

    def find(self, items: Iterable[dict[str, Any]], ident: Any) -> dict[str, Any] | None:
        wanted = str(ident).lower()
        return next((item for item in items if str(item.get("Id", "")).lower() == wanted), None)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def utc_text(moment: datetime) -> str:
    """eAccounting's `...Utc` timestamps: ISO with milliseconds and a Z."""
    return moment.isoformat(timespec="milliseconds") + "Z"


def date_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT00:00:00")


def public(value: Any) -> Any:
    """Drops the simulator's internal keys (those starting with `_`) recursively."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def to_json(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, ensure_ascii=False).encode("utf-8")


def plain(value: Any) -> Any:
    """The value as it would look after a JSON round trip (Decimal -> float/int)."""
    return json.loads(to_json(value))
