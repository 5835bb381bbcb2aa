"""Reads for two-way messaging."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import QuerySet

from inbox.models import InboundMessage, Number
from integration.auth import ApiPrincipal
from integration.models import Account
from mifumo.api.errors import ApiError, ErrorCode


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
        raise ApiError(ErrorCode.NOT_FOUND, "Inbound message not found")
    return message


def numbers_of(*, account: Account) -> QuerySet[Number]:
    return Number.objects.filter(account=account).order_by("number", "keyword")


def reply_recipients_and_sender(
    *, principal: ApiPrincipal, inbound_id: str, recipients: Sequence[object]
) -> tuple[Sequence[object], str]:
    """For a send with ``reply_to``: the recipients (the inbound sender when none are given)
    and the sender, the number that received it. Another account's id is NOT_FOUND."""
    message = inbound_get(
        account=principal.account, inbound_id=inbound_id, test_only=principal.test_only
    )
    return (recipients or [message.sender]), message.destination
