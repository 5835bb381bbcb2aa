"""Reads for messages, recipients and delivery reports."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum

from integration.models import Account, LedgerEntry
from mifumo.days import day_start, per_day
from mifumo.db import column, columns, iso_sql, read_models, table
from mifumo.errors import DomainError, ErrorCode
from sms.models import Message, Recipient, RecipientTally
from sms.phones import InvalidPhone, normalize_phone, phone_search_digits

S = Recipient.Status
IN_FLIGHT = {S.SUBMITTING, S.SENT}


def derive_status(counts: dict[str, int]) -> str:
    """The message's status from its recipients' (DESIGN.md, Message lifecycle)."""
    total = sum(counts.values())
    if total == 0:
        return S.QUEUED
    if counts.get(S.CANCELED, 0) == total:
        return S.CANCELED
    if counts.get(S.SCHEDULED, 0):
        return S.SCHEDULED
    # A recipient being submitted has not been accepted by a carrier yet: it is still queued
    # until its submit is acknowledged, so no message reads ``sent`` before one of its
    # recipients was.
    if counts.get(S.QUEUED, 0) or (counts.get(S.SUBMITTING, 0) and not counts.get(S.SENT, 0)):
        return S.QUEUED
    if counts.get(S.SUBMITTING, 0) or counts.get(S.SENT, 0):
        return S.SENT
    delivered = counts.get(S.DELIVERED, 0)
    failed = counts.get(S.FAILED, 0)
    if delivered == total - counts.get(S.CANCELED, 0):
        return S.DELIVERED
    if failed == total - counts.get(S.CANCELED, 0):
        return S.FAILED
    return "partially_delivered"


def message_get(*, account: Account, message_id: str, test_only: bool = False) -> Message:
    """``test_only``: a test message or none (what a test key may see)."""
    messages = Message.objects.filter(account=account, pk=message_id)
    message = (messages.filter(is_test=True) if test_only else messages).first()
    if message is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Message not found")
    return message


# The hot reads of a message's status, in SQL written once rather than compiled by the ORM
# on every request (which costs more than running them).


@functools.cache
def _message_with_refund_sql(test_only: bool) -> str:
    ledger = functools.partial(column, LedgerEntry)
    message = functools.partial(column, Message)
    return (
        f"SELECT {columns(Message, 'm')}, (SELECT sum(l.{ledger('amount')})"  # noqa: S608 - names from the models
        f" FROM {table(LedgerEntry)} l"
        f" WHERE l.{ledger('account')} = m.{message('account')} AND l.{ledger('kind')} = %s"
        f" AND l.{ledger('reference')} = m.{message('id')}) AS refunded"
        f" FROM {table(Message)} m WHERE m.{message('account')} = %s AND m.{message('id')} = %s"
        + (f" AND m.{message('is_test')}" if test_only else "")
    )


@functools.cache
def _status_summary_sql() -> str:
    status = column(Recipient, "status")
    return (
        f"SELECT {status}, count(*), max({column(Recipient, 'delivered_at')})"  # noqa: S608 - names from the model
        f" FROM {table(Recipient)} WHERE {column(Recipient, 'message')} = %s GROUP BY {status}"
    )


@functools.cache
def _recipients_page_sql() -> str:
    return (
        f"SELECT {columns(Recipient)} FROM {table(Recipient)}"  # noqa: S608 - names from the model
        f" WHERE {column(Recipient, 'message')} = %s"
        f" ORDER BY {column(Recipient, 'id')} LIMIT %s OFFSET %s"
    )


def message_get_with_refund(
    *, account: Account, message_id: str, test_only: bool = False
) -> tuple[Message, Decimal]:
    """``message_get`` and what was refunded for the message (``message_refunds``), read
    in one query."""
    found = read_models(
        Message,
        _message_with_refund_sql(test_only),
        [LedgerEntry.Kind.REFUND.value, account.pk, message_id],
    )
    if not found:
        raise DomainError(ErrorCode.NOT_FOUND, "Message not found")
    message, (refunded,) = found[0]
    return message, refunded if refunded is not None else Decimal("0.00")


def message_status_summary(*, message_id: str) -> tuple[dict[str, int], datetime | None]:
    """The message's recipients counted by status (``message_status_counts``) and when the
    last of its delivered recipients was delivered, read in one query."""
    counts: dict[str, int] = {}
    delivered: datetime | None = None
    with connection.cursor() as cursor:
        cursor.execute(_status_summary_sql(), [message_id])
        for state, n, latest in cursor.fetchall():
            counts[state] = n
            if state == S.DELIVERED:
                delivered = latest
    return counts, delivered


def message_recipients_page(*, message: Message, offset: int, limit: int) -> list[Recipient]:
    """A page of the message's recipients, in the order they were added."""
    rows = read_models(Recipient, _recipients_page_sql(), [message.pk, limit, offset])
    return [recipient for recipient, _ in rows]


