"""Fixtures for the webhook tests: local receivers, messages and status changes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from integration.models import Account, ApiKey
from sms.models import Message, Recipient
from sms.signals import StatusChange, send_status_changes
from tests.webhooks.receiver import Receiver
from tests.workers import celery_worker_factory  # noqa: F401 - a fixture, used by name

PHONES = ["+255712345678", "+255754000001", "+255765000002", "+255784000003"]


@pytest.fixture(autouse=True)
def _webhook_settings(settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True  # the receivers live on 127.0.0.1
    settings.MIFUMO_WEBHOOK_TIMEOUT = 2
    settings.MIFUMO_WEBHOOK_RETRY_SCHEDULE = [1, 1, 1]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def make_message(
    account: Account,
    *,
    api_key: ApiKey | None = None,
    webhook_url: str = "",
    phones: Sequence[str] = PHONES[:1],
    source: str = Message.Source.API,
    status: str = Recipient.Status.QUEUED,
) -> Message:
    now = timezone.now()
    message = Message.objects.create(
        account=account,
        api_key=api_key,
        source=source,
        text="Hello from Mifumo SMS!",
        sender_id="MIFUMO",
        encoding="gsm7",
        segments=1,
        recipient_count=len(phones),
        cost=Decimal("10.00") * len(phones),
        currency="TZS",
        webhook_url=webhook_url,
        created_at=now,
    )
    Recipient.objects.bulk_create(
        Recipient(
            message=message,
            account=account,
            created_at=now,
            phone=phone,
            status=status,
            cost=Decimal("10.00"),
        )
        for phone in phones
    )
    return message


def change_status(
    message: Message, status: str, recipients: Sequence[Recipient] | None = None
) -> list[int]:
    """Move recipients (all of the message's by default) to ``status`` the way the SMS app
    does: update and signal in one transaction."""
    ids = (
        [r.pk for r in recipients]
        if recipients is not None
        else list(
            Recipient.objects.filter(message=message).order_by("pk").values_list("pk", flat=True)
        )
    )
    now = timezone.now()
    with transaction.atomic():
        fields: dict[str, Any] = {"status": status, "updated_at": now}
        if status == Recipient.Status.DELIVERED:
            fields["delivered_at"] = now
        if status == Recipient.Status.SENT:
            fields["sent_at"] = now
        Recipient.objects.filter(pk__in=ids).update(**fields)
        send_status_changes(
            Recipient, [StatusChange(message.pk, message.account_id, str(status), ids)]
        )
    return ids
