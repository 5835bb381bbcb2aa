"""Maps every exception raised in an API view to the envelope."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response

from mifumo.api.errors import ApiError, ErrorCode
from mifumo.api.responses import error_body
from mifumo.errors import DomainError

logger = logging.getLogger("mifumo.api")


def _flatten(detail: Any) -> Any:
    """DRF ErrorDetail trees -> plain lists and dicts of strings."""
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def _response(exc: ApiError) -> Response:
    response = Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def to_api_error(exc: Exception, request_id: str | None = None) -> ApiError:
    if isinstance(exc, DomainError):
        return ApiError.from_domain(exc)
    if isinstance(exc, drf.ParseError):
        return ApiError(ErrorCode.VALIDATION_ERROR, "Malformed JSON body", {"body": [str(exc)]})
    if isinstance(exc, RecursionError):
        # json.load recurses once per nesting level; only a hostile body gets this deep.
        return ApiError(
            ErrorCode.VALIDATION_ERROR, "Malformed JSON body", {"body": ["nested too deeply"]}
        )
    if isinstance(exc, drf.ValidationError):
        details = _flatten(exc.detail)
        if isinstance(details, list):
            details = {"non_field_errors": details}
        return ApiError(ErrorCode.VALIDATION_ERROR, "The request is not valid", details)
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return ApiError(
            ErrorCode.INVALID_CREDENTIALS,
            details=str(exc.detail),
            headers={"WWW-Authenticate": 'Bearer realm="mifumo"'},
        )
    if isinstance(exc, drf.PermissionDenied):
        return ApiError(ErrorCode.PERMISSION_DENIED, str(exc.detail))
    if isinstance(exc, DjangoPermissionDenied):
        return ApiError(ErrorCode.PERMISSION_DENIED)
    if isinstance(exc, drf.NotFound | Http404):
        return ApiError(ErrorCode.NOT_FOUND)
    if isinstance(exc, drf.MethodNotAllowed):
        return ApiError(ErrorCode.METHOD_NOT_ALLOWED, str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"{exc.detail} Send JSON with Content-Type: application/json.",
        )
    if isinstance(exc, RequestDataTooBig):
        return ApiError(ErrorCode.PAYLOAD_TOO_LARGE)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.error("database unavailable (request %s): %s", request_id, exc)
        return ApiError(ErrorCode.SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    if isinstance(exc, drf.APIException) and exc.status_code < 500:
        return ApiError(ErrorCode.VALIDATION_ERROR, str(exc.detail), status=exc.status_code)
    if isinstance(exc, DatabaseError):
        logger.exception("database error (request %s)", request_id, exc_info=exc)
    else:
        logger.exception("unhandled error (request %s)", request_id, exc_info=exc)
    return ApiError(
        ErrorCode.INTERNAL_ERROR,
        "Internal server error; quote the request id when contacting support",
        {"request_id": request_id},
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    request = context.get("request")
    request_id = getattr(request, "request_id", None) if request is not None else None
    return _response(to_api_error(exc, request_id))
