"""Fast paths: the API's commonest requests served without Django's URL resolver and
middleware chain or DRF's request, negotiation and view machinery, with the same answer.

A fast path wraps the WSGI application. It takes a request only when nothing in it can make
the frameworks answer differently, and hands everything else to Django untouched. Once it has
taken a request it does what the view's frame does, by the same functions: the key's
authentication and permission, the rate limit (``integration.views.account_hit``), errors
through ``mifumo.api.exceptions.to_api_error``, the usage log, the request id, metrics and
the access line; the security, frame and length headers come from Django's own middlewares'
``process_response``. When the count says more than a plain answer is due (a limit exceeded,
a key kept by this process that must be confirmed or reloaded), the counted hit is handed
over to Django (``integration.views.hand_over``), which carries on from it as the view
would, with the request counted once.

``FastPath`` is that frame; a subclass says which requests it takes and what the view's
answer is. Two are served this way: the commonest send (``sms.fast_send.FastSend``) and the
reads an integration polls (``FastRead`` below: a view opts in with ``fast_read = True``).
tests/sms/test_fast_send.py and tests/integration/test_fast_read.py hold each to Django's
answers.

The middleware chain they stand in for is written down (``MIDDLEWARE``); with any other
chain, or with the path's setting off, every request goes to Django.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, ResolverMatch, resolve, set_script_prefix
from django.utils.log import log_response
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from integration import auth, ratelimit
from integration.auth import ApiKeyAuthentication, ApiPrincipal
from integration.permissions import required_permission
from integration.views import ApiView, account_hit, hand_over, log_usage
from mifumo import local_cache
from mifumo.api import text
from mifumo.api.exceptions import to_api_error
from mifumo.api.middleware import is_api_path, request_begin, request_end, request_id_var
from mifumo.api.responses import error_body
from mifumo.chunked import is_chunked_without_length
from mifumo.proxy import take_forwarded_scheme

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# What the view's work gives: the body, its status and headers of its own.
Answer = tuple[dict[str, Any], int, dict[str, str]]

# The chain these paths answer for. Of it, the API's requests meet: the scheme a trusted
# proxy forwarded, the request id, the security headers (and HTTPS redirect), the envelope (a
# pass for a view's own envelope), the host check and Content-Length, CSRF (the views are
# exempt; without a cookie it adds nothing), the frame header; the Site* ones and the
# dashboard's policy pass API paths by.
MIDDLEWARE = (
    "mifumo.proxy.ForwardedProtoMiddleware",
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
# What DRF's negotiation answers exactly as these paths do.
ACCEPTS = frozenset({None, "*/*", "application/json"})


class Pass(Exception):
    """The request goes to Django after all (raised before anything was counted)."""


def _never(request: HttpRequest) -> HttpResponse:
    raise AssertionError("only the middlewares' process_request and process_response are used")


class FastPath(ABC):
    # The setting that switches the path on.
    setting: ClassVar[str]

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.on = (
            bool(getattr(settings, self.setting))
            and tuple(settings.MIDDLEWARE) == MIDDLEWARE
            and not settings.PREPEND_WWW
        )
        self.security = SecurityMiddleware(_never)
        self.common = CommonMiddleware(_never)
        self.frames = XFrameOptionsMiddleware(_never)
        self._allow: dict[type[ApiView], str] = {}

    @abstractmethod
    def resolve(self, path: str) -> ResolverMatch:
        """The route of a request this path may take, or Pass."""

    def request(self, environ: dict[str, Any]) -> tuple[WSGIRequest, type[ApiView]]:
        """The request as Django's middlewares would have it before the view, and its view;
        Pass when one of them would answer it first (a redirect, a host not allowed, a
        refused user agent)."""
        set_script_prefix(get_script_name(environ))
        # On a copy: WSGIRequest writes the decoded path back into its environ, which Django
        # must be handed as the server gave it should the request pass.
        request = WSGIRequest({**environ})
        match = self.resolve(request.path)
        # As ForwardedProtoMiddleware does, before the HTTPS redirect is looked at.
        take_forwarded_scheme(request)
        try:
            if self.security.process_request(request) or self.common.process_request(request):
                raise Pass
        except Exception as exc:
            raise Pass from exc
        request.resolver_match = match
        return request, match.func.view_class  # type: ignore[attr-defined]

    def serve(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        work: Callable[[WSGIRequest, ApiPrincipal, type[ApiView]], Answer],
        check: Callable[[WSGIRequest], None] = lambda request: None,
    ) -> HttpResponse:
        """The request answered with ``work``'s answer, or Pass. ``check`` may Pass a request
        before it is counted."""
        request, view = self.request(environ)
        check(request)
        signals.request_started.send(sender=self.__class__, environ=environ)
        rid_token = request_begin(request)
        cache_token = local_cache.begin_request()
        try:
            principal = self._principal(request, view)
            buckets = ["api", *([view.rate_limit_bucket] if view.rate_limit_bucket else [])]
            hit = account_hit(principal, buckets)
            if hit.versions is not None:
                local_cache.set_validated(hit.versions)
            usage = ratelimit.tightest(hit.usages)
            if not auth.is_confirmed(principal, hit.versions) or (usage and usage.exceeded):
                # More than a plain answer is due: the view carries on from this count.
                hand_over(environ, principal, buckets, hit)
                raise Pass
            response = self._answer(request, principal, view, hit, work)
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

    def _principal(self, request: WSGIRequest, view: type[ApiView]) -> ApiPrincipal:
        """The caller, or Pass for a key that does not authenticate or may not do this: the
        view answers those, counting them as it does."""
        try:
            found = ApiKeyAuthentication().authenticate(request)  # type: ignore[arg-type]
        except Exception as exc:
            raise Pass from exc
        if found is None:
            raise Pass
        principal = found[0]
        if not principal.api_key.allows(required_permission(request, view)):  # type: ignore[arg-type]
            raise Pass
        return principal

    def _answer(
        self,
        request: WSGIRequest,
        principal: ApiPrincipal,
        view: type[ApiView],
        hit: ratelimit.Hit,
        work: Callable[[WSGIRequest, ApiPrincipal, type[ApiView]], Answer],
    ) -> HttpResponse:
        """The view's answer, headers and usage log row included."""
        usages: list[ratelimit.Usage] = []
        try:
            if hit.marks[0]:
                auth.record_last_used(principal.api_key)
            usages = hit.usages
            body, status, headers = work(request, principal, view)
        except Exception as exc:  # noqa: BLE001 - answered as the view's exception handler does
            error = to_api_error(exc, request.request_id)  # type: ignore[attr-defined]
            body = error_body(error.code, error.message, error.details)
            status, headers = error.status, error.headers
        response = HttpResponse(
            JSONRenderer().render(body), content_type="application/json", status=status
        )
        for name, value in headers.items():
            response[name] = value
        response["Allow"] = self._allowed(view)
        usage = ratelimit.tightest(usages)
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        log_usage(request, principal.api_key, status, body["error_code"])
        return self.frames.process_response(request, response)

    def _allowed(self, view: type[ApiView]) -> str:
        allow = self._allow.get(view)
        if allow is None:
            instance = view()
            if hasattr(instance, "get") and not hasattr(instance, "head"):
                instance.head = instance.get  # type: ignore[attr-defined]  # as View.setup does
            allow = self._allow[view] = ", ".join(instance.allowed_methods)
        return allow


