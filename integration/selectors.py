"""Reads for accounts, memberships, invitations, API keys, money and the API usage log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core import signing
from django.db.models import Aggregate, Avg, Count, FloatField, Q, QuerySet, Sum
from django.utils import timezone

from integration.models import (
    Account,
    ApiKey,
    ApiRequestLog,
    Invitation,
    LedgerEntry,
    Membership,
)
from mifumo.days import per_day
from mifumo.errors import DomainError, ErrorCode

INVITATION_SALT = "mifumo.invitation"
ZERO = Decimal("0.00")


def account_balance(*, account_id: int) -> Account:
    """The account as it is now, with its money fields only."""
    return Account.objects.only(
        "balance", "currency", "balance_updated_at", "low_balance_threshold"
    ).get(pk=account_id)


def account_name(*, account_id: int) -> str:
    name: str = Account.objects.values_list("name", flat=True).get(pk=account_id)
    return name


# --- members and invitations ---------------------------------------------------------------------


def account_members(*, account: Account) -> list[Membership]:
    return list(
        Membership.objects.filter(account=account).select_related("user").order_by("user__username")
    )


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


def invitation_check_usable(*, invitation: Invitation) -> None:
    """CONFLICT saying why ``invitation`` can no longer be accepted: it was used, revoked or
    expired, or whoever sent it is no longer an owner of the account. An owner removed or
    demoted since must not bring anyone in on their word, themselves at another address
    included; a deleted inviter is no owner either."""
    account = invitation.account
    status = invitation.status
    if status != "pending":
        raise DomainError(
            ErrorCode.CONFLICT,
            f"This invitation was {status}; ask an owner of {account.name} for a new one.",
            {"status": status},
        )
    inviter = invitation.invited_by_id
    if (
        inviter is None
        or not Membership.objects.filter(
            account_id=invitation.account_id, user_id=inviter, role=Membership.Role.OWNER
        ).exists()
    ):
        raise DomainError(
            ErrorCode.CONFLICT,
            f"Whoever sent this invitation is no longer an owner of {account.name}, so it "
            "no longer works; ask a current owner for a new one.",
            {"status": "inviter_not_owner"},
        )


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
    rows = per_day(entries).values("day", "kind").annotate(total=Sum("amount"))
    days: dict[date, dict[str, Decimal]] = {}
    for row in rows:
        days.setdefault(row["day"], {})[row["kind"]] = row["total"]
    return days


def spend_of(kinds: dict[str, Decimal]) -> Decimal:
    """What sending cost in one ``ledger_per_day`` day: debits less refunds."""
    return -(kinds.get(LedgerEntry.Kind.DEBIT, ZERO) + kinds.get(LedgerEntry.Kind.REFUND, ZERO))


# --- API keys ------------------------------------------------------------------------------------


# ``test_only``: what a test key may manage, the account's test keys alone.


def _keys(account: Account, test_only: bool) -> QuerySet[ApiKey]:
    keys = ApiKey.objects.filter(account=account)
    return keys.filter(is_test=True) if test_only else keys


def api_keys_all(*, account: Account, test_only: bool = False) -> QuerySet[ApiKey]:
    """Every key of the account, newest first, revoked ones too (they still sent what they
    sent); without the key material, which no list shows."""
    return (
        _keys(account, test_only)
        .select_related("created_by")
        .defer("digest", "encrypted_key")
        .order_by("-created_at", "-id")
    )


def api_key_get(*, account: Account, key_id: int, test_only: bool = False) -> ApiKey:
    key = _keys(account, test_only).filter(pk=key_id).first()
    if key is None:
        raise DomainError(ErrorCode.NOT_FOUND, "API key not found")
    return key


# --- the API usage log ---------------------------------------------------------------------------

MAX_ROUTES = 50


class _Percentile(Aggregate):
    """PostgreSQL's continuous percentile, e.g. the 95th of a latency column."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


@dataclass(frozen=True)
class RequestCounts:
    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    avg_latency_ms: float | None = None


@dataclass(frozen=True)
class RouteUsage:
    method: str
    route: str
    requests: int
    errors: int
    avg_latency_ms: float | None
    p95_latency_ms: float | None

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    @property
    def path(self) -> str:
        # Routes are URL patterns without the leading slash, or raw paths with it.
        return "/" + self.route.lstrip("/")


@dataclass(frozen=True)
class ErrorCodeUsage:
    code: str
    status_code: int
    count: int
    share: float  # percent of all requests in the period


@dataclass(frozen=True)
class ApiUsage:
    days: dict[date, RequestCounts]
    total: RequestCounts
    p95_latency_ms: float | None
    routes: list[RouteUsage]
    error_codes: list[ErrorCodeUsage]


def _request_counts() -> dict[str, Aggregate]:
    return {
        "n": Count("pk"),
        "errors": Count("pk", filter=Q(status_code__gte=400)),
        "limited": Count("pk", filter=Q(status_code=429)),
        "server": Count("pk", filter=Q(status_code__gte=500)),
        "latency": Avg("latency_ms"),
    }


def _counts_of(row: dict[str, Any]) -> RequestCounts:
    return RequestCounts(row["n"], row["errors"], row["limited"], row["server"], row["latency"])


def api_usage(*, account: Account, start: datetime, api_key_id: int | None = None) -> ApiUsage:
    """The account's API requests since ``start`` (only ``api_key_id``'s when given): per UTC
    day, in all, per route (the busiest first) and per error code."""
    rows = ApiRequestLog.objects.filter(account=account, created_at__gte=start)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    days = {row["day"]: _counts_of(row) for row in per_day(rows).annotate(**_request_counts())}
    total = _counts_of(rows.aggregate(**_request_counts()))
    return ApiUsage(
        days=days,
        total=total,
        p95_latency_ms=rows.aggregate(p95=_Percentile("latency_ms", 0.95))["p95"],
        routes=_route_usage(rows),
        error_codes=_error_codes(rows, total.requests),
    )


def _route_usage(rows: QuerySet[ApiRequestLog]) -> list[RouteUsage]:
    grouped = (
        rows.values("method", "route")
        .annotate(
            n=Count("pk"),
            errors=Count("pk", filter=Q(status_code__gte=400)),
            latency=Avg("latency_ms"),
            p95=_Percentile("latency_ms", 0.95),
        )
        .order_by("-n", "route", "method")
    )
    return [
        RouteUsage(
            method=row["method"],
            route=row["route"],
            requests=row["n"],
            errors=row["errors"],
            avg_latency_ms=row["latency"],
            p95_latency_ms=row["p95"],
        )
        for row in grouped[:MAX_ROUTES]
    ]


def _error_codes(rows: QuerySet[ApiRequestLog], total: int) -> list[ErrorCodeUsage]:
    grouped = (
        rows.filter(status_code__gte=400)
        .values("error_code", "status_code")
        .annotate(n=Count("pk"))
        .order_by("-n", "error_code")
    )
    return [
        ErrorCodeUsage(
            code=row["error_code"] or "(none)",
            status_code=row["status_code"],
            count=row["n"],
            share=100.0 * row["n"] / total if total else 0.0,
        )
        for row in grouped
    ]
