"""What the dashboard's pages show, shaped from the apps' reads: the overview's figures and
what needs attention, recipients per day in the chart's status groups, the usage report; and
reads of the activity log.

Every function is scoped to one account. Days are UTC calendar days, the same days the API
reports in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone

from integration.models import Account, AuditEvent
from integration.selectors import (
    ErrorCodeUsage,
    RequestCounts,
    RouteUsage,
    account_balance,
    api_usage,
    ledger_per_day,
    spend_of,
)
from mifumo.days import day_end, day_start, days_back, today
from sms.models import Recipient
from sms.selectors import (
    message_ids_of_key,
    messages_per_day,
    messages_since,
    recipient_outcomes,
    recipient_statuses_per_day,
)
from sms.sender_ids import sender_ids_rejected_count
from webhooks.selectors import deliveries_failed_count, endpoints_disabled_count

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


def _spend_since(*, account: Account, start: datetime) -> Decimal:
    """What sending cost since ``start``: debits less refunds, from the ledger."""
    per_day = ledger_per_day(account=account, start=start)
    return sum((spend_of(kinds) for kinds in per_day.values()), ZERO)


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


def account_overview(*, account: Account) -> Overview:
    now = timezone.now()
    start_today = day_start(today())
    start_30 = start_today - timedelta(days=29)
    counts, recipients = messages_since(
        account=account,
        starts={"today": start_today, "week": start_today - timedelta(days=6), "month": start_30},
    )
    outcomes = recipient_outcomes(account=account, since=start_30)
    fresh = account_balance(account_id=account.pk)
    return Overview(
        balance=fresh.balance,
        currency=fresh.currency,
        messages_today=counts["today"],
        messages_7d=counts["week"],
        messages_30d=counts["month"],
        recipients_30d=recipients,
        delivered_30d=outcomes["delivered"],
        failed_30d=outcomes["failed"],
        spend_30d=_spend_since(account=account, start=start_30),
        attention=_attention(account=fresh, since=now - timedelta(days=7)),
    )


def _attention(*, account: Account, since: datetime) -> list[Attention]:
    items: list[Attention] = []
    threshold = account.low_balance_threshold
    if threshold is not None and account.balance < threshold:
        items.append(
            Attention(
                "balance",
                f"the balance is below the alert threshold of {threshold:,.2f}",
                1,
                "billing",
            )
        )
    failed = recipient_outcomes(account=account, since=since)["failed"]
    if failed:
        items.append(
            Attention(
                "failed",
                f"{_plural(failed, 'recipient', 'recipients')} failed in the last 7 days",
                failed,
                "messages",
            )
        )
    deliveries = deliveries_failed_count(account=account, since=since)
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
    disabled = endpoints_disabled_count(account=account)
    if disabled:
        items.append(
            Attention(
                "endpoint",
                f"webhook {_plural(disabled, 'endpoint is', 'endpoints are')} disabled",
                disabled,
                "webhooks",
            )
        )
    rejected = sender_ids_rejected_count(account=account, since=since)
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
    per_status = recipient_statuses_per_day(account=account, start=day_start(days_back(days)[0]))
    for day, statuses in per_status.items():
        for status, n in statuses.items():
            series[day][_GROUP_OF.get(status, "pending")] += n
    return series


# --- usage --------------------------------------------------------------------------------------


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


def usage_report(*, account: Account, days: int, api_key_id: int | None = None) -> UsageReport:
    """The account's API use, messages and spend per day; with ``api_key_id``, only what
    that key did (its requests, the messages it sent and what they cost)."""
    calendar = days_back(days)
    start = day_start(calendar[0])
    api = api_usage(account=account, start=start, api_key_id=api_key_id)
    sent = messages_per_day(account=account, start=start, api_key_id=api_key_id)
    references = (
        None if api_key_id is None else message_ids_of_key(account=account, api_key_id=api_key_id)
    )
    spent = ledger_per_day(account=account, start=start, references=references)
    report = UsageReport(
        days=[],
        routes=api.routes,
        error_codes=api.error_codes,
        requests=api.total.requests,
        errors=api.total.errors,
        rate_limited=api.total.rate_limited,
        avg_latency_ms=api.total.avg_latency_ms,
        p95_latency_ms=api.p95_latency_ms,
    )
    for day in calendar:
        calls = api.days.get(day, RequestCounts())
        messages, recipients = sent.get(day, (0, 0))
        report.days.append(
            DayUsage(
                day=day,
                requests=calls.requests,
                errors=calls.errors,
                rate_limited=calls.rate_limited,
                server_errors=calls.server_errors,
                avg_latency_ms=calls.avg_latency_ms,
                messages=messages,
                recipients=recipients,
                spend=spend_of(spent[day]) if day in spent else ZERO,
            )
        )
    report.messages = sum(d.messages for d in report.days)
    report.recipients = sum(d.recipients for d in report.days)
    report.spend = sum((d.spend for d in report.days), ZERO)
    return report


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
        rows = rows.filter(created_at__lt=day_end(filters.end))
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
