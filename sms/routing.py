"""Which carrier a message goes to."""

from __future__ import annotations

from django.conf import settings

from sms.models import Message


def route_for_message(message: Message) -> str:
    return str(settings.MIFUMO_CARRIER)
