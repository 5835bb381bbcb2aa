"""Delivery-receipt (DLR) endpoints for carriers that report over HTTP.

``POST /api/integration/carriers/<name>/dlr/``, where ``<name>`` is a key of
``settings.MIFUMO_CARRIERS``. The entry point resolves that carrier's backend and hands the
request to the view class the backend names in ``dlr_view``. A view:

1. answers POST only (405 otherwise) and is exempt from CSRF (providers hold no cookie);
2. runs every ``validate_request`` defined anywhere in its class tree, base first, so a
   subclass cannot skip its parent's check by forgetting ``super()``; any failure is a 400,
   and after REJECTED_LIMIT of them from one client address within REJECTED_WINDOW seconds
   that address is answered 429 whatever it sends, which stops token guessing;
3. turns the body into ``DeliveryReceipt`` values with ``parse_receipts`` (malformed -> 400);
4. drops receipts whose provider timestamp is older than the carrier's DLR_MAX_AGE (default
   7 days): they are answered 200 and logged, so the provider stops resending them;
5. drops receipts already seen (same carrier, id and status) within 24 hours, using the cache;
6. queues the rest through the receipt sink (``MIFUMO_RECEIPT_SINK``); nothing is written to
   the database in the request. Ids we never sent are therefore answered 200 too: ingestion
   discards them later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.decorators import method_decorator
from django.utils.module_loading import import_string
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from mifumo.client_ip import client_address
from mifumo.counters import count_and_mark
from sms.carriers import build_carrier, carrier_config
from sms.carriers.base import BaseCarrier, DeliveryReceipt

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 7 * 24 * 3600
SEEN_FOR = 24 * 3600
TOKEN_PARAMETER = "token"  # noqa: S105 - a parameter name, not a secret
TOKEN_HEADER = "X-Mifumo-Dlr-Token"  # noqa: S105
# Requests refused as unauthentic (bad token or signature) from one address before it is
# answered 429 for the rest of the window.
REJECTED_LIMIT = 20
REJECTED_WINDOW = 600


_T = TypeVar("_T")


class DlrRejected(Exception):
    """The request is not an authentic, well-formed receipt; answered with 400."""


@method_decorator(csrf_exempt, name="dispatch")
class DlrView(View):
    """Base class of DLR views; subclasses implement ``parse_receipts`` and may add
    ``validate_request``."""

    http_method_names = ["post"]
    carrier: BaseCarrier | None = None

    @property
    def backend(self) -> BaseCarrier:
        if self.carrier is None:
            raise ImproperlyConfigured(f"{type(self).__name__} was created without a carrier")
        return self.carrier

    # -- hooks ---------------------------------------------------------------------------
    def validate_request(self, request: HttpRequest) -> None:
        """Raise ``DlrRejected`` when the request is not authentic."""

    def parse_receipts(self, request: HttpRequest) -> list[DeliveryReceipt]:
        raise NotImplementedError(f"{type(self).__name__} must implement parse_receipts")

    # -- request handling ----------------------------------------------------------------
    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        response = JsonResponse({"error": "method not allowed"}, status=405)
        response["Allow"] = "POST"
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        receipts = self.authentic(request, self.parse_receipts, "delivery receipt", "receipts")
        if isinstance(receipts, HttpResponse):
            return receipts
        fresh = self.drop_stale(receipts)
        new, keys = self.drop_seen(fresh)
        if new:
            try:
                import_string(settings.MIFUMO_RECEIPT_SINK)(new)
            except BaseException:
                # Not taken: forget them, so the provider's retry is not ignored as a repeat.
                cache.delete_many(keys)
                raise
        return JsonResponse({"received": len(receipts), "accepted": len(new)})

    def authentic(
        self, request: HttpRequest, parse: Callable[[HttpRequest], _T], what: str, plural: str
    ) -> _T | HttpResponse:
        """``parse(request)`` once the request is authentic, else the answer to give: 400
        for a bad token, signature or body, 429 for an address that keeps failing, 500 when
        the carrier is not configured for it (the provider retries meanwhile)."""
        name = self.backend.name
        address = client_address(request)
        if _rejections(address) >= REJECTED_LIMIT:
            response = JsonResponse({"error": f"too many refused {plural}; wait"}, status=429)
            response["Retry-After"] = str(REJECTED_WINDOW)
            return response
        try:
            try:
                self.run_validators(request)
            except DlrRejected:
                # Only unauthentic requests count: a carrier's malformed body is no guess.
                _count_rejection(address)
                raise
            return parse(request)
        except DlrRejected as exc:
            logger.warning("refused a %s %s from %s: %s", name, what, address, exc)
            return JsonResponse({"error": str(exc)}, status=400)
        except ImproperlyConfigured:
            # The provider will try again, so nothing is lost while the operator fixes it.
            logger.exception("%s for %s are not configured", plural, name)
            return JsonResponse({"error": f"{plural} are not configured"}, status=500)

    def run_validators(self, request: HttpRequest) -> None:
        for cls in reversed(type(self).__mro__):
            validate = cls.__dict__.get("validate_request")
            if validate is not None:
                validate(self, request)

    def drop_stale(self, receipts: list[DeliveryReceipt]) -> list[DeliveryReceipt]:
        max_age = timedelta(seconds=float(self.backend.setting("DLR_MAX_AGE", DEFAULT_MAX_AGE)))
        now = timezone.now()
        kept: list[DeliveryReceipt] = []
        for receipt in receipts:
            if now - receipt.timestamp > max_age:
                logger.info(
                    "dropped a stale %s receipt for %s (%s, from %s)",
                    receipt.carrier,
                    receipt.carrier_message_id,
                    receipt.status.value,
                    receipt.timestamp.isoformat(),
                )
                continue
            if receipt.timestamp > now:
                # A provider clock or zone error must not put a delivery in the future.
                receipt = replace(receipt, timestamp=now)
            kept.append(receipt)
        return kept

    def drop_seen(self, receipts: list[DeliveryReceipt]) -> tuple[list[DeliveryReceipt], list[str]]:
        """Receipts not seen before, and the cache keys now marking them as seen."""
        new: list[DeliveryReceipt] = []
        keys: list[str] = []
        for receipt in receipts:
            key = seen_key(receipt)
            try:
                first = cache.add(key, 1, SEEN_FOR)
            except Exception:  # noqa: BLE001
                # Ingestion is idempotent; without the cache a repeat only costs a queued task.
                logger.warning("cache unavailable; not de-duplicating %s receipts", receipt.carrier)
                first = True
            if not first:
                logger.debug("ignored a repeated %s receipt", receipt.carrier)
                continue
            new.append(receipt)
            keys.append(key)
        return new, keys


def _rejections_key(address: str) -> str:
    return "dlr-rejected:" + hashlib.sha256(address.encode()).hexdigest()


def _rejections(address: str) -> int:
    """Unauthentic receipts from ``address`` in the current window (0 with the cache down)."""
    try:
        return int(cache.get(_rejections_key(address)) or 0)
    except Exception:  # noqa: BLE001 - receipts keep flowing while the cache is down
        logger.warning("cache unavailable; receipt rejections not counted", exc_info=True)
        return 0


def _count_rejection(address: str) -> None:
    try:
        count_and_mark([(_rejections_key(address), REJECTED_WINDOW)])
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable; receipt rejections not counted", exc_info=True)


def seen_key(receipt: DeliveryReceipt) -> str:
    identity = "\x00".join((receipt.carrier, receipt.carrier_message_id, receipt.status.value))
    return "dlr-seen:" + hashlib.sha256(identity.encode()).hexdigest()


class SharedSecretDlrView(DlrView):
    """For providers that do not sign their callbacks: the callback URL carries the carrier's
    DLR_SECRET in a ``token`` query parameter, or a proxy adds it as ``X-Mifumo-Dlr-Token``."""

    def validate_request(self, request: HttpRequest) -> None:
        expected = str(self.backend.setting("DLR_SECRET"))
        given = request.headers.get(TOKEN_HEADER) or request.GET.get(TOKEN_PARAMETER) or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise DlrRejected("missing or wrong DLR token")


# -- helpers for parsers ----------------------------------------------------------------------


def request_data(request: HttpRequest) -> list[dict[str, Any]]:
    """The body as a list of flat objects: a form, or a JSON object or array of objects
    (whatever the declared type, since some providers send JSON as text/plain)."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = form_of(request)
        if not form:
            raise DlrRejected("empty body")
        return [{key: form.get(key) for key in form}]
    try:
        body = json.loads(request.body or b"null")
    except ValueError as exc:
        raise DlrRejected("body is neither a form nor JSON") from exc
    items = body if isinstance(body, list) else [body]
    if not items or not all(isinstance(item, dict) for item in items):
        raise DlrRejected("expected a JSON object or a list of objects")
    return items


