"""Agreements (the simulator's state), calls and replies, rendering with `self` links, and
reference resolution in request bodies."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote, unquote, urlparse

from worker.simulators.economic import seed
from worker.simulators.economic.errors import Doc, ErrorCode, Issues, Path
from worker.simulators.economic.rules import ID_ENCODING, LINK_KEYS, REFERENCES

Handler = Callable[["Call"], "Reply"]
CENT = Decimal("0.01")


# --- rendering ------------------------------------------------------------------------------


def encode_id(value: Any) -> str:
    text = str(value)
    for char, code in ID_ENCODING:
        text = text.replace(char, code)
    return quote(text, safe="_-~")


_ID_DECODING = {code.strip("_"): char for char, code in ID_ENCODING}


def decode_id(text: str) -> str:
    return re.sub(r"_(\d{1,2})_", lambda m: _ID_DECODING.get(m[1], m[0]), unquote(text))


def _link_for(doc: Doc, parent: str) -> str | None:
    for key, prefix in LINK_KEYS:
        if key in doc:
            return prefix + encode_id(doc[key])
    if "code" in doc and (parent == "currency" or "isoNumber" in doc):
        return "/currencies/" + encode_id(doc["code"])
    return None


def linked(value: Any, base: str, parent: str = "") -> Any:
    """A copy with `self` links on every referenced entity; false booleans are omitted
    (introduction.md, "Booleans")."""
    if isinstance(value, list):
        return [linked(item, base, parent) for item in value]
    if not isinstance(value, dict):
        return value
    out = {k: linked(v, base, k) for k, v in value.items() if v is not False}
    if "self" not in out:
        link = _link_for(value, parent)
        if link:
            out["self"] = base + link
    return out


def linked_doc(doc: Doc, base: str) -> Doc:
    result: Doc = linked(doc, base)
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, ensure_ascii=False).encode()


def plain(value: Any) -> Any:
    """A JSON-compatible copy (Decimals become numbers)."""
    return json.loads(to_json(value))


def strip_links(value: Any) -> Any:
    if isinstance(value, list):
        return [strip_links(v) for v in value]
    if isinstance(value, dict):
        return {k: strip_links(v) for k, v in value.items() if k != "self"}
    return value


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def timestamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- agreements -----------------------------------------------------------------------------


@dataclass
class Agreement:
    grant_token: str
    number: int
    country: str
    modules: list[str]
    ref: Doc
    pristine: Doc
    revoked: bool = False
    drafts: dict[int, Doc] = field(default_factory=dict)
    booked: dict[int, Doc] = field(default_factory=dict)
    vouchers: dict[tuple[int, str, int], Doc] = field(default_factory=dict)
    next_draft: int = 1
    next_entry: int = 1
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def base_currency(self) -> str:
        return seed.COUNTRIES[self.country].currency

    def table(self, name: str) -> dict[Any, Doc]:
        result: dict[Any, Doc] = self.ref[name]
        return result

    def rate(self, currency: str) -> Decimal:
        rates: dict[str, Decimal] = self.ref["exchangeRates"]
        return rates.get(currency, Decimal(100))

    def reset_documents(self) -> None:
        self.ref = copy.deepcopy(self.pristine)
        self.drafts.clear()
        self.booked.clear()
        self.vouchers.clear()
        self.next_draft = self.next_entry = 1
        self.calls.clear()

    def dump(self) -> Doc:
        state = {
            "agreementNumber": self.number,
            "country": self.country,
            "modules": list(self.modules),
            "revoked": self.revoked,
            "customers": list(self.table("customers").values()),
            "products": list(self.table("products").values()),
            "drafts": [self.drafts[n] for n in sorted(self.drafts)],
            "booked": [self.booked[n] for n in sorted(self.booked)],
            "vouchers": [self.vouchers[key] for key in sorted(self.vouchers)],
            "calls": dict(self.calls),
        }
        result: Doc = plain(state)
        return result


@dataclass
class Call:
    agreement: Agreement
    base: str
    url: str
    path: str
    query: Mapping[str, str]
    params: Mapping[str, Any]
    body: Any


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def created(body: Doc) -> Reply:
    location = body.get("self")
    return Reply(201, body, {"Location": location} if isinstance(location, str) else {})


def sorted_values(table: Mapping[Any, Doc]) -> list[Doc]:
    return [table[key] for key in sorted(table)]


# --- references -----------------------------------------------------------------------------


class Resolver:
    """Resolves `{"xNumber": n}` or `{"self": url}` references (introduction.md: "you are
    free to reference the entity via either id or self-link") against an agreement."""

    def __init__(self, agreement: Agreement, issues: Issues) -> None:
        self.agreement = agreement
        self.issues = issues

    def ref(self, doc: Any, key: str, path: Path, kind: str | None = None) -> Any:
        obj = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(obj, dict):
            return None
        id_key, table, collection, id_type, module = REFERENCES[kind or key]
        if module and module not in self.agreement.modules:
            message = f"{key} requires the {module} module, which the agreement does not have."
            self.issues.add(path, ErrorCode.MODULE_PROPERTY, message)
            return None
        ident = self._identifier(obj, key, id_key, collection, id_type, path)
        if ident is not None and ident not in self.agreement.table(table):
            self.issues.not_exist(path, ident, collection)
            return None
        return ident

    def _identifier(
        self, obj: Doc, key: str, id_key: str, collection: str, id_type: type, path: Path
    ) -> Any:
        ident = obj.get(id_key)
        if ident is None and isinstance(obj.get("self"), str):
            ident = id_from_link(obj["self"], collection, id_type)
            if ident is None:
                self.issues.not_exist(path, obj["self"], collection)
            return ident
        if ident is None:
            message = (
                f"No identifiers present on {key}. Please include either a self link or a {id_key}."
            )
            hint = f"Find a list of resources at {self.issues.base}/{collection}."
            self.issues.add(path, ErrorCode.NO_IDENTIFIER, message, hint=hint)
            return None
        if not isinstance(ident, id_type) or isinstance(ident, bool):
            return None  # the property rules report the wrong type
        return ident

    def currency(self, code: Any, path: Path) -> str | None:
        if not isinstance(code, str):
            return None
        if code.upper() not in self.agreement.table("currencies"):
            self.issues.not_exist(path, code, "currencies")
            return None
        return code.upper()


def id_from_link(link: str, collection: str, id_type: type) -> Any:
    path = urlparse(link).path
    prefix = f"/{collection}/"
    rest = path[len(prefix) :]
    if not path.startswith(prefix) or not rest or "/" in rest:
        return None
    raw = decode_id(rest)
    if id_type is int:
        return int(raw) if raw.lstrip("-").isdigit() else None
    return raw
