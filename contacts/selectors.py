"""Reads over contacts; every one is scoped to an account."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, Func, Q, QuerySet

from contacts.csvio import COLUMNS
from contacts.models import Contact
from integration.models import Account
from mifumo.db import column, columns, read_models, table
from mifumo.errors import DomainError, ErrorCode
from sms.phones import phone_search_digits

# Only a fragment made of phone characters searches the numbers: "john2" must not match
# every number containing a 2.
_PHONE_FRAGMENT = re.compile(r"^[\d\s+().-]+$")
# PostgreSQL takes far more, but a few thousand per IN list keeps each statement cheap to
# parse and plan.
IN_LIST_SIZE = 5_000


@dataclass(frozen=True)
class ContactPage:
    contacts: list[Contact]
    total: int


def contact_get(*, account: Account, contact_id: str) -> Contact:
    contact = Contact.objects.filter(account=account, pk=contact_id).first()
    if contact is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Contact not found", {"contact_id": contact_id})
    return contact


def _phone_digits(q: str) -> str:
    """The digits a phone-like text searches the numbers for ("" when it is not one)."""
    return phone_search_digits(q) if _PHONE_FRAGMENT.match(q) else ""


def contact_text_q(q: str) -> Q:
    """Case-insensitive substring of name or email; for phone-like text, the digits of the
    number too, so that 0712…, 712… and +255712… find the same contact."""
    condition = Q(name__icontains=q) | Q(email__icontains=q)
    if digits := _phone_digits(q):
        # icontains, though digits have no case, to match the UPPER(phone_number)
        # trigram index (migration 0002).
        condition |= Q(phone_number__icontains=digits)
    return condition


def contact_queryset(
    *, account: Account, q: str = "", within: Q | None = None
) -> QuerySet[Contact]:
    """The account's contacts, newest first, optionally narrowed by text and a filter (a
    segment's criteria)."""
    contacts = Contact.objects.filter(account=account)
    if within is not None:
        contacts = contacts.filter(within)
    q = q.strip()
    if q:
        contacts = contacts.filter(contact_text_q(q))
    return contacts.order_by("-created_at", "-id")


def contact_search(
    *, account: Account, q: str = "", limit: int, offset: int, within: Q | None = None
) -> ContactPage:
    if within is None:
        return _contact_search_sql(account=account, q=q.strip(), limit=limit, offset=offset)
    contacts = contact_queryset(account=account, q=q, within=within)
    total = contacts.count()
    page = list(contacts[offset : offset + limit]) if offset < total else []
    return ContactPage(contacts=page, total=total)


@functools.cache
def _search_where(*, text: bool, phone: bool) -> str:
    """The ``WHERE`` of a search without a segment, as the ORM writes ``contact_queryset``'s
    (``UPPER(column::text) LIKE UPPER(%s)``, which the trigram indexes of migration 0002
    serve), written once per shape rather than compiled per request."""
    contact = functools.partial(column, Contact)
    where = f"{contact('account')} = %s"
    if text:
        fields = ("name", "email", "phone_number") if phone else ("name", "email")
        likes = " OR ".join(f"UPPER({contact(name)}::text) LIKE UPPER(%s)" for name in fields)
        where += f" AND ({likes})"
    return where


def _like(text: str) -> str:
    """The ``LIKE`` pattern of an ``icontains`` on ``text``, as the ORM writes it."""
    return f"%{connection.ops.prep_for_like_query(text)}%"


