"""Reads for messages, recipients and delivery reports."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum

from integration.models import Account, LedgerEntry
from mifumo.api.pagination import count_sql
from mifumo.days import day_end, day_start, per_day
from mifumo.db import column, columns, iso_sql, model_at, table
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
def _status_sql(test_only: bool) -> str:
    """The message with its refund, its recipients counted by status with the last delivery,
    and a page of them, in one statement: a first row (``part`` 0) with the message, the
    refund, the statuses and their counts, the time; then the page's rows (``part`` 1), each
    recipient's columns after the first row's width. Nothing at all when the message is not
    the account's."""
    ledger = functools.partial(column, LedgerEntry)
    message = functools.partial(column, Message)
    recipient = functools.partial(column, Recipient)
    width = len(Message._meta.concrete_fields) + 4  # the message, refund, statuses, counts, time
    recipients = len(Recipient._meta.concrete_fields)
    status = recipient("status")
    test = f" AND m.{message('is_test')}" if test_only else ""
    the_message = (
        f"SELECT {columns(Message, 'm')}, (SELECT sum(l.{ledger('amount')})"  # noqa: S608 - names from the models
        f" FROM {table(LedgerEntry)} l"
        f" WHERE l.{ledger('account')} = m.{message('account')} AND l.{ledger('kind')} = %s"
        f" AND l.{ledger('reference')} = m.{message('id')}) AS refunded"
        f" FROM {table(Message)} m WHERE m.{message('account')} = %s AND m.{message('id')} = %s"
        f"{test}"
    )
    of_it = f"{recipient('message')} = (SELECT {message('id')} FROM m)"  # noqa: S608 - names from the models
    return (
        f"WITH m AS ({the_message}), c AS ("  # noqa: S608 - names from the models
        f"SELECT {status} AS status, count(*) AS n, max({recipient('delivered_at')}) AS latest"
        f" FROM {table(Recipient)} WHERE {of_it} GROUP BY {status})"
        " SELECT 0 AS part, m.*,"
        " (SELECT array_agg(c.status ORDER BY c.status) FROM c),"
        " (SELECT array_agg(c.n ORDER BY c.status) FROM c),"
        " (SELECT c.latest FROM c WHERE c.status = %s),"
        f" {', '.join(['NULL'] * recipients)} FROM m"
        " UNION ALL ("
        f"SELECT 1, {', '.join(['NULL'] * width)}, {columns(Recipient, 'r')}"
        f" FROM {table(Recipient)} r WHERE r.{of_it}"
        " AND %s < (SELECT coalesce(sum(c.n), 0) FROM c)"
        f" ORDER BY r.{recipient('id')} LIMIT %s OFFSET %s)"
        # The recipients' id is the first of their columns.
        f" ORDER BY 1, {width + 2}"
    )


@dataclass(frozen=True)
class StatusRead:
    """What a message's status shows: the message, what was refunded for it
    (``message_refunds``), its recipients counted by status (``message_status_counts``), when
    the last of its delivered recipients was delivered, and the page of recipients asked."""

    message: Message
    refunded: Decimal
    counts: dict[str, int]
    delivered: datetime | None
    recipients: list[Recipient]


