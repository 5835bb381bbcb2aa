"""Sender IDs: the platform default is approved for every account; others are requested
by the account and approved by an operator."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from inbox.models import Number
from integration.models import Account
from mifumo.errors import DomainError, ErrorCode
from sms.models import SenderId

ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ._&-]{1,11}$")
NUMERIC = re.compile(r"^\+?[0-9]{1,15}$")
MAX_NOTE_LENGTH = SenderId._meta.get_field("note").max_length or 255


def sender_id_format_error(value: str) -> str | None:
    if ALPHANUMERIC.match(value) or NUMERIC.match(value):
        return None
    return (
        "A sender ID is up to 11 letters, digits, spaces or . _ & - (with at least one "
        "letter), or a number of up to 15 digits"
    )


def sender_id_is_approved(*, account: Account, value: str) -> bool:
    """The platform default, an approved sender ID, or a number the account receives on
    (replies go out from the number they answer)."""
    if value == settings.MIFUMO_DEFAULT_SENDER_ID:
        return True
    if NUMERIC.match(value) and Number.objects.filter(account=account, number=value).exists():
        return True
    return SenderId.objects.filter(
        account=account, value=value, status=SenderId.Status.APPROVED
    ).exists()


def sender_id_request(*, account: Account, value: str, purpose: str = "") -> SenderId:
    value = value.strip()
    problem = sender_id_format_error(value)
    if problem:
        raise DomainError(ErrorCode.VALIDATION_ERROR, problem, {"sender_id": [problem]})
    if value == settings.MIFUMO_DEFAULT_SENDER_ID:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"{value} is already approved for every account",
            {"sender_id": value, "status": "approved"},
        )
    try:
        with transaction.atomic():
            return SenderId.objects.create(account=account, value=value, purpose=purpose)
    except IntegrityError:
        existing = SenderId.objects.get(account=account, value=value)
        raise DomainError(
            ErrorCode.CONFLICT,
            f"Sender ID {value} was already requested",
            {"sender_id": value, "status": existing.status},
        ) from None


def sender_id_review(*, account: Account, value: str, approve: bool, note: str = "") -> SenderId:
    status = SenderId.Status.APPROVED if approve else SenderId.Status.REJECTED
    sender, _ = SenderId.objects.update_or_create(
        account=account,
        value=value,
        defaults={"status": status, "reviewed_at": timezone.now(), "note": note},
    )
    return sender
