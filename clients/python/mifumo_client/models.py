"""The typed results of the API: money is ``Decimal`` (TZS), times are aware ``datetime``s.

Field names are the API's. Statuses stay strings, so that a status a newer server adds
reaches the caller instead of failing the call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar, cast, dataclass_transform

T = TypeVar("T")
C = TypeVar("C", bound=type)

#: Message statuses after which nothing changes any more.
FINAL_MESSAGE_STATUSES = frozenset({"delivered", "failed", "partially_delivered", "canceled"})
_CLIENT_SIDE = {"api": False}  # a field filled by the client, not read from the body


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def model(cls: C) -> C:
    """A frozen, keyword-only dataclass with slots."""
    return cast(C, dataclass(frozen=True, slots=True, kw_only=True)(cls))


# --- pages -----------------------------------------------------------------------------------


@model
class PagePagination:
    page: int
    per_page: int
    total: int
    pages: int


@model
class Page(Generic[T]):
    """One page of a list. ``total`` counts every item of the list, on all pages."""

    items: list[T]
    total: int


# --- SMS -------------------------------------------------------------------------------------


@model
class SkippedRecipient:
    phone: str
    reason: str


@model
class SendResult:
    message_id: str
    recipients: list[str]
    status: str  # queued | scheduled
    cost: Decimal
    currency: str
    segments: int
    encoding: str  # GSM-7 | UCS-2
    sender_id: str
    schedule_time: datetime | None
    test: bool
    skipped: list[SkippedRecipient]
    from_segments: dict[str, int]
    #: True when the server answered from an earlier request with the same Idempotency-Key.
    replayed: bool = field(default=False, metadata=_CLIENT_SIDE)
    #: The Idempotency-Key the request carried.
    idempotency_key: str | None = field(default=None, metadata=_CLIENT_SIDE)


@model
class RecipientStatus:
    phone: str
    status: str
    #: The text this recipient gets (rendered, when the message is personalised).
    text: str = ""
    segments: int = 0
    cost: Decimal = Decimal("0.00")
    delivery_time: datetime | None
    sent_at: datetime | None
    error_code: str | None
    error_message: str | None


@model
class MessageStatus:
    """A message's status, with one page of its recipients (``sms.recipients`` walks them
    all)."""

    message_id: str
    status: str
    delivery_time: datetime | None
    recipients: list[RecipientStatus]
    sender_id: str
    created_at: datetime
    schedule_time: datetime | None
    segments: int
    encoding: str
    cost: Decimal
    refunded: Decimal  # given back: recipients rejected at submit, a canceled schedule
    currency: str
    recipient_count: int
    counts: dict[str, int]
    pagination: PagePagination

    @property
    def is_final(self) -> bool:
        """True when no recipient can change status any more."""
        return self.status in FINAL_MESSAGE_STATUSES


@model
class Message:
    message_id: str
    status: str
    text: str
    sender_id: str
    recipient_count: int
    segments: int
    encoding: str
    cost: Decimal
    refunded: Decimal  # given back: recipients rejected at submit, a canceled schedule
    currency: str
    schedule_time: datetime | None
    created_at: datetime
    counts: dict[str, int]


@model
class DeliveryReport:
    message_id: str
    phone: str
    status: str
    sender_id: str
    sent_at: datetime | None
    delivery_time: datetime | None
    error_code: str | None
    cost: Decimal
    currency: str
    created_at: datetime


@model
class Balance:
    balance: Decimal
    currency: str
    last_updated: datetime | None


@model
class CancelResult:
    message_id: str
    status: str
    canceled: int
    refunded: Decimal
    currency: str


@model
class SenderId:
    sender_id: str
    status: str  # pending | approved | rejected
    purpose: str
    created_at: datetime | None
    reviewed_at: datetime | None


# --- contacts and segments -------------------------------------------------------------------


@model
class Contact:
    id: str
    name: str
    phone_number: str
    email: str | None
    tags: list[str]
    is_active: bool
    opted_out: bool
    opted_out_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: The account's own fields of the contact (``{{KEY}}`` in a personalised text).
    custom_fields: dict[str, str] = field(default_factory=dict)


@model
class ImportRowError:
    row: int  # the file's row number; the header is row 1
    field: str
    reason: str


@model
class ImportResult:
    created: int
    updated: int
    skipped: int
    failed: int
    errors: list[ImportRowError]
    errors_truncated: bool
    ignored_columns: list[str]
    # The file's opted_out column: contacts opted out, opted back in (only those an import
    # opted out), and rows left opted out because the contact opted out itself.
    opted_out: int = 0
    opted_in: int = 0
    left_opted_out: int = 0


@model
class Deleted:
    id: str
    deleted: bool


@model
class Segment:
    id: str
    name: str
    description: str
    criteria: dict[str, Any]
    contact_count: int
    created_at: datetime
    updated_at: datetime


# --- templates and inbound messages ---------------------------------------------------------


@model
class Template:
    id: str  # tpl_...
    name: str
    text: str
    #: The keys the text's placeholders name ({{KEY}} and {{KEY|default}}).
    placeholders: list[str]
    created_at: datetime
    updated_at: datetime


@model
class InboundMessage:
    inbound_id: str  # inb_...
    #: The sender, E.164 (``from`` in the API).
    from_: str = field(metadata={"key": "from"})
    to: str  # the account's number or short code it was sent to
    text: str
    keyword: str | None
    action: str | None  # opt_out | opt_in | help | None
    received_at: datetime
    carrier: str
    contact_id: str | None
    #: The latest message to that phone from that number within 7 days.
    in_reply_to: str | None


# --- webhooks --------------------------------------------------------------------------------


@model
class WebhookEndpoint:
    id: str
    url: str
    events: list[str]
    active: bool
    description: str
    disabled_reason: str | None
    disabled_at: datetime | None
    secret_rotated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: The signing secret: only in the answers to create and rotate-secret.
    secret: str | None = None


@model
class WebhookDelivery:
    id: str
    event_id: str
    event: str
    message_id: str | None
    webhook_id: str | None  # None: the message's own webhook_url
    url: str
    status: str  # pending | succeeded | failed
    redelivery: bool
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    latency_ms: float | None
    error: str | None
    response: str
    created_at: datetime
    completed_at: datetime | None


@model
class DeliveryAttempt:
    number: int
    started_at: datetime
    url: str
    succeeded: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    response: str


@model
class WebhookDeliveryDetail(WebhookDelivery):
    payload: dict[str, Any]
    attempt_log: list[DeliveryAttempt]


@model
class SigningSecret:
    secret: str
    previous_secret_expires_at: datetime | None
    created_at: datetime
    secret_rotated_at: datetime | None


# --- API keys --------------------------------------------------------------------------------


@model
class ApiKey:
    id: int
    name: str
    prefix: str
    permissions: list[str]
    mode: str  # live | test
    status: str  # active | revoked | expired
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


@model
class NewApiKey(ApiKey):
    #: The raw key, shown once: store it now.
    key: str
