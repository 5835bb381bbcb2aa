"""Domain errors: what went wrong, in the platform's own words, with no HTTP in them.

Services and selectors raise `DomainError`; the API's exception handler maps its code to a
status (`mifumo.api.errors.HTTP_STATUS`) and the dashboard turns NOT_FOUND into a 404 page.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class ErrorCode(enum.StrEnum):
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INVALID_PHONE = "INVALID_PHONE"
    MESSAGE_TOO_LONG = "MESSAGE_TOO_LONG"
    INVALID_SENDER_ID = "INVALID_SENDER_ID"
    INVALID_SCHEDULE_TIME = "INVALID_SCHEDULE_TIME"
    TOO_MANY_RECIPIENTS = "TOO_MANY_RECIPIENTS"
    UNSUPPORTED_DESTINATION = "UNSUPPORTED_DESTINATION"
    OPTED_OUT = "OPTED_OUT"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    CONFLICT = "CONFLICT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"


DEFAULT_MESSAGE: Mapping[ErrorCode, str] = {
    ErrorCode.VALIDATION_ERROR: "The request is not valid",
    ErrorCode.INVALID_PHONE: "One or more phone numbers are not valid mobile numbers",
    ErrorCode.MESSAGE_TOO_LONG: "The message exceeds the character limit",
    ErrorCode.INVALID_SENDER_ID: "The sender ID is not approved for this account",
    ErrorCode.INVALID_SCHEDULE_TIME: "The schedule time is not valid",
    ErrorCode.TOO_MANY_RECIPIENTS: "Too many recipients in one request",
    ErrorCode.UNSUPPORTED_DESTINATION: "No route covers this destination",
    ErrorCode.OPTED_OUT: "Every recipient has opted out",
    ErrorCode.INVALID_CREDENTIALS: "Invalid API Key or request payload",
    ErrorCode.INSUFFICIENT_BALANCE: "Account balance too low",
    ErrorCode.PERMISSION_DENIED: "This API key lacks the permission this endpoint needs",
    ErrorCode.NOT_FOUND: "Not found",
    ErrorCode.METHOD_NOT_ALLOWED: "Method not allowed",
    ErrorCode.CONFLICT: "Conflict with the current state",
    ErrorCode.PAYLOAD_TOO_LARGE: "Request body too large",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "Unsupported media type",
    ErrorCode.RATE_LIMIT_EXCEEDED: "Too many requests",
    ErrorCode.INTERNAL_ERROR: "Internal server error",
    ErrorCode.SERVICE_UNAVAILABLE: "Service temporarily unavailable",
}


class DomainError(Exception):
    """An error a caller can act on: a code from the catalogue, a message and details."""

    def __init__(self, code: ErrorCode, message: str | None = None, details: Any = None) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGE[code]
        self.details = details
        super().__init__(self.message)