class FastRead(FastPath):
    """The reads an integration polls (a message's status, delivery reports, a contact
    search): a ``GET`` with no body, cookie or ``format`` parameter, JSON out, to a view that
    opts in (``fast_read = True``), whose query and path parameters hold no NUL or lone
    surrogate. The view's own ``get`` answers it, given a DRF request already authenticated;
    a view that opts in reads nothing of the request but its caller and its parameters."""

    setting = "MIFUMO_READ_FAST_PATH"

    # Paths without parameters (delivery reports, search, balance; any other API route it
    # passes), resolved once: the view's match, or None for a route it leaves to Django.
    KNOWN_PATHS = 64

    def __init__(self, app: WsgiApp) -> None:
        super().__init__(app)
        self._known: dict[str, ResolverMatch | None] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not (self.on and self._takes(environ)):
            return self.app(environ, start_response)
        try:
            return self.serve(environ, start_response, _read, _parameters_pass)
        except Pass:
            return self.app(environ, start_response)

    def _takes(self, environ: dict[str, Any]) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "GET"
            and is_api_path(path := environ.get("PATH_INFO", ""))
            and self._known.get(path, True) is not None
            and not environ.get("SCRIPT_NAME")
            and environ.get("HTTP_ACCEPT") in ACCEPTS
            and "HTTP_AUTHORIZATION" in environ
            and "HTTP_COOKIE" not in environ
            and environ.get("CONTENT_LENGTH") in (None, "", "0")
            and "HTTP_TRANSFER_ENCODING" not in environ
            and not is_chunked_without_length(environ)
        )

    def resolve(self, path: str) -> ResolverMatch:
        match = self._known.get(path)
        if match is not None:
            return match
        try:
            match = resolve(path)
        except Resolver404:
            raise Pass from None
        view = getattr(match.func, "view_class", None)
        served = isinstance(view, type) and issubclass(view, ApiView) and view.fast_read
        if not match.kwargs and len(self._known) < self.KNOWN_PATHS:
            self._known[path] = match if served else None
        if not served:
            raise Pass
        return match


def _parameters_pass(request: WSGIRequest) -> None:
    """Pass a request whose parameters DRF would read otherwise, or the view refuse itself
    (``format``, a NUL or lone surrogate, too many fields)."""
    try:
        params = request.GET
        if "format" in params:
            raise Pass
        match = request.resolver_match
        assert match is not None
        text.check({**match.kwargs, **dict(params.lists())}, body=None)
    except Exception as exc:
        raise Pass from exc


def _read(request: WSGIRequest, principal: ApiPrincipal, view_class: type[ApiView]) -> Answer:
    """The view's ``get``, as DRF calls it once the frame is done."""
    match = request.resolver_match
    assert match is not None
    drf_request = Request(request)
    drf_request.user = principal  # type: ignore[assignment]
    drf_request.auth = principal.api_key
    view = view_class()
    view.request = drf_request
    view.args, view.kwargs = (), match.kwargs
    view.format_kwarg = None
    view.headers = {}
    response = view.get(drf_request, **match.kwargs)  # type: ignore[attr-defined]
    assert isinstance(response, Response)
    headers = {name: value for name, value in response.items() if name != "Content-Type"}
    return response.data, response.status_code, headers
