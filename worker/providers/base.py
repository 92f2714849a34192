"""What the pipeline needs from an accounting system, and the error taxonomy.

Providers decide what an HTTP answer means; the pipeline only acts on the category.
Every remote write is a *step* (`draft`, `book`, `pay`): the pipeline records an intent
before `write_step` and the result after it, and after a crash between the two asks
`lookup_step` before writing again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.jobs import CreditNoteJob, InvoiceJob, PaymentJob

AnyJob = InvoiceJob | CreditNoteJob | PaymentJob


class ProviderError(Exception):
    category = "provider"

    def __init__(self, message: str, code: str = "", original: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.category
        self.original = original

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "code": self.code,
            "message": self.message,
            "original": self.original,
        }


class Transient(ProviderError):
    """Timeout, connection reset, 5xx, 429: try again later (after `retry_after` if given)."""

    category = "transient"

    def __init__(
        self,
        message: str,
        code: str = "",
        original: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code, original)
        self.retry_after = retry_after


class NoAnswer(Transient):
    """The request went out and no answer came back (timeout, connection cut): a write
    may or may not have been applied, now or a little later."""


class AuthExpired(ProviderError):
    """401 on a token that should have been fresh; the auth flow refreshes once."""

    category = "auth_expired"


class NeedsReauth(ProviderError):
    """Only the customer can fix it: refresh token revoked, grant withdrawn, scope missing."""

    category = "needs_reauth"


class Rejected(ProviderError):
    """The provider refused the document; `fields` point at our payload's fields."""

    category = "rejected"

    def __init__(
        self,
        message: str,
        code: str = "",
        original: str | None = None,
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message, code, original)
        self.fields = fields or []


class Unsupported(ProviderError):
    """A module or feature the tenant's subscription lacks."""

    category = "unsupported"


class ReferenceStale(ProviderError):
    """A cached reference (VAT code, account, article) no longer exists remotely."""

    category = "reference_stale"


class NotReady(ProviderError):
    """Something this job depends on is not there yet (the invoice of a payment)."""

    category = "not_ready"


class NeedsReview(ProviderError):
    """A lookup found more than one document that could be ours: a human decides."""

    category = "needs_review"

    def __init__(self, message: str, candidates: list[dict[str, Any]]) -> None:
        super().__init__(message, "needs_review")
        self.candidates = candidates


@dataclass
class Call:
    """One HTTP call, as kept in the attempt history (never bodies or headers)."""

    method: str
    path: str
    status: int | None
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "ms": round(self.ms, 1),
        }


@dataclass
class StepContext:
    """Everything a step needs: the job, the tenant's mapping, earlier steps' results."""

    job: AnyJob
    tenant_id: str
    country: str
    mapping: dict[str, Any]
    remote: dict[str, Any]
    intent_at: dt.datetime | None = None
    intent: dict[str, Any] = field(default_factory=dict)
    related: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    name: str
    calls: list[Call]

    def steps(self, kind: str) -> tuple[str, ...]:
        """The remote writes a job of this kind needs, in order."""
        ...

    def prepare(self, ctx: StepContext) -> None:
        """Resolve references and upsert the customer (idempotent reads and upserts)."""
        ...

    def intent_details(self, step: str, ctx: StepContext) -> dict[str, Any]:
        """What to record with the intent so a later lookup can tell if the write happened."""
        ...

    def write_step(self, step: str, ctx: StepContext) -> dict[str, Any]:
        """Perform one remote write; returns what identifies its result remotely."""
        ...

    def lookup_step(self, step: str, ctx: StepContext) -> list[dict[str, Any]]:
        """Find results of an earlier `write_step` that may have happened unrecorded."""
        ...

    def invalidate_references(self) -> None: ...
