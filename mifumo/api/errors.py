"""The API's side of the error catalogue: the HTTP status of every code, and `ApiError`
for the errors only the HTTP layer raises (authentication, limits, content negotiation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mifumo.errors import DEFAULT_MESSAGE, DomainError, ErrorCode

__all__ = ["DEFAULT_MESSAGE", "HTTP_STATUS", "ApiError", "DomainError", "ErrorCode"]

HTTP_STATUS: Mapping[ErrorCode, int] = {
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.INVALID_PHONE: 400,
    ErrorCode.MESSAGE_TOO_LONG: 400,
    ErrorCode.INVALID_SENDER_ID: 400,
    ErrorCode.INVALID_SCHEDULE_TIME: 400,
    ErrorCode.TOO_MANY_RECIPIENTS: 400,
    ErrorCode.UNSUPPORTED_DESTINATION: 400,
    ErrorCode.OPTED_OUT: 400,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.INSUFFICIENT_BALANCE: 402,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.RATE_LIMIT_EXCEEDED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
}


class ApiError(DomainError):
    """A domain error with the HTTP status and headers the envelope is sent with."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        details: Any = None,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, message, details)
        self.status = status or HTTP_STATUS[code]
        self.headers = dict(headers or {})

    @classmethod
    def from_domain(cls, error: DomainError) -> ApiError:
        if isinstance(error, ApiError):
            return error
        return cls(error.code, error.message, error.details)
