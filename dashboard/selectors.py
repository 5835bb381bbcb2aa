"""Reads for the dashboard pages: summaries over messages, money and the API usage log.

Every function is scoped to one account. Days are UTC calendar days, the same days the API
reports in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import (
    Aggregate,
    Avg,
    Count,
    FloatField,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from integration.models import Account, ApiKey, ApiRequestLog, AuditEvent, LedgerEntry, Membership
from integration.selectors import ledger_per_day, spend_of
from sms.models import Message, Recipient, SenderId
from sms.phones import InvalidPhone, normalize_phone, phone_search_digits
from sms.selectors import messages_list
from webhooks.models import Delivery, Endpoint

ZERO = Decimal("0.00")
S = Recipient.Status
# The statuses a day's bar is split into, in stacking order (bottom first).
STATUS_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("delivered", "Delivered", (S.DELIVERED,)),
    ("sent", "Sent, awaiting receipt", (S.SENT, S.SUBMITTING)),
    ("pending", "Queued or scheduled", (S.QUEUED, S.SCHEDULED)),
    ("failed", "Failed", (S.FAILED,)),
    ("canceled", "Canceled", (S.CANCELED,)),
)
_GROUP_OF = {status: key for key, _, statuses in STATUS_GROUPS for status in statuses}
PERIODS = (7, 30, 90)
MAX_ROUTES = 50


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def days_back(days: int) -> list[date]:
    """The last ``days`` UTC days, oldest first, today included."""
    last = today()
    return [last - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _per_day(rows: QuerySet[Any], field_name: str = "created_at") -> QuerySet[Any]:
    return rows.annotate(day=TruncDate(field_name, tzinfo=UTC)).values("day").order_by("day")


# --- memberships and keys -----------------------------------------------------------------------


def account_members(*, account: Account) -> list[Membership]:
    return list(
        Membership.objects.filter(account=account).select_related("user").order_by("user__username")
    )


def api_keys_list(*, account: Account) -> QuerySet[ApiKey]:
    return (
        ApiKey.objects.filter(account=account)
        .select_related("created_by")
        .defer("digest", "encrypted_key")
        .order_by("-created_at", "-id")
    )


def api_key_get(*, account: Account, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(account=account, pk=key_id).first()
    if key is None:
        raise Http404("API key not found")
    return key


def sender_ids_usable(*, account: Account) -> list[str]:
    """The sender IDs a send may use: the platform default, then the approved ones."""
    approved = SenderId.objects.filter(account=account, status=SenderId.Status.APPROVED)
    values = [settings.MIFUMO_DEFAULT_SENDER_ID]
    values += [v for v in approved.values_list("value", flat=True) if v not in values]
    return values


def sender_ids_all(*, account: Account) -> QuerySet[SenderId]:
    return SenderId.objects.filter(account=account).order_by("status", "value")


# --- overview -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    kind: str
    text: str
    count: int
    link: str  # a dashboard route name


@dataclass(frozen=True)
class Overview:
    balance: Decimal
    currency: str
    messages_today: int
    messages_7d: int
    messages_30d: int
    recipients_30d: int
    delivered_30d: int
    failed_30d: int
    spend_30d: Decimal
    attention: list[Attention]

    @property
    def delivery_rate(self) -> float | None:
        """Delivered among the recipients with a final outcome; None before any."""
        decided = self.delivered_30d + self.failed_30d
        return None if not decided else 100.0 * self.delivered_30d / decided


def spend_between(*, account: Account, start: datetime, end: datetime | None = None) -> Decimal:
    """What sending cost: debits less refunds, from the ledger."""
    rows = LedgerEntry.objects.filter(
        account=account,
        kind__in=[LedgerEntry.Kind.DEBIT, LedgerEntry.Kind.REFUND],
        created_at__gte=start,
    )
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    total = rows.aggregate(total=Sum("amount"))["total"] or ZERO
    return -total


def account_overview(*, account: Account) -> Overview:
    now = timezone.now()
    start_today = day_start(today())
    start_7 = start_today - timedelta(days=6)
    start_30 = start_today - timedelta(days=29)
    counts = Message.objects.filter(account=account, created_at__gte=start_30).aggregate(
        today=Count("pk", filter=Q(created_at__gte=start_today)),
        week=Count("pk", filter=Q(created_at__gte=start_7)),
        month=Count("pk"),
        recipients=Sum("recipient_count"),
    )
    outcomes = Recipient.objects.filter(account=account, created_at__gte=start_30).aggregate(
        delivered=Count("pk", filter=Q(status=S.DELIVERED)),
        failed=Count("pk", filter=Q(status=S.FAILED)),
    )
    fresh = Account.objects.only("balance", "currency").get(pk=account.pk)
    return Overview(
        balance=fresh.balance,
        currency=fresh.currency,
        messages_today=counts["today"],
        messages_7d=counts["week"],
        messages_30d=counts["month"],
        recipients_30d=counts["recipients"] or 0,
        delivered_30d=outcomes["delivered"],
        failed_30d=outcomes["failed"],
        spend_30d=spend_between(account=account, start=start_30),
        attention=_attention(account=account, since=now - timedelta(days=7)),
    )


def _attention(*, account: Account, since: datetime) -> list[Attention]:
    items: list[Attention] = []
    fresh = Account.objects.only("balance", "low_balance_threshold").get(pk=account.pk)
    if fresh.low_balance_threshold is not None and fresh.balance < fresh.low_balance_threshold:
        items.append(
            Attention(
                "balance",
                f"the balance is below the alert threshold of {fresh.low_balance_threshold:,.2f}",
                1,
                "billing",
            )
        )
    failed = Recipient.objects.filter(
        account=account, status=S.FAILED, created_at__gte=since
    ).count()
    if failed:
        items.append(
            Attention(
                "failed",
                f"{_plural(failed, 'recipient', 'recipients')} failed in the last 7 days",
                failed,
                "messages",
            )
        )
    deliveries = Delivery.objects.filter(
        account=account, status=Delivery.Status.FAILED, created_at__gte=since
    ).count()
    if deliveries:
        items.append(
            Attention(
                "webhook",
                f"webhook {_plural(deliveries, 'delivery', 'deliveries')} failed in the last "
                "7 days",
                deliveries,
                "webhooks",
            )
        )
    disabled = Endpoint.objects.filter(account=account, active=False).count()
    if disabled:
        items.append(
            Attention(
                "endpoint",
                f"webhook {_plural(disabled, 'endpoint is', 'endpoints are')} disabled",
                disabled,
                "webhooks",
            )
        )
    rejected = SenderId.objects.filter(
        account=account, status=SenderId.Status.REJECTED, reviewed_at__gte=since
    ).count()
    if rejected:
        items.append(
            Attention(
                "sender",
                f"sender {_plural(rejected, 'ID was', 'IDs were')} rejected this week",
                rejected,
                "sender_ids",
            )
        )
    return items


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def recipients_per_day(*, account: Account, days: int) -> dict[date, dict[str, int]]:
    """Recipients per UTC day, grouped as in STATUS_GROUPS."""
    series: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = (
        _per_day(
            Recipient.objects.filter(account=account, created_at__gte=day_start(days_back(days)[0]))
        )
        .values("day", "status")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        series[row["day"]][_GROUP_OF.get(row["status"], "pending")] += row["n"]
    return series


# --- usage --------------------------------------------------------------------------------------


class _Percentile(Aggregate):
    """PostgreSQL's continuous percentile, e.g. the 95th of a latency column."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


