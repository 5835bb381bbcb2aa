"""Inbound (mobile-originated) messages from HTTP aggregators.

``POST /api/integration/carriers/<name>/inbound/``: the backend names its view in
``inbound_view``. The views are the receipt views' kin: the same authentication (every
``validate_request`` in the class tree, the same lock-out of addresses that keep failing it),
then ``parse_inbound`` and the inbound sink, inside the request, so that a 200 means stored.
A sink that fails answers 500 and the provider delivers the message again.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sms.carriers.dlr import DlrView, carrier_view
from sms.carriers.inbound import InboundSms, inbound_sink

logger = logging.getLogger(__name__)


class InboundMixin:
    """Put before a receipt view class: its authentication, this handling."""

    def parse_inbound(self, request: HttpRequest) -> list[InboundSms]:
        raise NotImplementedError(f"{type(self).__name__} must implement parse_inbound")

    def stored(self, items: list[InboundSms]) -> HttpResponse:
        """The answer once ``items`` are stored (a provider may expect a body of its own)."""
        return JsonResponse({"received": len(items)})

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        assert isinstance(self, DlrView)
        name = self.backend.name
        items = self.authentic(request, self.parse_inbound, "inbound message", "inbound messages")
        if isinstance(items, HttpResponse):
            return items
        try:
            inbound_sink()(items)
        except Exception:
            # Not stored: the provider sends it again after an error answer.
            logger.exception("could not store %d inbound messages from %s", len(items), name)
            return JsonResponse({"error": "not stored; send it again"}, status=503)
        return self.stored(items)


@csrf_exempt
def carrier_inbound(request: HttpRequest, carrier: str) -> HttpResponseBase:
    return carrier_view(
        request, carrier, "inbound_view", "this carrier does not send inbound messages here"
    )
