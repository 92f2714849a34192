"""The public contract of the queue: canonical job payloads, strict and explicit.

Amounts are decimal strings ("1200.00"), never JSON numbers; dates are ISO 8601;
currencies ISO 4217; unknown fields are rejected. `ledgerpush schema` prints the
JSON Schema generated from these models.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from worker import safejson

JOB_ID_NAMESPACE = uuid.UUID("6f1c9a52-2f43-4c1e-9d55-7d0c2b1a9e10")

# Active ISO 4217 codes (2024), excluding funds and precious metals.
ISO_4217 = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWL",
    ]
)
MAX_AMOUNT = Decimal("999999999999.9999")


def _decimal_string(value: Any) -> Any:
    if isinstance(value, (bool, float | int)):
        raise ValueError('must be a decimal string such as "12.50", not a JSON number')
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


def _currency_code(value: Any) -> Any:
    if not isinstance(value, str) or value not in ISO_4217:
        raise ValueError("must be an ISO 4217 currency code in capitals, such as NOK or EUR")
    return value


def _country_code(value: Any) -> Any:
    if not isinstance(value, str) or len(value) != 2 or not value.isalpha() or not value.isupper():
        raise ValueError("must be an ISO 3166-1 alpha-2 country code in capitals, such as NO")
    return value


_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_NOT_IN_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_NOT_IN_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_BIDI_CHARS = re.compile(f"[{_BIDI}]")


def _refuse(found: re.Match[str], multiline: bool) -> None:
    char = found.group()
    where = f"U+{ord(char):04X} at position {found.start() + 1}"
    if _BIDI_CHARS.match(char):
        raise ValueError(f"must not contain bidirectional-control characters ({where})")
    if "\ud800" <= char <= "\udfff":
        raise ValueError(f"must not contain unpaired surrogates ({where})")
    allowed = "; line breaks and tabs are allowed here" if multiline else ""
    raise ValueError(f"must not contain control characters ({where}{allowed})")


def _one_line(value: str) -> str:
    found = _NOT_IN_LINE.search(value)
    if found:
        _refuse(found, multiline=False)
    return value


def _multiline(value: str) -> str:
    found = _NOT_IN_TEXT.search(value)
    if found:
        _refuse(found, multiline=True)
    return value


# Texts end up on invoices and in an accountant's screens: no control characters (a
# line break or tab only in descriptions, notes and reasons), no bidirectional overrides
# that would show a text other than the one stored, nothing that is not encodable.
LineText = Annotated[str, AfterValidator(_one_line)]
Text = Annotated[str, AfterValidator(_multiline)]
DecimalString = Annotated[
    Decimal, BeforeValidator(_decimal_string), Field(allow_inf_nan=False, max_digits=18)
]
Money = Annotated[DecimalString, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, decimal_places=4)]
PositiveMoney = Annotated[DecimalString, Field(gt=0, le=MAX_AMOUNT, decimal_places=4)]
Quantity = Annotated[DecimalString, Field(gt=0, le=Decimal("9999999"), decimal_places=2)]
Percent = Annotated[DecimalString, Field(ge=0, le=100, decimal_places=4)]
Currency = Annotated[str, BeforeValidator(_currency_code)]
Country = Annotated[str, BeforeValidator(_country_code)]
TenantId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Address(Strict):
    line1: LineText = Field(min_length=1, max_length=50)
    line2: LineText | None = Field(default=None, max_length=50)
    postal_code: LineText = Field(min_length=1, max_length=10)
    city: LineText = Field(min_length=1, max_length=50)


class Customer(Strict):
    external_id: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9._-]+$")
    name: LineText = Field(min_length=1, max_length=50)
    country: Country
    email: LineText | None = Field(
        default=None, max_length=255, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    )
    org_number: LineText | None = Field(default=None, max_length=20)
    vat_number: LineText | None = Field(default=None, max_length=20)
    is_private_person: bool = False
    address: Address


class Line(Strict):
    description: Text = Field(min_length=1, max_length=2000)
    quantity: Quantity
    unit_price: Money
    vat_rate: Percent
    discount_percent: Percent = Decimal("0")
    article_number: LineText | None = Field(default=None, max_length=40)
    account: int | None = Field(default=None, ge=1, le=99999999)


class Invoice(Strict):
    issue_date: dt.date
    due_date: dt.date
    currency: Currency
    customer: Customer
    lines: list[Line] = Field(min_length=1, max_length=500)
    your_reference: LineText | None = Field(default=None, max_length=50)
    notes: Text | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _due_not_before_issue(self) -> Invoice:
        if self.due_date < self.issue_date:
            raise ValueError("due_date must not be before issue_date")
        return self


class CreditNote(Strict):
    original_idempotency_key: IdempotencyKey
    issue_date: dt.date
    reason: Text | None = Field(default=None, max_length=200)
    lines: list[Line] | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Lines to credit (positive quantities). Omit to credit the whole invoice.",
    )


class Payment(Strict):
    invoice_idempotency_key: IdempotencyKey
    amount: PositiveMoney
    currency: Currency
    payment_date: dt.date
    reference: LineText | None = Field(default=None, max_length=50)


class JobBase(Strict):
    tenant_id: TenantId
    idempotency_key: IdempotencyKey

    @property
    def job_id(self) -> str:
        return job_id_for(self.tenant_id, self.idempotency_key)


class InvoiceJob(JobBase):
    kind: Literal["invoice"]
    invoice: Invoice


class CreditNoteJob(JobBase):
    kind: Literal["credit_note"]
    credit_note: CreditNote


class PaymentJob(JobBase):
    kind: Literal["payment"]
    payment: Payment


Job = Annotated[InvoiceJob | CreditNoteJob | PaymentJob, Field(discriminator="kind")]
JOB_ADAPTER: TypeAdapter[InvoiceJob | CreditNoteJob | PaymentJob] = TypeAdapter(Job)
KINDS = ("invoice", "credit_note", "payment")


class FieldError(BaseModel):
    field: str
    message: str


#: The error code of a job kept because its message did not validate.
INVALID_PAYLOAD = "invalid_payload"


class JobValidationError(ValueError):
    """A payload broke the contract; `errors` names each field and the rule."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


def job_id_for(tenant_id: str, idempotency_key: str) -> str:
    """Deterministic: any producer can compute the id of the job it enqueued."""
    return str(uuid.uuid5(JOB_ID_NAMESPACE, f"{tenant_id}\n{idempotency_key}"))


def _field_path(loc: tuple[int | str, ...]) -> str:
    kinds = {"invoice", "credit_note", "payment"}
    parts = [str(p) for i, p in enumerate(loc) if not (i == 0 and p in kinds)]
    return ".".join(parts) or "(payload)"


def _message(error: Any) -> str:
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def parse_job(data: Any) -> InvoiceJob | CreditNoteJob | PaymentJob:
    """Validate a payload (dict, or JSON text read by worker/safejson.py) into a job, or
    raise JobValidationError."""
    try:
        if isinstance(data, str | bytes):
            data = safejson.loads(data)
        return JOB_ADAPTER.validate_python(data)
    except safejson.UnsafeJSON as exc:
        problems = [FieldError(field=p.field, message=p.message) for p in exc.problems]
        raise JobValidationError(problems) from None
    except ValidationError as exc:
        errors = [
            FieldError(
                field="kind" if e["type"].startswith("union_tag") else _field_path(tuple(e["loc"])),
                message=_message(e),
            )
            for e in exc.errors()
        ]
        raise JobValidationError(errors) from None


def job_schema() -> dict[str, Any]:
    schema = JOB_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ledgerpush job"
    return schema