@dataclass
class DayUsage:
    day: date
    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    avg_latency_ms: float | None = None
    messages: int = 0
    recipients: int = 0
    spend: Decimal = ZERO

    @property
    def ok(self) -> int:
        return self.requests - self.errors


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


@dataclass
class UsageReport:
    days: list[DayUsage]
    routes: list[RouteUsage]
    error_codes: list[ErrorCodeUsage]
    requests: int = 0
    errors: int = 0
    rate_limited: int = 0
    avg_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    messages: int = 0
    recipients: int = 0
    spend: Decimal = ZERO

    @property
    def error_rate(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0


def _usage_rows(
    account: Account, start: datetime, api_key_id: int | None
) -> QuerySet[ApiRequestLog]:
    rows = ApiRequestLog.objects.filter(account=account, created_at__gte=start)
    return rows if api_key_id is None else rows.filter(api_key_id=api_key_id)


def usage_report(*, account: Account, days: int, api_key_id: int | None = None) -> UsageReport:
    """The account's API use, messages and spend per day; with ``api_key_id``, only what
    that key did (its requests, the messages it sent and what they cost)."""
    calendar = days_back(days)
    start = day_start(calendar[0])
    by_day = {day: DayUsage(day=day) for day in calendar}
    rows = _usage_rows(account, start, api_key_id)
    is_error = Q(status_code__gte=400)
    for row in _per_day(rows).annotate(
        n=Count("pk"),
        errors=Count("pk", filter=is_error),
        limited=Count("pk", filter=Q(status_code=429)),
        server=Count("pk", filter=Q(status_code__gte=500)),
        latency=Avg("latency_ms"),
    ):
        usage = by_day.get(row["day"])
        if usage is None:
            continue
        usage.requests, usage.errors = row["n"], row["errors"]
        usage.rate_limited, usage.server_errors = row["limited"], row["server"]
        usage.avg_latency_ms = row["latency"]
    sent = Message.objects.filter(account=account, created_at__gte=start)
    if api_key_id is not None:
        sent = sent.filter(api_key_id=api_key_id)
    for row in _per_day(sent).annotate(n=Count("pk"), recipients=Sum("recipient_count")):
        usage = by_day.get(row["day"])
        if usage is not None:
            usage.messages, usage.recipients = row["n"], row["recipients"] or 0
    references = (
        None
        if api_key_id is None
        else Message.objects.filter(account=account, api_key_id=api_key_id).values("id")
    )
    for day, kinds in ledger_per_day(account=account, start=start, references=references).items():
        usage = by_day.get(day)
        if usage is not None:
            usage.spend = spend_of(kinds)

    totals = rows.aggregate(
        n=Count("pk"),
        errors=Count("pk", filter=is_error),
        limited=Count("pk", filter=Q(status_code=429)),
        latency=Avg("latency_ms"),
    )
    report = UsageReport(
        days=list(by_day.values()),
        routes=_route_usage(rows),
        error_codes=_error_codes(rows, totals["n"]),
        requests=totals["n"],
        errors=totals["errors"],
        rate_limited=totals["limited"],
        avg_latency_ms=totals["latency"],
    )
    report.p95_latency_ms = rows.aggregate(p95=_Percentile("latency_ms", 0.95))["p95"]
    report.messages = sum(d.messages for d in report.days)
    report.recipients = sum(d.recipients for d in report.days)
    report.spend = sum((d.spend for d in report.days), ZERO)
    return report


def _route_usage(rows: QuerySet[ApiRequestLog]) -> list[RouteUsage]:
    grouped = (
        rows.values("method", "route")
        .annotate(
            n=Count("pk"),
            errors=Count("pk", filter=Q(status_code__gte=400)),
            latency=Avg("latency_ms"),
        )
        .order_by("-n", "route", "method")
    )
    grouped = grouped.annotate(p95=_Percentile("latency_ms", 0.95))
    result = []
    for row in grouped[:MAX_ROUTES]:
        result.append(
            RouteUsage(
                method=row["method"],
                route=row["route"],
                requests=row["n"],
                errors=row["errors"],
                avg_latency_ms=row["latency"],
                p95_latency_ms=row["p95"],
            )
        )
    return result


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


# --- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageFilter:
    q: str = ""
    status: str = ""
    start: date | None = None
    end: date | None = None
    api_key_id: int | None = None
    source: str = ""


def messages_search(*, account: Account, filters: MessageFilter) -> QuerySet[Message]:
    """Messages by id, by phone (a full number or a fragment of one), by the status of any
    of their recipients and by UTC date range."""
    start = day_start(filters.start) if filters.start else None
    end = day_start(filters.end + timedelta(days=1)) if filters.end else None
    q = filters.q.strip()
    phone: str | None = None
    fragment = ""
    if q and not q.lower().startswith("msg_"):
        try:
            phone = normalize_phone(q)
        except InvalidPhone:
            fragment = phone_search_digits(q)
    rows = messages_list(
        account=account,
        start=start,
        phone=phone,
        api_key_id=filters.api_key_id,
        source=filters.source or None,
    )
    if end is not None:
        # messages_list's end is inclusive; a day range wants the next midnight excluded.
        rows = rows.filter(created_at__lt=end)
    if q.lower().startswith("msg_"):
        rows = rows.filter(pk__startswith=q)
    elif q and phone is None:
        if not fragment:
            return rows.none()
        rows = rows.filter(
            pk__in=Recipient.objects.filter(account=account, phone__contains=fragment).values(
                "message_id"
            )
        )
    if filters.status:
        rows = rows.filter(
            pk__in=Recipient.objects.filter(account=account, status=filters.status).values(
                "message_id"
            )
        )
    return rows


def message_for_account(*, account: Account, message_id: str) -> Message:
    message = Message.objects.filter(account=account, pk=message_id).first()
    if message is None:
        raise Http404("Message not found")
    return message


# --- webhooks -----------------------------------------------------------------------------------


def endpoint_delivery_stats(*, endpoints: Iterable[Endpoint]) -> dict[str, dict[str, Any]]:
    """Per endpoint: deliveries in the last 7 days by outcome, and the latest one's time."""
    ids = [e.pk for e in endpoints]
    since = timezone.now() - timedelta(days=7)
    rows = (
        Delivery.objects.filter(endpoint_id__in=ids, created_at__gte=since)
        .values("endpoint_id")
        .annotate(
            total=Count("pk"),
            failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
            succeeded=Count("pk", filter=Q(status=Delivery.Status.SUCCEEDED)),
        )
        .order_by()
    )
    return {row["endpoint_id"]: row for row in rows}


# --- activity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityFilter:
    action: str = ""
    actor_id: int | None = None
    q: str = ""
    start: date | None = None
    end: date | None = None


def audit_events(*, account: Account, filters: ActivityFilter) -> QuerySet[AuditEvent]:
    rows = AuditEvent.objects.filter(account=account).select_related("actor")
    if filters.action:
        # A family ("api_key") or one action ("api_key.created").
        rows = rows.filter(Q(action=filters.action) | Q(action__startswith=f"{filters.action}."))
    if filters.actor_id is not None:
        rows = rows.filter(actor_id=filters.actor_id)
    if filters.q.strip():
        rows = rows.filter(target__icontains=filters.q.strip())
    if filters.start:
        rows = rows.filter(created_at__gte=day_start(filters.start))
    if filters.end:
        rows = rows.filter(created_at__lt=day_start(filters.end + timedelta(days=1)))
    return rows.order_by("-created_at", "-id")


def audit_actions_seen(*, account: Account) -> list[str]:
    return list(
        AuditEvent.objects.filter(account=account)
        .values_list("action", flat=True)
        .distinct()
        .order_by("action")
    )


def audit_recent(*, account: Account, limit: int = 8) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(account=account)
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )


def recent_failed_recipients(*, account: Account, limit: int = 5) -> list[Recipient]:
    return list(
        Recipient.objects.filter(account=account, status=S.FAILED).order_by("-updated_at", "-id")[
            :limit
        ]
    )