def message_status_read(
    *, account: Account, message_id: str, offset: int, limit: int, test_only: bool = False
) -> StatusRead:
    """The message (``message_get``) with what its status shows, its recipients from
    ``offset`` (at most ``limit``, in the order they were added), read in one statement."""
    params: list[Any] = [LedgerEntry.Kind.REFUND.value, account.pk, message_id, S.DELIVERED, offset]
    with connection.cursor() as cursor:
        cursor.execute(_status_sql(test_only), [*params, limit, offset])
        rows = cursor.fetchall()
    if not rows or rows[0][0] != 0:
        raise DomainError(ErrorCode.NOT_FOUND, "Message not found")
    first = rows[0]
    width = len(Message._meta.concrete_fields)
    alias = connection.alias
    refunded, statuses, counts, delivered = first[1 + width : 5 + width]
    return StatusRead(
        message=model_at(Message, first, 1, alias),
        refunded=refunded if refunded is not None else Decimal("0.00"),
        counts=dict(zip(statuses or (), counts or (), strict=True)),
        delivered=delivered,
        recipients=[model_at(Recipient, row, 5 + width, alias) for row in rows[1:]],
    )


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

    def _from(self, *, with_messages: bool) -> str:
        joined = (
            f" JOIN {table(Message)} m"
            f" ON m.{column(Message, 'id')} = r.{column(Recipient, 'message')}"
        )
        return f"FROM {table(Recipient)} r{joined if with_messages else ''} WHERE {self.where}"

    def read(self, offset: int, limit: int) -> tuple[int, list[ReportRow]]:
        """How many there are, and the page of them at ``offset`` (newest first; read only
        when the page has some). When they are every recipient of the account (no filter),
        the total is its tally, exact at any size, read in the page's statement. Else it is
        counted, a large total remembered briefly, and the page read after."""
        if self.where == _account_only():
            return self._tally_and_page(offset, limit)
        total = count_sql(
            f"SELECT count(*) {self._from(with_messages=self.about_messages)}", self.params
        )
        return total, (self._page(offset, limit) if offset < total else [])

    def _page_sql(self, first: str = "") -> str:
        """The statement of a page, without its order and limits (``first``: columns before
        the page's)."""
        recipient = functools.partial(column, Recipient)
        message = functools.partial(column, Message)
        sent_at, delivered_at, created_at = (
            iso_sql(f"r.{recipient(name)}") for name in ("sent_at", "delivered_at", "created_at")
        )
        return (
            f"SELECT {first}m.{message('id')}, r.{recipient('phone')}, r.{recipient('status')},"
            f" m.{message('sender_id')}, {sent_at}, {delivered_at}, r.{recipient('error_code')},"
            f" r.{recipient('cost')}, m.{message('currency')}, {created_at}"
            f" {self._from(with_messages=True)}"
        )

    def _page(self, offset: int, limit: int) -> list[ReportRow]:
        sql = f"{self._page_sql()} ORDER BY {_newest_first()} LIMIT %s OFFSET %s"
        with connection.cursor() as cursor:
            cursor.execute(sql, [*self.params, limit, offset])
            return [ReportRow._make(row) for row in cursor.fetchall()]

    def _tally_and_page(self, offset: int, limit: int) -> tuple[int, list[ReportRow]]:
        """The account's tally and the page, in one statement: each row of the page carries
        the total. An ``offset`` past the total stops the statement before it walks the
        index; with no rows to carry it, the total is read alone."""
        sql = (
            f"WITH t AS ({_tally_sql()}) {self._page_sql('(SELECT total FROM t), ')}"  # noqa: S608 - names from the models
            f" AND %s < (SELECT total FROM t) ORDER BY {_newest_first()} LIMIT %s OFFSET %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.params[0], *self.params, offset, limit, offset])
            rows = cursor.fetchall()
        if not rows:
            return recipient_total(account_id=self.params[0]), []
        return rows[0][0], [ReportRow._make(row[1:]) for row in rows]


@functools.cache
def _newest_first() -> str:
    """The reports' order."""
    return f"r.{column(Recipient, 'created_at')} DESC, r.{column(Recipient, 'id')} DESC"


def delivery_reports(
    *,
    account: Account,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str | None = None,
    test_only: bool = False,
) -> ReportsQuery:
    where = [_account_only()]
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
    return ReportsQuery(" AND ".join(where), params, about_messages=test_only)


@functools.cache
def _account_only() -> str:
    return f"r.{column(Recipient, 'account')} = %s"


@functools.cache
def _tally_sql() -> str:
    return (
        f"SELECT coalesce(sum({column(RecipientTally, 'total')}), 0)::bigint AS total"  # noqa: S608 - names from the model
        f" FROM {table(RecipientTally)} WHERE {column(RecipientTally, 'account')} = %s"
    )


def recipient_total(*, account_id: int) -> int:
    """How many recipient rows the account has, from its tally (``RecipientTally``)."""
    with connection.cursor() as cursor:
        cursor.execute(_tally_sql(), [account_id])
        return int(cursor.fetchone()[0])


def texts_received(*, messages: Sequence[Message], phone: str) -> dict[str, str]:
    """What ``phone`` received of each message: a personalised message's own text for it,
    else the message's text."""
    own = dict(
        Recipient.objects.filter(message__in=[m.pk for m in messages], phone=phone)
        .exclude(text="")
        .values_list("message_id", "text")
    )
    return {m.pk: own.get(m.pk) or m.text for m in messages}


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
    end = day_end(filters.end) if filters.end else None
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
    """How many live messages the account created since each named start, and how many
    recipients those since the earliest start had."""
    counts = Message.objects.filter(
        account=account, is_test=False, created_at__gte=min(starts.values())
    ).aggregate(
        recipients=Sum("recipient_count"),
        **{name: Count("pk", filter=Q(created_at__gte=start)) for name, start in starts.items()},
    )
    recipients = counts.pop("recipients") or 0
    return counts, recipients


def _live_recipients(account: Account, since: datetime) -> QuerySet[Recipient]:
    """The account's recipients since ``since`` of live messages: test keys' go to the
    simulator, and their simulated deliveries would make the figures of live traffic up.
    (A recipient does not know its mode; the account's few test messages of the window are
    set aside by id, a hash the scan checks each row against.)"""
    tests = Message.objects.filter(account=account, is_test=True, created_at__gte=since)
    return Recipient.objects.filter(account=account, created_at__gte=since).exclude(
        message_id__in=tests.values("id")
    )


def recipient_outcomes(*, account: Account, since: datetime) -> dict[str, int]:
    """How many of the account's live recipients since ``since`` were delivered and failed."""
    return _live_recipients(account, since).aggregate(
        delivered=Count("pk", filter=Q(status=S.DELIVERED)),
        failed=Count("pk", filter=Q(status=S.FAILED)),
    )


def recipient_statuses_per_day(*, account: Account, start: datetime) -> dict[date, dict[str, int]]:
    """Per UTC day since ``start``: how many of the account's live recipients have each
    status."""
    days: dict[date, dict[str, int]] = defaultdict(dict)
    rows = per_day(_live_recipients(account, start)).values("day", "status").annotate(n=Count("pk"))
    for row in rows:
        days[row["day"]][row["status"]] = row["n"]
    return days


def messages_per_day(
    *, account: Account, start: datetime, api_key_id: int | None = None
) -> dict[date, tuple[int, int]]:
    """Per UTC day since ``start``: how many live messages the account sent (or all that
    ``api_key_id`` sent, a test key's included), and to how many recipients."""
    rows = Message.objects.filter(account=account, created_at__gte=start)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    else:
        rows = rows.filter(is_test=False)
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
