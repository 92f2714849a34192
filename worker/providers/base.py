"""What the pipeline needs from an accounting system, and the error taxonomy.

Providers decide what an HTTP answer means; the pipeline only acts on the category.

The protocol between the pipeline and a provider is small, like httpx's `Auth.auth_flow`:
`prepare(ctx)` resolves the job's references and returns an immutable `Plan`, a sequence
of `Step`s. Each step is one remote write with its intent, its write and its lookup. The
pipeline runs any plan without knowing what the steps are: it commits the step's intent
before `write`, the result after it, and after a crash between the two asks `lookup`
before writing again. The last step's result books the job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
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


#: The error code of a job handed back until its reserved rate-limit slot.
SLOT_RESERVED_CODE = "rate_limit_slot_reserved"


#: Codes of Transient errors that are waiting on the provider, not failing: its rate
#: limit, or work it performs in the background (a release, a queued request) still running.
PROVIDER_WAIT_CODES = frozenset({"rate_limited", "release_pending", "background_pending"})


class SlotReserved(Transient):
    """A rate-limit slot is reserved for this job at `at` (Unix time, key `limit_key`),
    further away than a worker thread waits: the job comes back for it then, before the
    request is sent. Like waiting for an invoice, not the job failing."""

    def __init__(self, message: str, code: str, limit_key: str, at: float, wait: float) -> None:
        super().__init__(message, code, retry_after=wait)
        self.limit_key = limit_key
        self.at = at


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
    #: Records facts learnt mid-write with the step's intent (a background request id to
    #: poll instead of writing again after a crash); the pipeline commits them at once.
    record_progress: Callable[[dict[str, Any]], None] = field(default=lambda _: None)


def no_details(ctx: StepContext) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Step:
    """One remote write. `name` keys its result in the job's remote results (and in its
    intent); `intent` says what to record before the write so `lookup` can later tell
    whether it happened; `serialise_on` names what writes of this tenant must not run
    beside each other (a payment's invoice)."""

    name: str
    write: Callable[[StepContext], dict[str, Any]]
    lookup: Callable[[StepContext], list[dict[str, Any]]]
    intent: Callable[[StepContext], dict[str, Any]] = no_details
    serialise_on: str | None = None


@dataclass(frozen=True)
class Plan:
    """The remote writes a job still needs, in order; the last one books it."""

    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def is_final(self, step: Step) -> bool:
        return step is self.steps[-1]


class Provider(Protocol):
    name: str
    calls: list[Call]

    def prepare(self, ctx: StepContext) -> Plan:
        """Resolve references and upsert the customer (idempotent reads and upserts); the
        plan holds the writes not done yet (`ctx.remote` has the results of earlier ones)."""
        ...

    def invalidate_references(self) -> None: ...
