"""Public, unauthenticated views: the front door, health checks and the API catch-all."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from integration.idempotency import idempotent
from integration.views import ApiView
from mifumo.celery import app as celery_app
from mifumo.errors import DomainError, ErrorCode


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _broker_ok() -> tuple[bool, str]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return False, type(exc).__name__
    return True, "ok"


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    ready = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = type(exc).__name__
        ready = False
    broker_ok, detail = _broker_ok()
    checks["broker"] = detail
    ready = ready and broker_ok
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


@extend_schema(exclude=True)
class NotFoundView(ApiView):
    """Anything under the API prefix that no route matches: 404 in the envelope."""

    def _not_found(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise DomainError(
            ErrorCode.NOT_FOUND,
            f"No endpoint at {request.path}; API routes end with a slash",
        )

    get = put = patch = delete = _not_found
    # A POST checks its Idempotency-Key as every POST does, then answers 404.
    post = idempotent(_not_found)
