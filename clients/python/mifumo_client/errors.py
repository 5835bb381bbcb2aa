"""What the client raises.

Every error is a ``MifumoException``. An answer from the API that is an error is a
``MifumoError`` (one subclass per ``error_code``); not reaching the server, or losing the
connection before the answer, is a ``MifumoConnectionError``: then the request may or may not
have been carried out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mifumo_client.models import MessageStatus


class MifumoException(Exception):
    """The base of everything this package raises."""


class ConfigurationError(MifumoException):
    """The client cannot be used as configured (no API key, a bad base URL)."""


class MifumoConnectionError(MifumoException):
    """No answer: the server could not be reached, or the connection broke or timed out
    before the answer came. Raised after the client's own retries ran out."""


class MifumoTimeoutError(MifumoConnectionError):
    """No answer within the client's timeout."""


class WaitTimeoutError(MifumoException, TimeoutError):
    """A wait for a message to reach a final status ran out of time; ``status`` is the last
    one read."""

    def __init__(self, message: str, status: MessageStatus) -> None:
        super().__init__(message)
        self.status = status


class WebhookSignatureError(MifumoException):
    """A webhook request whose ``X-Mifumo-Signature`` does not match its body, or is too old."""


class MifumoError(MifumoException):
    """The API answered with an error.

    ``status`` is the HTTP status, ``error_code`` the envelope's code (None when the answer was
    not an envelope at all, e.g. a proxy's error page), ``message`` its text, ``details`` its
    details, ``request_id`` the ``X-Request-ID`` to quote to support.
    """

    #: The error_code this class stands for (None for the classes that are not one code).
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_code: str | None,
        details: Any = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.details = details
        self.request_id = request_id
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        code = self.error_code or "HTTP"
        return f"{code} ({self.status}): {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, error_code={self.error_code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class UnexpectedResponseError(MifumoError):
    """An answer that is not the API's JSON envelope (a proxy's error page, a cut body)."""


class BadRequestError(MifumoError):
    """A 400: the request itself is wrong; sending it again will not help."""


class ValidationError(BadRequestError):
    code = "VALIDATION_ERROR"


class InvalidPhoneError(BadRequestError):
    code = "INVALID_PHONE"


class MessageTooLongError(BadRequestError):
    code = "MESSAGE_TOO_LONG"


class InvalidSenderIdError(BadRequestError):
    code = "INVALID_SENDER_ID"


class InvalidScheduleTimeError(BadRequestError):
    code = "INVALID_SCHEDULE_TIME"


class TooManyRecipientsError(BadRequestError):
    code = "TOO_MANY_RECIPIENTS"


class UnsupportedDestinationError(BadRequestError):
    code = "UNSUPPORTED_DESTINATION"


class OptedOutError(BadRequestError):
    code = "OPTED_OUT"


class InvalidCredentialsError(MifumoError):
    code = "INVALID_CREDENTIALS"


class InsufficientBalanceError(MifumoError):
    code = "INSUFFICIENT_BALANCE"


class PermissionDeniedError(MifumoError):
    code = "PERMISSION_DENIED"


class NotFoundError(MifumoError):
    code = "NOT_FOUND"


class MethodNotAllowedError(MifumoError):
    code = "METHOD_NOT_ALLOWED"


class ConflictError(MifumoError):
    code = "CONFLICT"


class PayloadTooLargeError(MifumoError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaTypeError(MifumoError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimitError(MifumoError):
    code = "RATE_LIMIT_EXCEEDED"

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again (the ``Retry-After`` header)."""
        return retry_after_seconds(self.headers)


class InternalServerError(MifumoError):
    code = "INTERNAL_ERROR"


class ServiceUnavailableError(MifumoError):
    code = "SERVICE_UNAVAILABLE"


ERRORS_BY_CODE: Mapping[str, type[MifumoError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        InvalidPhoneError,
        MessageTooLongError,
        InvalidSenderIdError,
        InvalidScheduleTimeError,
        TooManyRecipientsError,
        UnsupportedDestinationError,
        OptedOutError,
        InvalidCredentialsError,
        InsufficientBalanceError,
        PermissionDeniedError,
        NotFoundError,
        MethodNotAllowedError,
        ConflictError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        RateLimitError,
        InternalServerError,
        ServiceUnavailableError,
    )
    if cls.code is not None
}


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds when it is a number (Mifumo sends seconds), else None."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


def error_for(
    *,
    status: int,
    error_code: str | None,
    message: str,
    details: Any,
    request_id: str | None,
    headers: Mapping[str, str],
) -> MifumoError:
    """The exception for an error answer: the class of its code, or the base class for a code
    this version of the client does not know."""
    cls = ERRORS_BY_CODE.get(error_code or "", MifumoError)
    return cls(
        message,
        status=status,
        error_code=error_code,
        details=details,
        request_id=request_id,
        headers=headers,
    )
