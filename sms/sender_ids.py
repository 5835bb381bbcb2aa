"""Sender IDs: the platform default is approved for every account; others are requested
by the account and approved by an operator. Every read and write of them is here.

Within an API request an account's approved sender IDs come from a per-process cache
validated by the account's cache version (``integration.versions``), which every save or
delete of a sender ID bumps; elsewhere they are read from the database.
"""

from __future__ import annotations

import re
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from inbox.selectors import receives_on
from integration.audit import Action, AuditContext
from integration.models import Account
from integration.versions import account_version, bump_account
from mifumo import local_cache
from mifumo.db import lock_until_commit
from mifumo.errors import DomainError, ErrorCode
from sms.models import SenderId

ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ._&-]{1,11}$")
NUMERIC = re.compile(r"^\+?[0-9]{1,15}$")
MAX_NOTE_LENGTH = SenderId._meta.get_field("note").max_length or 255

# account id -> its approved sender IDs.
APPROVED: local_cache.VersionedCache[int, frozenset[str]] = local_cache.VersionedCache(
    max_entries=10_000, max_age=60.0
)


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
    approved = _approved_cached(account)
    if approved is not None and value in approved:
        return True
    if NUMERIC.match(value) and receives_on(account=account, number=value):
        return True
    return approved is None and _approved(account).filter(value=value).exists()


def _approved_cached(account: Account) -> frozenset[str] | None:
    """The account's approved sender IDs, kept while its version stays as read by this
    request; None outside an API request (or with Redis unreadable)."""
    known, version = local_cache.validated(account_version(account.pk))
    if not known:
        return None
    entry = APPROVED.get(account.pk)
    if entry is not None and entry.current(version):
        return entry.value
    values = frozenset(_approved(account).values_list("value", flat=True))
    APPROVED.put(account.pk, values, version)
    return values


def _approved(account: Account) -> QuerySet[SenderId]:
    return SenderId.objects.filter(account=account, status=SenderId.Status.APPROVED)


def sender_ids_usable(*, account: Account) -> list[str]:
    """The sender IDs a send may use: the platform default, then the approved ones."""
    values = [settings.MIFUMO_DEFAULT_SENDER_ID]
    values += [v for v in _approved(account).values_list("value", flat=True) if v not in values]
    return values


def sender_ids_all(*, account: Account, by_status: bool = False) -> QuerySet[SenderId]:
    """The account's requested sender IDs (not the platform default), by value; with
    ``by_status``, approved ones first, then pending, then rejected."""
    return SenderId.objects.filter(account=account).order_by(
        *(("status", "value") if by_status else ("value",))
    )


def sender_ids_rejected_count(*, account: Account, since: datetime) -> int:
    return SenderId.objects.filter(
        account=account, status=SenderId.Status.REJECTED, reviewed_at__gte=since
    ).count()


def _check_room(account: Account, value: str) -> None:
    """Refuse a request past the account's limit of requests awaiting review; two requests
    count one after the other. A value already requested is left to be refused as such."""
    lock_until_commit(f"sender-id-requests:{account.pk}")
    mine = SenderId.objects.filter(account=account)
    if mine.filter(value=value).exists():
        return
    limit = settings.MIFUMO_MAX_PENDING_SENDER_IDS
    pending = mine.filter(status=SenderId.Status.PENDING).count()
    if pending >= limit:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"This account has {pending} sender ID requests awaiting review, the most it may "
            "have; wait for an operator to review them",
            {"limit": limit, "pending": pending},
        )


def sender_id_request(
    *, account: Account, value: str, purpose: str = "", audit: AuditContext | None = None
) -> SenderId:
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
            _check_room(account, value)
            sender = SenderId.objects.create(account=account, value=value, purpose=purpose)
            if audit is not None:
                audit.record(
                    account=account,
                    action=Action.SENDER_ID_REQUESTED,
                    target=sender.value,
                    details={"purpose": sender.purpose},
                )
            return sender
    except IntegrityError:
        existing = SenderId.objects.get(account=account, value=value)
        raise DomainError(
            ErrorCode.CONFLICT,
            f"Sender ID {value} was already requested",
            {"sender_id": value, "status": existing.status},
        ) from None


@transaction.atomic
def sender_id_review(
    *,
    account: Account,
    value: str,
    approve: bool,
    note: str = "",
    audit: AuditContext | None = None,
) -> SenderId:
    status = SenderId.Status.APPROVED if approve else SenderId.Status.REJECTED
    sender, _ = SenderId.objects.update_or_create(
        account=account,
        value=value,
        defaults={"status": status, "reviewed_at": timezone.now(), "note": note},
    )
    if audit is not None:
        audit.record(
            account=account,
            action=Action.SENDER_ID_APPROVED if approve else Action.SENDER_ID_REJECTED,
            target=sender.value,
            details={"note": note},
        )
    return sender


def _sender_id_changed(sender: type[SenderId], instance: SenderId, **_: object) -> None:
    bump_account(instance.account_id)


post_save.connect(_sender_id_changed, sender=SenderId, dispatch_uid="sms.sender_ids.saved")
post_delete.connect(_sender_id_changed, sender=SenderId, dispatch_uid="sms.sender_ids.deleted")
