"""The response envelope: exactly success, message, data, error_code, details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import JsonResponse
from rest_framework.response import Response

from mifumo.api.errors import DEFAULT_MESSAGE, HTTP_STATUS, ErrorCode


def envelope(
    *,
    success: bool,
    message: str,
    data: Any = None,
    error_code: str | None = None,
    details: Any = None,
) -> dict[str, Any]:
    return {
        "success": success,
        "message": message,
        "data": data,
        "error_code": error_code,
        "details": None if success else details,
    }


def ok(data: Any, message: str, *, status: int = 200) -> Response:
    return Response(envelope(success=True, message=message, data=data), status=status)


def error_body(code: ErrorCode, message: str | None = None, details: Any = None) -> dict[str, Any]:
    return envelope(
        success=False,
        message=message or DEFAULT_MESSAGE[code],
        error_code=code.value,
        details=details,
    )


def error_json_response(
    code: ErrorCode,
    message: str | None = None,
    details: Any = None,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JsonResponse:
    """An envelope outside DRF (middleware, Django-level errors)."""
    response = JsonResponse(error_body(code, message, details), status=status or HTTP_STATUS[code])
    for name, value in (headers or {}).items():
        response[name] = value
    return response