def message_status_counts(*, message_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        Recipient.objects.filter(message_id__in=list(message_ids))
        .values_list("message_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for message_id, status, n in rows:
        counts[message_id][status] = n
    return counts


def message_refunds(*, account: Account, message_ids: Iterable[str]) -> dict[str, Decimal]:
    """What was given back for each message (recipients rejected at submit, a canceled
    schedule), from the ledger; messages without a refund are left out."""
    rows = (
        LedgerEntry.objects.filter(
            account=account, kind=LedgerEntry.Kind.REFUND, reference__in=list(message_ids)
        )
        .values("reference")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["reference"]: row["total"] for row in rows}


def recipient_was_refunded(recipient: Recipient, *, is_test: bool) -> bool:
    """Refunds follow the lifecycle: a canceled schedule, and a failure before the carrier
    accepted the message (never sent); a failure after ``sent`` is not refunded."""
    if is_test:
        return False
    return recipient.status == S.CANCELED or (
        recipient.status == S.FAILED and recipient.sent_at is None
    )


def message_recipients(*, message: Message) -> QuerySet[Recipient]:
    return Recipient.objects.filter(message=message).order_by("id")


class ReportRow(NamedTuple):
    """One row of the delivery reports: a recipient with what it shows of its message. A
    tuple made from the statement's row at once: a frozen dataclass sets each field with a
    call of its own, 500 of them for a page of 50."""

    message_id: str
    phone: str
    status: str
    sender_id: str
    # Times as the API writes them (``mifumo.api.fields.iso``), formatted by PostgreSQL.
    sent_at: str | None
    delivered_at: str | None
    error_code: str
    cost: Decimal
    currency: str
    created_at: str


@dataclass(frozen=True)
class ReportsQuery:
    """The account's recipients matching the report filters: the ``WHERE`` of a statement
    over recipients ``r`` (joined to their messages ``m`` when it is about them)."""

    where: str
    params: list[Any]
    about_messages: bool
    # Every recipient of the account (no filter): counted by its tally.
    whole_account: bool = False

    def _from(self, *, with_messages: bool) -> str:
        joined = (
            f" JOIN {table(Message)} m"
            f" ON m.{column(Message, 'id')} = r.{column(Recipient, 'message')}"
        )
        return f"FROM {table(Recipient)} r{joined if with_messages else ''} WHERE {self.where}"

    def count(self) -> tuple[str, list[Any]]:
        """The statement counting them, and its parameters (when ``whole_account``,
        ``recipient_total`` gives the same number without counting)."""
        return f"SELECT count(*) {self._from(with_messages=self.about_messages)}", self.params

    def page(self, *, offset: int, limit: int) -> list[ReportRow]:
        """A page of them, newest first."""
        recipient = functools.partial(column, Recipient)
        message = functools.partial(column, Message)
        sent_at, delivered_at, created_at = (
            iso_sql(f"r.{recipient(name)}") for name in ("sent_at", "delivered_at", "created_at")
        )
        sql = (
            f"SELECT m.{message('id')}, r.{recipient('phone')}, r.{recipient('status')},"
            f" m.{message('sender_id')}, {sent_at}, {delivered_at}, r.{recipient('error_code')},"
            f" r.{recipient('cost')}, m.{message('currency')}, {created_at}"
            f" {self._from(with_messages=True)}"
            f" ORDER BY r.{recipient('created_at')} DESC, r.{recipient('id')} DESC"
            " LIMIT %s OFFSET %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*self.params, limit, offset])
            return [ReportRow._make(row) for row in cursor.fetchall()]


def delivery_reports(
    *,
    account: Account,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str | None = None,
    test_only: bool = False,
) -> ReportsQuery:
    where = [f"r.{column(Recipient, 'account')} = %s"]
    params: list[Any] = [account.pk]
    if test_only:
        where.append(f"m.{column(Message, 'is_test')}")
    for value, condition in (
        (start, f"r.{column(Recipient, 'created_at')} >= %s"),
        (end, f"r.{column(Recipient, 'created_at')} <= %s"),
        (status or None, f"r.{column(Recipient, 'status')} = %s"),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    return ReportsQuery(
        " AND ".join(where), params, about_messages=test_only, whole_account=len(where) == 1
    )


@functools.cache
def _tally_sql() -> str:
    return (
        f"SELECT coalesce(sum({column(RecipientTally, 'total')}), 0)"  # noqa: S608 - names from the model
        f" FROM {table(RecipientTally)} WHERE {column(RecipientTally, 'account')} = %s"
    )


def recipient_total(*, account_id: int) -> int:
    """How many recipient rows the account has, from its tally (``RecipientTally``)."""
    with connection.cursor() as cursor:
        cursor.execute(_tally_sql(), [account_id])
        return int(cursor.fetchone()[0])


def messages_list(
    *,
    account: Account,
    start: datetime | None = None,
    end: datetime | None = None,
    sender_id: str | None = None,
    phone: str | None = None,
    test_only: bool = False,
    api_key_id: int | None = None,
    source: str | None = None,
) -> QuerySet[Message]:
    rows = Message.objects.filter(account=account)
    if test_only:
        rows = rows.filter(is_test=True)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    if source:
        rows = rows.filter(source=source)
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lte=end)
    if sender_id:
        rows = rows.filter(sender_id=sender_id)
    if phone:
        rows = rows.filter(
            id__in=Recipient.objects.filter(account=account, phone=phone).values("message_id")
        )
    return rows.order_by("-created_at", "-id")


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


# --- summaries ------------------------------------------------------------------------------------


def messages_since(
    *, account: Account, starts: Mapping[str, datetime]
) -> tuple[dict[str, int], int]:
    """How many messages the account created since each named start, and how many
    recipients those since the earliest start had."""
    counts = Message.objects.filter(
        account=account, created_at__gte=min(starts.values())
    ).aggregate(
        recipients=Sum("recipient_count"),
        **{name: Count("pk", filter=Q(created_at__gte=start)) for name, start in starts.items()},
    )
    recipients = counts.pop("recipients") or 0
    return counts, recipients


def recipient_outcomes(*, account: Account, since: datetime) -> dict[str, int]:
    """How many of the account's recipients since ``since`` were delivered and failed."""
    return Recipient.objects.filter(account=account, created_at__gte=since).aggregate(
        delivered=Count("pk", filter=Q(status=S.DELIVERED)),
        failed=Count("pk", filter=Q(status=S.FAILED)),
    )


def recipient_statuses_per_day(*, account: Account, start: datetime) -> dict[date, dict[str, int]]:
    """Per UTC day since ``start``: how many of the account's recipients have each status."""
    days: dict[date, dict[str, int]] = defaultdict(dict)
    rows = (
        per_day(Recipient.objects.filter(account=account, created_at__gte=start))
        .values("day", "status")
        .annotate(n=Count("pk"))
    )
    for row in rows:
        days[row["day"]][row["status"]] = row["n"]
    return days


def messages_per_day(
    *, account: Account, start: datetime, api_key_id: int | None = None
) -> dict[date, tuple[int, int]]:
    """Per UTC day since ``start``: how many messages the account (or only ``api_key_id``)
    sent, and to how many recipients."""
    rows = Message.objects.filter(account=account, created_at__gte=start)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    return {
        row["day"]: (row["n"], row["recipients"] or 0)
        for row in per_day(rows).annotate(n=Count("pk"), recipients=Sum("recipient_count"))
    }


def message_ids_of_key(*, account: Account, api_key_id: int) -> QuerySet[Any]:
    """The ids of the messages a key sent, as a query to narrow another by."""
    return Message.objects.filter(account=account, api_key_id=api_key_id).values("id")


def recent_failed_recipients(*, account: Account, limit: int = 5) -> list[Recipient]:
    return list(
        Recipient.objects.filter(account=account, status=S.FAILED).order_by("-updated_at", "-id")[
            :limit
        ]
    )
