"""Request ids, the envelope for everything under the API prefix that DRF does not see, and
the browser site's middlewares, which API requests pass by."""

from __future__ import annotations

import contextvars
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django_otp.middleware import OTPMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

from mifumo import metrics
from mifumo.api.errors import ErrorCode
from mifumo.api.exceptions import to_api_error
from mifumo.api.responses import error_json_response
from mifumo.chunked import is_chunked_without_length
from mifumo.logging import log_request

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_STATUS_CODES = {
    400: ErrorCode.VALIDATION_ERROR,
    401: ErrorCode.INVALID_CREDENTIALS,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    429: ErrorCode.RATE_LIMIT_EXCEEDED,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}


class RequestIdMiddleware:
    """Gives every request an id (a sane incoming X-Request-ID is kept) and times it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = request_begin(request)
        try:
            response = self.get_response(request)
            request_end(request, response)
        finally:
            request_id_var.reset(token)
        return response


def request_begin(request: HttpRequest) -> contextvars.Token[str | None]:
    """The request's id and start time; the token resets ``request_id_var`` afterwards."""
    incoming = request.META.get("HTTP_X_REQUEST_ID", "")
    rid = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request.request_id = rid  # type: ignore[attr-defined]
    request.started_at = time.perf_counter()  # type: ignore[attr-defined]
    return request_id_var.set(rid)


def request_end(request: HttpRequest, response: HttpResponse) -> None:
    """The answer's X-Request-ID, the request's metrics and access line (still inside the
    request's context, so the line carries its id)."""
    response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - request.started_at  # type: ignore[attr-defined]
    metrics.observe_request(request, response.status_code, elapsed)
    log_request(
        request, status=response.status_code, seconds=elapsed, route=metrics.route_of(request)
    )


def body_limit(path: str) -> int:
    if path == f"{settings.MIFUMO_API_PREFIX}contacts/import/":
        return int(settings.MIFUMO_MAX_IMPORT_BODY_BYTES)
    return int(settings.MIFUMO_MAX_BODY_BYTES)


def is_api_path(path: str) -> bool:
    return path.startswith(settings.MIFUMO_API_PREFIX)


class SiteOnly:
    """A middleware of the browser site (dashboard, admin) that requests under the API prefix
    pass by.

    The API authenticates with keys alone (``integration.auth``) and never reads a cookie, a
    session, Django's ``request.user`` or messages. Run for an API request, these middlewares
    only cost time: a session store, two lazy users, a message store whose cookie half builds
    a signer, a static file lookup. The one answer they could change is that to a request
    carrying a malformed session cookie, which the session middleware would clear
    (``Set-Cookie``, ``Vary: Cookie``); the API leaves it alone. Subclasses name this first,
    before the middleware they wrap.

    CSRF keeps Django's own class: ``check --deploy`` looks for it by name, and its cost on a
    CSRF-exempt API view is a cookie lookup."""

    get_response: Callable[..., Any]  # sync here; a coroutine function under ASGI

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_path(request.path):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SiteWhiteNoiseMiddleware(SiteOnly, WhiteNoiseMiddleware):
    """Static files live under ``STATIC_URL``, never under the API prefix."""


class SiteSessionMiddleware(SiteOnly, SessionMiddleware):
    pass


class SiteAuthenticationMiddleware(SiteOnly, AuthenticationMiddleware):
    """API requests get their ``request.user`` from DRF: the key's principal."""


class SiteOTPMiddleware(SiteOnly, OTPMiddleware):
    pass


class SiteMessageMiddleware(SiteOnly, MessageMiddleware):
    pass


class ApiEnvelopeMiddleware:
    """Under the API prefix: refuse oversized bodies early, and turn any response that is
    not already an envelope (Django's own 404/403/500 pages) or any escaped exception into
    one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path):
            return self.get_response(request)
        if is_chunked_without_length(request.META):
            # The server did not say where the body ends (mifumo.chunked): it would be read
            # as empty.
            return error_json_response(
                ErrorCode.VALIDATION_ERROR,
                "A body sent in chunks needs a server that ends it; send Content-Length",
                {"Content-Length": ["required"]},
                status=411,
            )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = body_limit(request.path)
        if length > limit:
            return error_json_response(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"Request body is {length} bytes; the limit is {limit}",
                {"limit": limit, "size": length},
            )
        response = self.get_response(request)
        if _is_envelope(response):
            return response
        code = _STATUS_CODES.get(response.status_code)
        if code is None:
            code = ErrorCode.INTERNAL_ERROR if response.status_code >= 500 else ErrorCode.NOT_FOUND
        details = (
            {"request_id": getattr(request, "request_id", None)}
            if code is ErrorCode.INTERNAL_ERROR
            else None
        )
        return error_json_response(code, details=details, status=response.status_code)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_api_path(request.path):
            return None
        err = to_api_error(exception, getattr(request, "request_id", None))
        return error_json_response(
            err.code, err.message, err.details, status=err.status, headers=err.headers
        )


def _is_envelope(response: HttpResponse) -> bool:
    # Our API views mark their responses; parsing is the fallback for anything else.
    if getattr(response, "mifumo_envelope", False):
        return True
    if not response.get("Content-Type", "").startswith("application/json"):
        return False
    if getattr(response, "streaming", False):
        return True
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {
        "success",
        "message",
        "data",
        "error_code",
        "details",
    }
