"""Reads for accounts, memberships, invitations and money."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from integration.models import Account, ApiKey, Invitation, LedgerEntry, Membership
from mifumo.errors import DomainError, ErrorCode

INVITATION_SALT = "mifumo.invitation"
ZERO = Decimal("0.00")


def account_balance(*, account_id: int) -> Account:
    return Account.objects.only("balance", "currency", "balance_updated_at").get(pk=account_id)


# --- members and invitations ---------------------------------------------------------------------


def membership_get(*, account: Account, membership_id: int) -> Membership:
    membership = (
        Membership.objects.filter(account=account, pk=membership_id).select_related("user").first()
    )
    if membership is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Member not found")
    return membership


def memberships_of_user(*, user_id: int) -> list[Membership]:
    """The user's accounts, the one they used last first (then by name)."""
    rows = Membership.objects.filter(user_id=user_id).select_related("account")
    return sorted(
        rows,
        key=lambda m: (
            -(m.last_used_at.timestamp() if m.last_used_at else 0.0),
            m.account.name.casefold(),
            m.account_id,
        ),
    )


def account_alert_emails(*, account_id: int) -> list[str]:
    """Where an account's alerts go: its owners' and admins' e-mail addresses."""
    return sorted(
        set(
            Membership.objects.filter(
                account_id=account_id,
                role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
                user__is_active=True,
            )
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


def invitations_pending(*, account: Account) -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(
            account=account,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .select_related("invited_by")
        .order_by("-created_at", "-id")
    )


def invitation_get(*, account: Account, invitation_id: int) -> Invitation:
    invitation = Invitation.objects.filter(account=account, pk=invitation_id).first()
    if invitation is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Invitation not found")
    return invitation


def invitation_from_token(*, token: str) -> Invitation:
    """The invitation a link names. A forged or altered token is NOT_FOUND; one past its
    expiry, used or revoked answers CONFLICT saying which."""
    max_age = settings.MIFUMO_INVITATION_DAYS * 24 * 3600
    try:
        invitation_id = signing.loads(token, salt=INVITATION_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise DomainError(
            ErrorCode.CONFLICT, "This invitation has expired", {"status": "expired"}
        ) from None
    except signing.BadSignature:
        raise DomainError(ErrorCode.NOT_FOUND, "This invitation link is not valid") from None
    invitation = (
        Invitation.objects.filter(pk=invitation_id).select_related("account", "invited_by").first()
    )
    if invitation is None:
        raise DomainError(ErrorCode.NOT_FOUND, "This invitation link is not valid")
    return invitation


# --- money ---------------------------------------------------------------------------------------


def ledger_entries(
    *,
    account: Account,
    kind: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """The account's ledger, newest first; ``end`` is exclusive."""
    rows = LedgerEntry.objects.filter(account=account)
    if kind:
        rows = rows.filter(kind=kind)
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    return rows.order_by("-id")


def ledger_per_day(
    *, account: Account, start: datetime, references: QuerySet[Any] | None = None
) -> dict[date, dict[str, Decimal]]:
    """Per UTC day since ``start``: the sum of each kind of movement (signed amounts);
    ``references`` narrows it to the movements of those messages (a query of their ids)."""
    entries = LedgerEntry.objects.filter(account=account, created_at__gte=start)
    if references is not None:
        entries = entries.filter(reference__in=references)
    rows = (
        entries.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "kind")
        .annotate(total=Sum("amount"))
        .order_by("day")
    )
    days: dict[date, dict[str, Decimal]] = {}
    for row in rows:
        days.setdefault(row["day"], {})[row["kind"]] = row["total"]
    return days


def spend_of(kinds: dict[str, Decimal]) -> Decimal:
    """What sending cost in one ``ledger_per_day`` day: debits less refunds."""
    return -(kinds.get(LedgerEntry.Kind.DEBIT, ZERO) + kinds.get(LedgerEntry.Kind.REFUND, ZERO))


def api_keys_all(*, account: Account) -> QuerySet[ApiKey]:
    """Every key of the account, revoked ones too (they still sent what they sent)."""
    return (
        ApiKey.objects.filter(account=account)
        .only("id", "name", "prefix", "revoked_at", "is_test", "created_at")
        .order_by("-created_at", "-id")
    )
