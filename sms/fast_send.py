"""The send's fast path: the commonest send served without Django's URL resolver and
middleware chain or DRF's request, negotiation and view machinery, with the same answer.

A one-recipient send (an OTP, an alert) is most of an SMS API's traffic, and on that path the
frameworks cost more than the work: authenticating, counting, checking, pricing, debiting and
storing the message. ``FastSend`` takes a request only when nothing in it can make the
frameworks answer differently: ``POST`` to the send route, no query string, no cookie, no
Idempotency-Key, JSON in and out, a body ``sms.serializers.send_in_common`` accepts with no
NUL or lone surrogate, a host Django allows, no HTTPS redirect due, a key that authenticates
with the permission the send needs. Everything else goes to Django untouched, the body put
back as it came. Once taken, the request is answered in the frame ``integration.fast``
shares with the other fast paths, by the function the view calls (``sms.apis.send``);
tests/sms/test_fast_send.py holds the two roads to the same answers.

With ``MIFUMO_SEND_FAST_PATH`` off, every request goes to Django.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.urls import ResolverMatch, resolve

from integration.auth import ApiPrincipal
from integration.fast import ACCEPTS, Answer, FastPath, Pass
from integration.views import ApiView
from mifumo.api import text
from mifumo.api.middleware import body_limit
from mifumo.api.responses import envelope
from mifumo.chunked import is_chunked_without_length
from sms.apis import send
from sms.serializers import send_in_common

# What DRF's JSON parser reads exactly as this path does.
_CONTENT_TYPES = frozenset(
    {"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"}
)


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


class FastSend(FastPath):
    setting = "MIFUMO_SEND_FAST_PATH"

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.path = f"{settings.MIFUMO_API_PREFIX}sms/send/"
        self.limit = min(body_limit(self.path), settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2**62)
        self._match: ResolverMatch | None = None

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

        def work(request: WSGIRequest, principal: ApiPrincipal, view: type[ApiView]) -> Answer:
            data, message = send(principal, values)
            return envelope(success=True, message=message, data=data), 200, {}

        try:
            return self.serve(environ, start_response, work)
        except Pass:
            return self.app(environ, start_response)

    def _length(self, environ: dict[str, Any]) -> int:
        """The body's length when the request is one this path may take, else 0."""
        if (
            environ.get("PATH_INFO") != self.path
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
            or environ.get("SCRIPT_NAME")
            or environ.get("CONTENT_TYPE") not in _CONTENT_TYPES
            or environ.get("HTTP_ACCEPT") not in ACCEPTS
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

    def resolve(self, path: str) -> ResolverMatch:
        if path != self.path:
            raise Pass
        if self._match is None:
            self._match = resolve(self.path)
        return self._match
