"""Public, unauthenticated views: the front door, health checks and the API catch-all."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from integration.idempotency import idempotent
from integration.views import ApiView
from mifumo.api.middleware import is_api_path
from mifumo.api.responses import error_json_response
from mifumo.celery import app as celery_app
from mifumo.errors import DomainError, ErrorCode


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A request Django refused before any view (a Host header this server does not answer
    to, a malformed header): under the API prefix a VALIDATION_ERROR envelope, as every API
    answer is; elsewhere Django's page."""
    if not is_api_path(request.path):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        return error_json_response(
            ErrorCode.VALIDATION_ERROR,
            "The Host header names a host this server does not answer to",
            {"host": ["not in ALLOWED_HOSTS"]},
        )
    return error_json_response(ErrorCode.VALIDATION_ERROR, "The request could not be read")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _broker_ok() -> tuple[bool, str]:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return False, type(exc).__name__
    return True, "ok"


def _database_ok() -> tuple[bool, str]:
    try:
        connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return False, type(exc).__name__
    return True, "ok"


CHECKS = {"database": _database_ok, "broker": _broker_ok}


@dataclass
class _Round:
    """One run of the checks: what each found, as they finish."""

    found: dict[str, tuple[bool, str]] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            for name, check in CHECKS.items():
                self.found[name] = check()
        finally:
            connection.close()  # the thread's own, made for this round
            self.done.set()


_current: _Round | None = None
_current_lock = threading.Lock()


def readyz(request: HttpRequest) -> JsonResponse:
    """Whether the database and the broker answer, within ``MIFUMO_READY_TIMEOUT_SECONDS``.

    The checks run in a thread of their own, one round at a time per process: a server that
    accepts connections and never answers (a stalled Redis, a frozen PostgreSQL) makes the
    probe answer "timed out" at its deadline instead of holding a web thread as long as the
    stall lasts, and probes that arrive meanwhile wait on that same round rather than start
    another, so a stall ties up at most one thread however often the probe comes."""
    global _current
    with _current_lock:
        if _current is None or _current.done.is_set():
            _current = _Round()
            threading.Thread(target=_current.run, name="readyz", daemon=True).start()
        round_ = _current
    round_.done.wait(settings.MIFUMO_READY_TIMEOUT_SECONDS)
    found = dict(round_.found)
    checks = {name: found[name][1] if name in found else "timed out" for name in CHECKS}
    ready = all(name in found and found[name][0] for name in CHECKS)
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
