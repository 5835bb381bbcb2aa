"""Receiving Mifumo's webhooks: check the signature, then read the event.

```python
from mifumo_client import webhooks

event = webhooks.construct_event(SECRET, request.headers["X-Mifumo-Signature"], request.body)
if isinstance(event, webhooks.MessageEvent) and event.event == "message.delivered":
    ...
```

``X-Mifumo-Signature`` is ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` keyed with
the signing secret (the whole ``whsec_…`` string); during a secret rotation it carries one
``v1`` per secret. Check the raw bytes received, never re-serialised JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from mifumo_client._convert import ConversionError, build, converter, plain_json
from mifumo_client.errors import WebhookSignatureError
from mifumo_client.models import InboundMessage, model

__all__ = [
    "CONTACT_EVENTS",
    "EVENT_PARSERS",
    "EVENT_TYPES",
    "MESSAGE_EVENTS",
    "SIGNATURE_HEADER",
    "SUBSCRIBABLE_EVENTS",
    "ContactOptEvent",
    "EventMetadata",
    "EventRecipient",
    "LowBalanceEvent",
    "MessageEvent",
    "MessageReceivedEvent",
    "UnknownEvent",
    "WebhookEvent",
    "WebhookSignatureError",
    "construct_event",
    "parse_event",
    "signature_problem",
    "verify",
]

SIGNATURE_HEADER = "X-Mifumo-Signature"
DEFAULT_TOLERANCE = 300


@model
class EventRecipient:
    phone: str
    status: str
    delivery_time: datetime | None


@model
class EventMetadata:
    sender_id: str
    cost: Decimal
    currency: str


@model
class MessageEvent:
    """``message.sent``, ``message.delivered``, ``message.failed`` (and ``message.test``):
    recipients of a message that moved to ``status`` together."""

    event_id: str
    event: str
    created_at: datetime
    message_id: str
    status: str
    recipients: list[EventRecipient]
    metadata: EventMetadata


@model
class UnknownEvent:
    """An event type this version of the client does not know; ``data`` is the whole body."""

    event_id: str
    event: str
    created_at: datetime | None
    data: dict[str, Any]


@model
class MessageReceivedEvent(InboundMessage):
    """``message.received``: one of the account's numbers received an SMS; the fields of
    ``client.inbound.get`` with the event's own."""

    event_id: str
    event: str
    created_at: datetime


@model
class ContactOptEvent:
    """``contact.opted_out`` and ``contact.opted_in``: a contact's consent changed, by an
    inbound keyword (``inbound_id`` names the message), the API or the dashboard."""

    event_id: str
    event: str
    created_at: datetime
    contact_id: str
    phone: str
    source: str
    inbound_id: str | None


@model
class LowBalanceEvent:
    """``account.low_balance``: a charge took the balance below the account's alert
    threshold (live traffic only)."""

    event_id: str
    event: str
    created_at: datetime
    balance: Decimal
    threshold: Decimal
    currency: str


WebhookEvent = (
    MessageEvent | MessageReceivedEvent | ContactOptEvent | LowBalanceEvent | UnknownEvent
)

#: Every event type this client reads into its own class.
MESSAGE_EVENTS = ("message.sent", "message.delivered", "message.failed", "message.test")
CONTACT_EVENTS = ("contact.opted_out", "contact.opted_in")
EVENT_TYPES = (*MESSAGE_EVENTS, "message.received", *CONTACT_EVENTS, "account.low_balance")
#: The events an endpoint can subscribe to (``message.test`` is only sent on request).
SUBSCRIBABLE_EVENTS = tuple(name for name in EVENT_TYPES if name != "message.test")

#: Event type -> how to read its body.
EVENT_PARSERS: dict[str, Callable[[dict[str, Any]], WebhookEvent]] = {
    **{name: lambda body: build(MessageEvent, body) for name in MESSAGE_EVENTS},
    "message.received": lambda body: build(MessageReceivedEvent, body),
    **{name: lambda body: build(ContactOptEvent, body) for name in CONTACT_EVENTS},
    "account.low_balance": lambda body: build(LowBalanceEvent, body),
}


def _parts(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value.strip())
    return timestamp, signatures


def _secrets(secret: str | Iterable[str]) -> list[str]:
    return [secret] if isinstance(secret, str) else list(secret)


def _body_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def signature_problem(
    secret: str | Iterable[str],
    header: str | None,
    body: bytes | str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str | None:
    """Why ``header`` does not vouch for ``body``, or None when it does."""
    if not header:
        return f"no {SIGNATURE_HEADER} header"
    timestamp, signatures = _parts(header)
    if timestamp is None:
        return "the signature header has no timestamp (t=…)"
    if not signatures:
        return "the signature header has no v1 signature"
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        away = int(current - timestamp)
        return f"the timestamp is {away} s away from now (tolerance {tolerance} s)"
    signed = str(timestamp).encode() + b"." + _body_bytes(body)
    for key in _secrets(secret):
        expected = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()
        # compare_digest takes the same time wherever the bytes differ (as bytes: a header
        # may hold characters that are not ASCII, which it refuses to compare as strings).
        given = [candidate.encode("utf-8", "replace") for candidate in signatures]
        if any(hmac.compare_digest(expected.encode(), candidate) for candidate in given):
            return None
    return "no v1 signature matches the body with this secret"


def verify(
    secret: str | Iterable[str],
    header: str | None,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
) -> bool:
    """True when ``header`` (``X-Mifumo-Signature``) signs ``body`` (the raw request bytes)
    with ``secret`` (or one of several, while you rotate yours) and its timestamp is within
    ``tolerance`` seconds of now, which stops replays of old requests."""
    return signature_problem(secret, header, body, tolerance=tolerance) is None


def parse_event(body: bytes | str | Mapping[str, Any]) -> WebhookEvent:
    """The typed event of a webhook body (check its signature first: ``construct_event``)."""
    data = json.loads(body, parse_float=Decimal) if isinstance(body, bytes | str) else dict(body)
    if not isinstance(data, dict) or "event" not in data or "event_id" not in data:
        raise ValueError("not a Mifumo webhook event: no event or event_id")
    parser = EVENT_PARSERS.get(str(data["event"]))
    try:
        if parser is not None:
            return parser(data)
        created_at = data.get("created_at")
        return UnknownEvent(
            event_id=str(data["event_id"]),
            event=str(data["event"]),
            created_at=converter(datetime)(created_at) if created_at else None,
            data=plain_json(data),
        )
    except ConversionError as exc:
        raise ValueError(f"not a valid {data['event']} event: {exc}") from exc


def construct_event(
    secret: str | Iterable[str],
    header: str | None,
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
) -> WebhookEvent:
    """Verify the signature, then parse the body; ``WebhookSignatureError`` says why a
    request is refused (answer it with 400)."""
    problem = signature_problem(secret, header, body, tolerance=tolerance)
    if problem is not None:
        raise WebhookSignatureError(problem)
    return parse_event(body)
