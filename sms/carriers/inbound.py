"""What carriers hand over when a phone sends a message (mobile-originated, MO): plain
values, as for receipts, stored by the sink named in ``settings.MIFUMO_INBOUND_SINK``.

A part of a multipart message carries its concatenation reference; the sink keeps parts
until the last one arrives and stores what never completes after a timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Concatenation:
    reference: int
    total: int
    part: int


@dataclass(frozen=True)
class InboundSms:
    carrier: str
    sender: str
    destination: str
    text: str
    carrier_message_id: str = ""
    received_at: datetime | None = None
    concatenation: Concatenation | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


InboundSink = Callable[[Sequence[InboundSms]], None]


def inbound_sink() -> InboundSink:
    """The configured sink: stores inbound messages (raising when it cannot, so that the
    carrier asks for the messages again rather than losing them)."""
    sink: InboundSink = import_string(settings.MIFUMO_INBOUND_SINK)
    return sink
