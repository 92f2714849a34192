"""The two error bodies of Visma.net ERP and the exception that carries them.

Business and validation errors use the `message` form
(`{"message": "VismaId: <uuid>. Error creating document. Error: ..."}`); licence and
context problems use the IPP exception form (`ExceptionType`, `ExceptionMessage`,
`ExceptionFaultCode`, `ExceptionMessageID`, `ExceptionDetails`).
"""

from __future__ import annotations

import uuid
from typing import Any

NO_LICENSE_CODE = "12027"
NO_LICENSE_MESSAGE = "No license for this company."


class ApiError(Exception):
    """An API answer other than success: status, JSON body and extra headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


def message_error(status: int, message: str) -> ApiError:
    return ApiError(status, {"message": message})


def business_error(action: str, detail: str, status: int = 400) -> ApiError:
    """`action` as the ERP words it: "creating document", "creating payment", ..."""
    return message_error(status, f"VismaId: {uuid.uuid4()}. Error {action}. Error: {detail}")


def not_found(what: str, key: str) -> ApiError:
    return message_error(404, f"VismaId: {uuid.uuid4()}. {what} with id '{key}' not found.")


def ipp_error(status: int, message: str, code: str) -> ApiError:
    return ApiError(
        status,
        {
            "ExceptionType": "IPPException",
            "ExceptionMessage": message,
            "ExceptionFaultCode": code,
            "ExceptionMessageID": f"{code}_{uuid.uuid4()}",
            "ExceptionDetails": "",
        },
    )


def no_license() -> ApiError:
    return ipp_error(401, NO_LICENSE_MESSAGE, NO_LICENSE_CODE)


def unauthorized(reason: str = "Authorization has been denied for this request.") -> ApiError:
    return ApiError(401, {"message": reason}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def cannot_be_found(field: str, value: str) -> str:
    return f"{field} '{value}' cannot be found in the system."
