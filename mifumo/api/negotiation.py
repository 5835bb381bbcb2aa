"""Content negotiation that always answers: the API speaks JSON (and CSV where a view offers
it), so an ``Accept`` it cannot meet gets the view's first format rather than a 406 outside
the documented statuses, and a send is never refused for its client's ``Accept``. Likewise a
``?format=`` no format of the view answers to is passed over, not a 404 for a route that
exists (the schema's ``?format=json`` still picks JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FirstFormatWhenUnmet(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        offered = list(renderers)
        try:
            return super().select_renderer(request, offered, format_suffix)
        except NotAcceptable:
            return offered[0], offered[0].media_type

    def filter_renderers(
        self, renderers: Iterable[BaseRenderer], format: str
    ) -> list[BaseRenderer]:
        offered = list(renderers)
        return [renderer for renderer in offered if renderer.format == format] or offered
