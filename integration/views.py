"""The base view for every endpoint under /api/integration/v1/.

Order of checks: authentication -> permission -> rate limit (DESIGN.md). Every response,
errors included, carries the X-RateLimit-* headers of the tightest bucket and is recorded
in the usage log.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from django.http import HttpRequest
from rest_framework.exceptions import APIException
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integration import auth, ratelimit
from integration.auth import ApiPrincipal, last_used_mark, record_last_used
from integration.idempotency import is_idempotent
from integration.models import ApiKey, ApiRequestLog
from integration.usage import buffer
from mifumo import local_cache
from mifumo.api import text
from mifumo.api.errors import ApiError, ErrorCode
from mifumo.api.responses import ok


class ApiView(APIView):
    # None: read for GET, write otherwise (integration.permissions).
    required_permission: ClassVar[str | None] = None
    # A bucket counted on top of "api" (sms_send, contacts).
    rate_limit_bucket: ClassVar[str | None] = None
    # True when integration.fast.FastRead may answer a GET: its ``get`` reads nothing of the
    # request but the caller (``request.user``) and the query and path parameters.
    fast_read: ClassVar[bool] = False

    # Every POST honours Idempotency-Key: its handler is decorated with @idempotent. False
    # for a POST that talks to the network (and is not decorated): the idempotency record is
    # written in one transaction with the work, and no transaction may stay open across an
    # outside call.
    idempotent_post: ClassVar[bool] = True
    # True when the POST's answer carries a secret: its idempotency record keeps it
    # encrypted (integration.idempotency).
    replay_holds_secret: ClassVar[bool] = False

    # What _check_input found, once it has looked.
    _input_checked = False
    _input_error: APIException | ApiError | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A POST that forgot its decorator, or one that should not have it, fails on import.
        super().__init_subclass__(**kwargs)
        post = cls.__dict__.get("post")
        if post is not None and is_idempotent(post) != cls.idempotent_post:
            raise TypeError(
                f"{cls.__qualname__}.post: @idempotent and idempotent_post = "
                f"{cls.idempotent_post} disagree"
            )

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        # The cache versions this request reads are its own (mifumo.local_cache).
        token = local_cache.begin_request()
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            local_cache.end_request(token)

    def options(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        """The methods the route allows, in the envelope like every answer (DRF's metadata
        would describe the view in a shape of its own)."""
        response = ok({"methods": self.allowed_methods}, "The methods this route allows")
        response["Allow"] = ", ".join(self.allowed_methods)
        return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # APIView.initial without its throttles, with our rate limits in their place.
        self.format_kwarg = self.get_format_suffix(**kwargs)
        negotiated = self.perform_content_negotiation(request)
        request.accepted_renderer, request.accepted_media_type = negotiated
        request.version, request.versioning_scheme = self.determine_version(
            request, *args, **kwargs
        )
        request.rate_usages = []  # type: ignore[attr-defined]
        self._input_checked, self._input_error = False, None
        try:
            self.perform_authentication(request)
        except APIException:
            self._limit_anonymous(request)
            raise
        principal = request.user
        if isinstance(principal, ApiPrincipal):
            self._limit_account(request, principal)
        else:
            self._limit_anonymous(request)
            self.check_permissions(request)
            self._check_input(request)

    def _check_input(self, request: Request) -> None:
        """The body parsed (a malformed one or of the wrong type refused) and, before any view
        reads them, no NUL or lone surrogate in the path, the query or the body. Judged once
        per request: DRF raises a parse error on the first read of the body only."""
        if not self._input_checked:
            self._input_checked = True
            try:
                text.check(
                    {**self.kwargs, **dict(request.query_params.lists())},
                    body=request.data if request.method not in SAFE_METHODS else None,
                )
            except (APIException, ApiError) as exc:
                self._input_error = exc
        if self._input_error is not None:
            raise self._input_error

    def _limit_account(self, request: Request, principal: ApiPrincipal) -> None:
        # Permission and input come before the rate limit, and a refused request counts only
        # in "api": the extra bucket counts requests that could have done its work (a body
        # that is not JSON, or holds text no column can store, could not).
        refused = self._refusal(request)
        buckets = ["api"]
        if refused is None and self.rate_limit_bucket:
            buckets.append(self.rate_limit_bucket)
        hit = handed_over(request.META, principal, buckets) or account_hit(principal, buckets)
        if hit.versions is not None:
            local_cache.set_validated(hit.versions)
        usages = hit.usages
        current = self._confirm(request, principal, hit.versions)
        if current is not principal:
            # The key was reloaded: its permission and its account's limits may have changed.
            usages = ratelimit.relimit(usages, current.account)
            stale_refusal, refused = refused, self._refusal(request)
            if stale_refusal is not None and refused is None and self.rate_limit_bucket:
                extra = ratelimit.hit_account(current.account, [self.rate_limit_bucket])
                usages = usages + extra.usages
        if hit.marks[0]:
            record_last_used(current.api_key)
        request.rate_usages = usages  # type: ignore[attr-defined]
        if refused is not None:
            raise refused
        _raise_if_exceeded(usages)

    def _refusal(self, request: Request) -> APIException | ApiError | None:
        try:
            self.check_permissions(request)
            self._check_input(request)
        except (APIException, ApiError) as exc:
            return exc
        return None

    def _confirm(
        self,
        request: Request,
        principal: ApiPrincipal,
        versions: dict[str, local_cache.Version] | None,
    ) -> ApiPrincipal:
        """The principal, confirmed current or reloaded (auth.confirm); a reloaded key that
        no longer passes fails as authentication does, counted per address too."""
        try:
            current = auth.confirm(principal, versions)
        except APIException:
            request._not_authenticated()
            self._limit_anonymous(request)
            raise
        except Exception:
            request._not_authenticated()
            raise
        if current is not principal:
            request.user = current  # type: ignore[assignment]
        return current

    def _limit_anonymous(self, request: Request) -> None:
        usage = ratelimit.hit_anonymous(request)
        request.rate_usages = [usage] if usage else []  # type: ignore[attr-defined]
        _raise_if_exceeded(request.rate_usages)

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        response.mifumo_envelope = True  # type: ignore[attr-defined]
        usage = ratelimit.tightest(getattr(request, "rate_usages", []))
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        _log_usage(request, response)
        return response


def account_hit(principal: ApiPrincipal, buckets: list[str]) -> ratelimit.Hit:
    """The request counted in the account's ``buckets``: the key's last-use mark and the
    cache versions ride along with the counters, one round trip in all."""
    return ratelimit.hit_account(
        principal.account,
        buckets,
        [last_used_mark(principal.api_key)],
        auth.cache_versions(principal),
    )


# Where a request counted before the view (a fast path, integration.fast) hands its
# hit over, so that the view carries on from it instead of counting the request again. No
# HTTP header can set it: the server names those HTTP_*.
HANDED_OVER_HIT = "mifumo.account_hit"


def hand_over(
    environ: dict[str, Any], principal: ApiPrincipal, buckets: list[str], hit: ratelimit.Hit
) -> None:
    environ[HANDED_OVER_HIT] = (principal.api_key.pk, tuple(buckets), hit)


def handed_over(
    meta: dict[str, Any], principal: ApiPrincipal, buckets: list[str]
) -> ratelimit.Hit | None:
    """The hit handed over for this key and these buckets, taken once."""
    handed = meta.pop(HANDED_OVER_HIT, None)
    if handed is None or handed[:2] != (principal.api_key.pk, tuple(buckets)):
        return None
    hit: ratelimit.Hit = handed[2]
    return hit


def _raise_if_exceeded(usages: list[ratelimit.Usage]) -> None:
    usage = ratelimit.tightest(usages)
    if usage is None or not usage.exceeded:
        return
    retry_after = max(usage.reset_in, 1)
    raise ApiError(
        ErrorCode.RATE_LIMIT_EXCEEDED,
        f"Rate limit exceeded: {usage.limit} requests per {usage.window} seconds "
        f"({usage.bucket}); retry after {retry_after} seconds",
        {
            "limit": usage.limit,
            "window": usage.window,
            "retry_after": retry_after,
            "bucket": usage.bucket,
        },
        headers={"Retry-After": str(retry_after)},
    )


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return request.path[:120]
    return str(match.route)[:120]


def _log_usage(request: Request, response: Response) -> None:
    principal = getattr(request, "_user", None)
    data = getattr(response, "data", None)
    log_usage(
        request._request,
        principal.api_key if isinstance(principal, ApiPrincipal) else None,
        response.status_code,
        data.get("error_code") if isinstance(data, dict) else None,
    )


def log_usage(
    request: HttpRequest, api_key: ApiKey | None, status: int, error_code: str | None
) -> None:
    """The request's row in the usage log (buffered, written in batches)."""
    started = getattr(request, "started_at", None)
    latency = (time.perf_counter() - started) * 1000 if started else 0.0
    buffer.add(
        ApiRequestLog(
            account_id=api_key.account_id if api_key else None,
            api_key_id=api_key.pk if api_key else None,
            method=request.method or "",
            route=_route(request),
            status_code=status,
            latency_ms=round(latency, 3),
            error_code=error_code or "",
        )
    )
