"""eAccounting's error format: the ErrorCode values, `ApiError` and its body, validation
errors, and the wording a client must not recognise answers by."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

from worker.simulators.modelcheck import Violation

# ErrorCode values. 4010 (throttled) is eAccounting's own; the others are this simulator's
# choice, since the reference only fixes the keys (ErrorCode, Error, DeveloperErrorMessage,
# ErrorId).
VALIDATION_FAILED = 4000
UNAUTHORIZED = 4001
FORBIDDEN = 4003
NOT_FOUND = 4004
METHOD_NOT_ALLOWED = 4005
THROTTLED = 4010
NOT_SIMULATED = 5010


class ApiError(Exception):
    """An error answered in eAccounting's format."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        error: str = "",
        violations: Sequence[Violation] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error = error or {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden"}.get(
            status, "Error"
        )
        self.violations = list(violations)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ErrorCode": self.code,
            "Error": self.error,
            "DeveloperErrorMessage": self.message,
            "ErrorId": str(uuid.uuid4()),
        }
        if self.violations:
            body["ValidationErrors"] = [
                {"Field": v.field, "Message": v.message} for v in self.violations
            ]
        return body


def invalid(violations: Sequence[Violation]) -> ApiError:
    message = " ".join(v.message for v in violations)
    return ApiError(400, VALIDATION_FAILED, message, error="ValidationError", violations=violations)


def invalid_field(field_name: str, message: str) -> ApiError:
    return invalid([Violation(field_name, f"{field_name}: {message}")])


#: Wording of the answers a client might be tempted to recognise by their words, picked at
#: random per answer, as a company's language would: the reference fixes no wording, so
#: ledgerpush must classify by status and ErrorCode (tests fail when it reads words).
_GONE = (
    "Objektet finns inte ({what} {ident}).",
    "Objektet finnes ikke ({what} {ident}).",
    "Kohdetta ei ole ({what} {ident}).",
    "Het object bestaat niet ({what} {ident}).",
)
_DENIED = (
    "Åtkomst nekad: {target}.",
    "Ingen tilgang: {target}.",
    "Pääsy evätty: {target}.",
    "Geen toegang: {target}.",
)
_random = random.Random()


def reworded(options: Sequence[str], **values: str) -> str:
    return _random.choice(options).format(**values)


def gone_message(what: str, ident: str) -> str:
    return reworded(_GONE, what=what, ident=ident)


def denied_message(target: str) -> str:
    return reworded(_DENIED, target=target)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, NOT_FOUND, gone_message(what, ident), error="NotFound")


def throttle_message(limit: int, retry_after: int) -> str:
    return (
        f"API calls quota exceeded! maximum admitted {limit} per Minute. "
        f"Try again in {retry_after} seconds."
    )


def throttle_body(limit: int, retry_after: int) -> dict[str, Any]:
    return {
        "ErrorCode": THROTTLED,
        "DeveloperErrorMessage": throttle_message(limit, retry_after),
        "ErrorId": str(uuid.uuid4()),
    }
