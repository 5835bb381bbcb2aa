"""The send's fast path: the commonest send served without Django's URL resolver and
middleware chain or DRF's request, negotiation and view machinery, with the same answer.

A one-recipient send (an OTP, an alert) is most of an SMS API's traffic, and on that path the
frameworks cost more than the work: authenticating, counting, checking, pricing, debiting and
storing the message. ``FastSend`` wraps the WSGI application. It takes a request only when
nothing in it can make the frameworks answer differently: ``POST`` to the send route, no query
string, no cookie, no Idempotency-Key, JSON in and out, a body ``sms.serializers.send_in_common``
accepts with no NUL or lone surrogate, a host Django allows, no HTTPS redirect due, a key that
authenticates with the permission the send needs. Everything else goes to Django untouched, the
body put back as it came.

Once a request is taken, it does what the view does, by the same functions: the rate limit
(``integration.views.account_hit``), the send (``sms.apis.send``), errors through
``mifumo.api.exceptions.to_api_error``, the usage log, the request id, metrics and the access
line; the security, frame and length headers come from Django's own middlewares'
``process_response``. When the count says more than a plain answer is due (a limit exceeded,
a key kept by this process that must be confirmed or reloaded), the counted hit is handed over
to Django (``integration.views.hand_over``), which carries on from it as the view would, with
the request counted once. tests/sms/test_fast_send.py holds the two paths to the same answers.

The middleware chain it stands in for is written down (``MIDDLEWARE``); with any other chain,
or with ``MIFUMO_SEND_FAST_PATH`` off, every request goes to Django.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import resolve, set_script_prefix
from django.utils.log import log_response
from rest_framework.renderers import JSONRenderer

from integration import auth, ratelimit
from integration.auth import ApiKeyAuthentication, ApiPrincipal
from integration.permissions import required_permission
from integration.views import HANDED_OVER_HIT, account_hit, hand_over, log_usage
from mifumo import local_cache
from mifumo.api import text
from mifumo.api.exceptions import to_api_error
from mifumo.api.middleware import body_limit, request_begin, request_end, request_id_var
from mifumo.api.responses import envelope, error_body
from mifumo.chunked import is_chunked_without_length
from sms.apis import SendApi, send
from sms.serializers import send_in_common

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# The chain this path answers for. Of it, the API's requests meet: the request id, the
# security headers (and HTTPS redirect), the envelope (a pass for a view's own envelope), the
# host check and Content-Length, CSRF (the view is exempt; without a cookie it adds nothing),
# the frame header; the Site* ones and the dashboard's policy pass API paths by.
MIDDLEWARE = (
    "mifumo.api.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "mifumo.api.middleware.SiteWhiteNoiseMiddleware",
    "mifumo.api.middleware.ApiEnvelopeMiddleware",
    "mifumo.api.middleware.SiteSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "mifumo.api.middleware.SiteAuthenticationMiddleware",
    "mifumo.api.middleware.SiteOTPMiddleware",
    "mifumo.api.middleware.SiteMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dashboard.middleware.ContentSecurityPolicyMiddleware",
)
# What DRF's negotiation and JSON parser answer exactly as this path does.
_CONTENT_TYPES = frozenset(
    {"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}
)
_ACCEPTS = frozenset({None, "*/*", "application/json"})


__all__ = ["HANDED_OVER_HIT", "MIDDLEWARE", "FastSend", "account_hit", "hand_over"]


class _Pass(Exception):
    """The request goes to Django after all (raised before anything was counted)."""


def _never(request: HttpRequest) -> HttpResponse:
    raise AssertionError("only the middlewares' process_request and process_response are used")


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _values(body: bytes) -> dict[str, Any] | None:
    """The send's validated data, as the view gets it, or None for anything the view would
    parse, validate or refuse on its own."""
    try:
        # DRF's JSONParser: UTF-8, no NaN or Infinity.
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    values = send_in_common(data)
    if values is None:
        return None
    try:
        text.check({}, body=data)
    except Exception:  # noqa: BLE001 - the view refuses it, in its own words
        return None
    return values


class FastSend:
    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.path = f"{settings.MIFUMO_API_PREFIX}sms/send/"
        self.on = (
            bool(settings.MIFUMO_SEND_FAST_PATH)
            and tuple(settings.MIDDLEWARE) == MIDDLEWARE
            and not settings.PREPEND_WWW
        )
        self.limit = min(body_limit(self.path), settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2**62)
        self.buckets = ["api", str(SendApi.rate_limit_bucket)]
        self.allow = ", ".join(SendApi().allowed_methods)
        self.security = SecurityMiddleware(_never)
        self.common = CommonMiddleware(_never)
        self.frames = XFrameOptionsMiddleware(_never)
        self._match: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        length = self._length(environ) if self.on else 0
        if not length:
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        # Put back for Django, whichever way the request goes.
        environ["wsgi.input"] = io.BytesIO(body)
        values = _values(body) if len(body) == length else None
        if values is None:
            return self.app(environ, start_response)
        try:
            return self._serve(environ, start_response, values)
        except _Pass:
            return self.app(environ, start_response)

    def _length(self, environ: dict[str, Any]) -> int:
        """The body's length when the request is one this path may take, else 0."""
        if (
            environ.get("PATH_INFO") != self.path
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
            or environ.get("SCRIPT_NAME")
            or environ.get("CONTENT_TYPE") not in _CONTENT_TYPES
            or environ.get("HTTP_ACCEPT") not in _ACCEPTS
            or "HTTP_AUTHORIZATION" not in environ
            or "HTTP_IDEMPOTENCY_KEY" in environ
            or "HTTP_COOKIE" in environ
            or is_chunked_without_length(environ)
        ):
            return 0
        raw = environ.get("CONTENT_LENGTH") or ""
        if not raw.isdigit():
            return 0
        length = int(raw)
        return length if length <= self.limit else 0

    def _request(self, environ: dict[str, Any]) -> WSGIRequest:
        """The request as Django's middlewares would have it before the view, or _Pass when
        one of them would answer it first (a redirect, a host not allowed, a refused user
        agent)."""
        set_script_prefix(get_script_name(environ))
        request = WSGIRequest(environ)
        if request.path != self.path:
            raise _Pass
        try:
            if self.security.process_request(request) or self.common.process_request(request):
                raise _Pass
        except Exception as exc:
            raise _Pass from exc
        if self._match is None:
            self._match = resolve(self.path)
        request.resolver_match = self._match
        return request

    def _serve(
        self, environ: dict[str, Any], start_response: Callable[..., Any], values: dict[str, Any]
    ) -> HttpResponse:
        signals.request_started.send(sender=self.__class__, environ=environ)
        request = self._request(environ)
        rid_token = request_begin(request)
        cache_token = local_cache.begin_request()
        try:
            principal = self._principal(request)
            hit = account_hit(principal, self.buckets)
            if hit.versions is not None:
                local_cache.set_validated(hit.versions)
            usage = ratelimit.tightest(hit.usages)
            if not auth.is_confirmed(principal, hit.versions) or (usage and usage.exceeded):
                # More than a plain answer is due: the view carries on from this count.
                hand_over(environ, principal, self.buckets, hit)
                raise _Pass
            response = self._answer(request, principal, hit, values)
            self.common.process_response(request, response)
            self.security.process_response(request, response)
            request_end(request, response)
        finally:
            local_cache.end_request(cache_token)
            request_id_var.reset(rid_token)
        if response.status_code >= 400:
            # As Django's handler logs every refusal, once the middlewares are done.
            log_response(
                "%s: %s", response.reason_phrase, request.path, response=response, request=request
            )
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        response._resource_closers.append(request.close)  # type: ignore[attr-defined]
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [*response.items()],
        )
        return response

    def _principal(self, request: WSGIRequest) -> ApiPrincipal:
        """The caller, or _Pass for a key that does not authenticate or may not send: the
        view answers those, counting them as it does."""
        try:
            found = ApiKeyAuthentication().authenticate(request)  # type: ignore[arg-type]
        except Exception as exc:
            raise _Pass from exc
        if found is None:
            raise _Pass
        principal = found[0]
        if not principal.api_key.allows(required_permission(request, SendApi)):  # type: ignore[arg-type]
            raise _Pass
        return principal

    def _answer(
        self,
        request: WSGIRequest,
        principal: ApiPrincipal,
        hit: ratelimit.Hit,
        values: dict[str, Any],
    ) -> HttpResponse:
        """The view's answer, headers and usage log row included."""
        usages: list[ratelimit.Usage] = []
        headers: dict[str, str] = {}
        try:
            if hit.marks[0]:
                auth.record_last_used(principal.api_key)
            usages = hit.usages
            data, message = send(principal, values)
            body = envelope(success=True, message=message, data=data)
            status = 200
        except Exception as exc:  # noqa: BLE001 - answered as the view's exception handler does
            error = to_api_error(exc, request.request_id)  # type: ignore[attr-defined]
            body = error_body(error.code, error.message, error.details)
            status, headers = error.status, error.headers
        response = HttpResponse(
            JSONRenderer().render(body), content_type="application/json", status=status
        )
        for name, value in headers.items():
            response[name] = value
        response["Allow"] = self.allow
        usage = ratelimit.tightest(usages)
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        log_usage(request, principal.api_key, status, body["error_code"])
        return self.frames.process_response(request, response)
