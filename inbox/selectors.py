"""Reads for two-way messaging."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Q, QuerySet

from contacts.models import Contact, OptOutChange
from inbox.keywords import DEFAULT_REPLIES
from inbox.models import Action, AutoReply, InboundMessage, Keyword, Number
from integration.auth import ApiPrincipal
from integration.models import Account
from mifumo.errors import DomainError, ErrorCode
from sms.models import Recipient


def inbound_list(
    *,
    account: Account,
    sender: str | None = None,
    destination: str | None = None,
    keyword: str | None = None,
    action: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    test_only: bool = False,
) -> QuerySet[InboundMessage]:
    """The account's inbound messages, newest first; ``test_only``: those a test key sent
    through simulate/ (what a test key may see)."""
    rows = InboundMessage.objects.filter(account=account)
    if test_only:
        rows = rows.filter(is_test=True)
    if sender:
        rows = rows.filter(sender=sender)
    if destination:
        rows = rows.filter(destination=destination)
    if keyword:
        rows = rows.filter(keyword=keyword.upper())
    if action:
        rows = rows.filter(action=action)
    if start:
        rows = rows.filter(received_at__gte=start)
    if end:
        rows = rows.filter(received_at__lte=end)
    return rows.order_by("-received_at", "-id")


def inbound_get(*, account: Account, inbound_id: str, test_only: bool = False) -> InboundMessage:
    """One of the account's inbound messages; another account's id is NOT_FOUND."""
    rows = InboundMessage.objects.filter(account=account, pk=inbound_id)
    message = (rows.filter(is_test=True) if test_only else rows).first()
    if message is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Inbound message not found")
    return message


def numbers_of(*, account: Account) -> QuerySet[Number]:
    return Number.objects.filter(account=account).order_by("number", "keyword")


def receives_on(*, account: Account, number: str) -> bool:
    """Whether the account receives on this number (E.164 digits, as stored)."""
    return Number.objects.filter(account=account, number=number).exists()


def reply_recipients_and_sender(
    *, principal: ApiPrincipal, inbound_id: str, recipients: Sequence[object]
) -> tuple[Sequence[object], str]:
    """For a send with ``reply_to``: the recipients (the inbound sender when none are given)
    and the sender, the number that received it. Another account's id is NOT_FOUND."""
    message = inbound_get(
        account=principal.account, inbound_id=inbound_id, test_only=principal.test_only
    )
    return (recipients or [message.sender]), message.destination


@dataclass(frozen=True)
class Conversation:
    phone: str
    last_at: datetime
    received: int
    unread: int
    contact_name: str | None


def conversations(*, account: Account) -> list[Conversation]:
    """One row per phone that wrote to the account, the latest first, with unread counts."""
    rows = (
        InboundMessage.objects.filter(account=account)
        .values("sender")
        .annotate(
            last_at=Max("received_at"),
            received=Count("id"),
            unread=Count("id", filter=Q(read_at__isnull=True)),
        )
        .order_by("-last_at")
    )
    found = list(rows)
    names = dict(
        Contact.objects.filter(
            account=account, phone_number__in=[row["sender"] for row in found]
        ).values_list("phone_number", "name")
    )
    return [
        Conversation(
            phone=row["sender"],
            last_at=row["last_at"],
            received=row["received"],
            unread=row["unread"],
            contact_name=names.get(row["sender"]),
        )
        for row in found
    ]


def unread_count(*, account: Account) -> int:
    return InboundMessage.objects.filter(account=account, read_at__isnull=True).count()


@dataclass(frozen=True)
class Entry:
    """One message of a conversation: received (inbound) or sent (a recipient row)."""

    at: datetime
    inbound: bool
    text: str
    number: str  # the account's number or sender ID
    status: str
    ref: str  # inb_… or msg_…


def conversation(*, account: Account, phone: str, limit: int = 100) -> list[Entry]:
    """The phone's messages to the account and the account's to it, newest first. NOT_FOUND
    when the phone never wrote to the account."""
    received = list(
        InboundMessage.objects.filter(account=account, sender=phone).order_by("-received_at")[
            :limit
        ]
    )
    if not received:
        raise DomainError(ErrorCode.NOT_FOUND, "No conversation with this number")
    sent = (
        Recipient.objects.filter(account=account, phone=phone)
        .select_related("message")
        .order_by("-created_at", "-id")[:limit]
    )
    entries = [
        Entry(m.received_at, True, m.text, m.destination, m.action or "", m.id) for m in received
    ] + [
        # A personalised message's recipient holds its own text: what the phone received.
        Entry(
            r.created_at,
            False,
            r.text or r.message.text,
            r.message.sender_id,
            r.status,
            r.message_id,
        )
        for r in sent
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def reply_number(*, account: Account, phone: str) -> str | None:
    """The number the phone last wrote to: replies go out from it."""
    return (
        InboundMessage.objects.filter(account=account, sender=phone)
        .order_by("-received_at")
        .values_list("destination", flat=True)
        .first()
    )


def opt_out_history(*, account: Account) -> QuerySet[OptOutChange]:
    return (
        OptOutChange.objects.filter(account=account)
        .select_related("contact")
        .order_by("-created_at", "-id")
    )


def keywords_of(*, account: Account) -> QuerySet[Keyword]:
    return Keyword.objects.filter(account=account).order_by("word")


def auto_replies(*, account: Account) -> list[tuple[str, str, bool, str]]:
    """(action, label, enabled, text) for each keyword action, the defaults filled in."""
    own = {r.action: r for r in AutoReply.objects.filter(account=account)}
    rows = []
    for action in Action:
        reply = own.get(action.value)
        text = (reply.text if reply else "") or DEFAULT_REPLIES[action.value]
        rows.append((action.value, str(action.label), reply.enabled if reply else True, text))
    return rows