def _contact_search_sql(*, account: Account, q: str, limit: int, offset: int) -> ContactPage:
    """``contact_search`` without a segment, in SQL: the count, then the page."""
    digits = _phone_digits(q)
    where = _search_where(text=bool(q), phone=bool(digits))
    params: list[Any] = [account.pk]
    if q:
        params += [_like(q), _like(q), *([_like(digits)] if digits else [])]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table(Contact)} WHERE {where}", params)  # noqa: S608 - names from the model
        total = int(cursor.fetchone()[0])
    if offset >= total:
        return ContactPage(contacts=[], total=total)
    page = read_models(
        Contact,
        f"SELECT {columns(Contact)} FROM {table(Contact)} WHERE {where}"  # noqa: S608 - names from the model
        f" ORDER BY {column(Contact, 'created_at')} DESC, {column(Contact, 'id')} DESC"
        " LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    return ContactPage(contacts=[contact for contact, _ in page], total=total)


def contact_export_rows(*, account: Account, within: Q | None = None) -> Iterator[tuple[Any, ...]]:
    """Rows in the CSV's column order (the model's field names), oldest first, fetched in
    chunks (a server-side cursor on PostgreSQL) so memory stays flat for any number."""
    contacts = Contact.objects.filter(account=account)
    if within is not None:
        contacts = contacts.filter(within)
    return (
        contacts.order_by("created_at", "id")
        .values_list(*COLUMNS, "custom_fields")
        .iterator(chunk_size=2_000)
    )


def contact_custom_keys(*, account: Account, within: Q | None = None) -> list[str]:
    """Every custom field key the account's contacts (or those ``within``) use, sorted."""
    contacts = Contact.objects.filter(account=account)
    if within is not None:
        contacts = contacts.filter(within)
    keys = (
        contacts.annotate(key=Func(F("custom_fields"), function="jsonb_object_keys"))
        .order_by()
        .values_list("key", flat=True)
        .distinct()
    )
    return sorted(str(key) for key in keys)


def contact_fields_by_phone(
    *, account: Account, phones: Sequence[str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """phone -> (name, custom fields) of the account's contacts among these numbers: what a
    personalised send fills placeholders from. One statement, whatever the count."""
    if not phones:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT phone_number, name, custom_fields FROM {Contact._meta.db_table} "  # noqa: S608 - model's table
            "WHERE account_id = %s AND phone_number = ANY(%s)",
            [account.pk, list(phones)],
        )
        rows = cursor.fetchall()
    return {
        phone: (name, json.loads(fields) if isinstance(fields, str) else dict(fields or {}))
        for phone, name, fields in rows
    }


def opted_out_sql(*, account_id: int, phones: list[str]) -> tuple[str, list[Any]]:
    """The SELECT of the account's opted-out numbers (column ``phone_number``) among
    ``phones``, with its parameters; also a CTE of the one-statement send."""
    sql = (
        f"SELECT phone_number FROM {Contact._meta.db_table} "  # noqa: S608 - model's table
        "WHERE account_id = %s AND opted_out AND phone_number "
    )
    if len(phones) == 1:
        # Most sends have one recipient: a plain value costs the driver less than an array.
        return sql + "= %s", [account_id, phones[0]]
    return sql + "= ANY(%s)", [account_id, phones]


def opted_out_numbers(*, account_id: int) -> QuerySet[Contact, Any]:
    """The account's opted-out numbers, as a subquery to filter recipients by."""
    return Contact.objects.filter(account_id=account_id, opted_out=True).values("phone_number")


def opted_out_phones(*, account: Account, phones: Sequence[str]) -> set[str]:
    """Which of these E.164 numbers belong to a contact of the account that opted out."""
    wanted = set(phones)
    if not wanted:
        return set()
    size = IN_LIST_SIZE
    if len(wanted) <= size:
        # Every send asks this, usually for a handful of numbers: one statement written
        # out by hand costs a fraction of building the ORM query.
        with connection.cursor() as cursor:
            sql, params = opted_out_sql(account_id=account.pk, phones=list(wanted))
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}
    opted_out = Contact.objects.filter(account=account, opted_out=True).order_by()
    # Opt-outs are usually few next to a big send: reading them all (a small partial index)
    # is one cheap query where IN lists would take one per chunk.
    if len(wanted) > size and opted_out.count() <= len(wanted):
        return wanted.intersection(opted_out.values_list("phone_number", flat=True))
    ordered = sorted(wanted)
    found: set[str] = set()
    for start in range(0, len(ordered), size):
        found.update(
            opted_out.filter(phone_number__in=ordered[start : start + size]).values_list(
                "phone_number", flat=True
            )
        )
    return found
