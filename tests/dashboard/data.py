"""Rows made directly in the database for tests about reading them: messages with
recipients in given states, usage-log rows, webhook deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from integration.models import Account, ApiKey, ApiRequestLog
from integration.services import account_debit
from sms.models import Message, Recipient

PRICE = Decimal("10.00")


def make_message(
    account: Account,
    *,
    statuses: Sequence[str] = ("delivered",),
    phones: Sequence[str] | None = None,
    text: str = "Habari kutoka Mifumo",
    created_at: datetime | None = None,
    source: str = Message.Source.API,
    charge: bool = False,
    is_test: bool = False,
) -> Message:
    now = created_at or timezone.now()
    phones = list(phones or [f"+2557123{i:05d}" for i in range(len(statuses))])
    cost = PRICE * len(phones)
    message = Message.objects.create(
        account=account,
        source=source,
        text=text,
        sender_id="MIFUMO",
        encoding="gsm7",
        segments=1,
        recipient_count=len(phones),
        cost=cost,
        currency="TZS",
        created_at=now,
        is_test=is_test,
    )
    Recipient.objects.bulk_create(
        Recipient(
            message=message,
            account=account,
            created_at=now,
            updated_at=now,
            phone=phone,
            status=status,
            cost=PRICE,
            sent_at=now if status in ("sent", "delivered", "failed") else None,
            delivered_at=now + timedelta(seconds=4) if status == "delivered" else None,
            error_code="UNDELIVERABLE" if status == "failed" else "",
            error_message="The handset is switched off" if status == "failed" else "",
        )
        for phone, status in zip(phones, statuses, strict=True)
    )
    if charge:
        entry = account_debit(account_id=account.pk, amount=cost, reference=message.id)
        type(entry).objects.filter(pk=entry.pk).update(created_at=now)
    return message


def make_request_log(
    account: Account,
    *,
    route: str = "sms/balance/",
    method: str = "GET",
    status_code: int = 200,
    error_code: str = "",
    latency_ms: float = 12.0,
    created_at: datetime | None = None,
    api_key: ApiKey | None = None,
) -> ApiRequestLog:
    return ApiRequestLog.objects.create(
        account=account,
        api_key=api_key,
        method=method,
        route=route,
        status_code=status_code,
        error_code=error_code,
        latency_ms=latency_ms,
        created_at=created_at or timezone.now(),
    )


def seed_history(account: Account, days: int = 14) -> dict[str, Any]:
    """A few weeks of plausible traffic: messages in every state, API calls with errors."""
    now = timezone.now()
    messages = []
    for day in range(days):
        when = now - timedelta(days=day, hours=1)
        statuses = ["delivered"] * (3 + day % 5) + ["failed"] * (day % 3)
        if day == 0:
            statuses += ["sent", "queued"]
        messages.append(make_message(account, statuses=statuses, created_at=when, charge=True))
        for n in range(5 + (day * 7) % 11):
            make_request_log(
                account,
                route="sms/send/" if n % 2 else "sms/balance/",
                method="POST" if n % 2 else "GET",
                latency_ms=8.0 + n * 3.5,
                created_at=when,
            )
        if day % 3 == 0:
            make_request_log(
                account,
                route="sms/send/",
                method="POST",
                status_code=400,
                error_code="INVALID_PHONE",
                created_at=when,
            )
        if day % 4 == 1:
            make_request_log(
                account,
                route="sms/send/",
                method="POST",
                status_code=429,
                error_code="RATE_LIMIT_EXCEEDED",
                created_at=when,
            )
    return {"messages": messages}