def form_of(request: HttpRequest) -> QueryDict:
    """The form the request posted; ``DlrRejected`` (a 400 the provider reads) for a body
    that does not parse as the form it claims to be (a multipart body without a boundary)."""
    try:
        return request.POST
    except MultiPartParserError as exc:
        raise DlrRejected(f"malformed form body: {exc}") from exc


def required(item: dict[str, Any], *names: str) -> str:
    """The first of ``names`` present and non-empty in ``item``, as text."""
    for name in names:
        value = item.get(name)
        if value not in (None, ""):
            return str(value).strip()
    raise DlrRejected(f"missing {names[0]}")


def parse_time(value: Any) -> datetime | None:
    """A provider time in UTC: ISO 8601 or "YYYY-MM-DD hh:mm:ss" (UTC when no zone is given),
    or Unix seconds or milliseconds. None when absent, unreadable or not a moment UTC has."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        seconds = number / 1000 if number > 10**11 else number
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = parse_datetime(text)
    except ValueError:
        return None
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        return parsed.replace(tzinfo=UTC)
    try:
        # In UTC, as every time is kept: a moment at the calendar's edge (9999-12-31 at
        # -05:00) has none, and is as unreadable as no time at all.
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def raw_of(item: dict[str, Any]) -> dict[str, Any]:
    """The provider's fields, kept beside the receipt, without our own shared secret."""
    return {key: value for key, value in item.items() if key != TOKEN_PARAMETER}


# -- the URL entry point ----------------------------------------------------------------------


def carrier_view(
    request: HttpRequest, carrier: str, attribute: str, missing: str
) -> HttpResponseBase:
    """Answer with the view class the carrier's backend names in ``attribute``."""
    if carrier not in settings.MIFUMO_CARRIERS:
        return JsonResponse({"error": "unknown carrier"}, status=404)
    backend = import_string(carrier_config(carrier)["BACKEND"])
    view_class: type[DlrView] | None = getattr(backend, attribute, None)
    if view_class is None:
        return JsonResponse({"error": missing}, status=404)
    view = view_class.as_view(carrier=build_carrier(carrier))
    return view(request)


@csrf_exempt
def carrier_dlr(request: HttpRequest, carrier: str) -> HttpResponseBase:
    return carrier_view(request, carrier, "dlr_view", "this carrier does not send receipts here")
