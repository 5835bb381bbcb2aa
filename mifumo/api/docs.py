"""OpenAPI helpers: describe envelope responses and the error codes an endpoint answers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    inline_serializer,
)
from rest_framework import serializers

from mifumo.api.errors import DEFAULT_MESSAGE, HTTP_STATUS, ErrorCode
from mifumo.api.responses import error_body

_envelopes: dict[str, Any] = {}

# Every authenticated endpoint can answer these.
COMMON_ERRORS = (
    ErrorCode.INVALID_CREDENTIALS,
    ErrorCode.PERMISSION_DENIED,
    ErrorCode.RATE_LIMIT_EXCEEDED,
    ErrorCode.INTERNAL_ERROR,
    ErrorCode.SERVICE_UNAVAILABLE,
)

ErrorEnvelope = inline_serializer(
    name="ErrorEnvelope",
    fields={
        "success": serializers.BooleanField(default=False),
        "message": serializers.CharField(),
        "data": serializers.JSONField(allow_null=True, default=None),
        "error_code": serializers.ChoiceField(choices=[c.value for c in ErrorCode]),
        "details": serializers.JSONField(allow_null=True),
    },
)


def envelope_of(data: Any) -> Any:
    name = f"{getattr(data, '__name__', type(data).__name__)}Envelope"
    if name not in _envelopes:
        _envelopes[name] = inline_serializer(
            name=name,
            fields={
                "success": serializers.BooleanField(default=True),
                "message": serializers.CharField(),
                "data": data() if isinstance(data, type) else data,
                "error_code": serializers.CharField(allow_null=True, default=None),
                "details": serializers.JSONField(allow_null=True, default=None),
            },
        )
    return _envelopes[name]


def envelope_responses(
    data: Any,
    *,
    status: int = 200,
    errors: Iterable[ErrorCode] = (),
    example: Any = None,
) -> dict[int, OpenApiResponse]:
    ok_examples = (
        [
            OpenApiExample(
                "success",
                value={
                    "success": True,
                    "message": "OK",
                    "data": example,
                    "error_code": None,
                    "details": None,
                },
            )
        ]
        if example is not None
        else []
    )
    responses = {status: OpenApiResponse(envelope_of(data), examples=ok_examples)}
    by_status: dict[int, list[ErrorCode]] = defaultdict(list)
    for code in (*errors, *COMMON_ERRORS):
        if code not in by_status[HTTP_STATUS[code]]:
            by_status[HTTP_STATUS[code]].append(code)
    for http_status, codes in sorted(by_status.items()):
        responses[http_status] = OpenApiResponse(
            ErrorEnvelope,
            description="; ".join(f"{c.value}: {DEFAULT_MESSAGE[c]}" for c in codes),
            examples=[
                OpenApiExample(c.value, value=error_body(c), status_codes=[str(http_status)])
                for c in codes
            ],
        )
    return responses


def page_parameters(*, default: int = 50, maximum: int = 100) -> list[OpenApiParameter]:
    """``page`` and ``per_page``, as ``mifumo.api.pagination.page_params`` reads them."""
    return [
        OpenApiParameter("page", int, description="Page number (default 1)"),
        OpenApiParameter(
            "per_page", int, description=f"Items per page (default {default}, at most {maximum})"
        ),
    ]
