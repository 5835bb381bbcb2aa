"""Writes to contacts. Phone numbers are stored as E.164 and unique per account; the
database constraint, not a prior read, decides between two concurrent creates."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contacts.csvio import ImportRow, RowError, csv_decode, csv_parse
from contacts.custom_fields import CustomFieldError, merge_custom_fields
from contacts.models import Contact, OptOutChange, OptOutSource
from contacts.selectors import IN_LIST_SIZE
from integration.audit import Action, AuditContext
from integration.models import Account
from mifumo.db import column, insert_from_arrays, table, update_by_ids
from mifumo.errors import DomainError, ErrorCode
from sms.phones import InvalidPhone, normalize_phone
from webhooks.models import EventType
from webhooks.outbox import AccountEvent, event_record_accounts

UPDATABLE_FIELDS = ("name", "phone_number", "email", "tags", "custom_fields", "is_active")
# Enough to tell what is wrong with a file without sending back a second copy of it.
MAX_REPORTED_ERRORS = 1_000
IMPORT_BATCH_SIZE = 2_000
_CONCURRENT_RETRIES = 3

OnDuplicate = Literal["skip", "update"]


def _phone(raw: object) -> str:
    try:
        return normalize_phone(raw)
    except InvalidPhone as exc:
        raise DomainError(
            ErrorCode.INVALID_PHONE,
            f"Invalid phone number: '{exc.raw}' {exc.reason}",
            {"invalid": [{"phone": exc.raw, "reason": exc.reason}]},
        ) from None


def _conflict(*, account: Account, phone: str) -> DomainError | None:
    contacts = Contact.objects.filter(account=account, phone_number=phone)
    existing = contacts.values_list("pk", flat=True).first()
    if existing is None:
        return None
    return DomainError(
        ErrorCode.CONFLICT,
        f"A contact with phone number {phone} already exists",
        {"contact_id": existing, "phone_number": phone},
    )


def _save(contact: Contact, **kwargs: Any) -> None:
    """Save in a savepoint, turning a duplicate phone number into 409 CONFLICT."""
    try:
        with transaction.atomic():
            contact.save(**kwargs)
    except IntegrityError:
        conflict = _conflict(account=contact.account, phone=contact.phone_number)
        if conflict is None:
            raise
        raise conflict from None


def _record(audit: AuditContext | None, action: str, contact: Contact, **details: object) -> None:
    if audit is not None:
        audit.record(
            account=contact.account_id,
            action=action,
            target=contact.phone_number,
            details=details,
        )


@transaction.atomic
def contact_create(
    *,
    account: Account,
    name: str,
    phone_number: str,
    email: str = "",
    tags: Sequence[str] = (),
    custom_fields: Mapping[str, str] | None = None,
    is_active: bool = True,
    audit: AuditContext | None = None,
) -> Contact:
    """Expects validated fields (ContactIn); normalises the phone number."""
    contact = Contact(
        account=account,
        name=name,
        phone_number=_phone(phone_number),
        email=email,
        tags=list(tags),
        custom_fields=dict(custom_fields or {}),
        is_active=is_active,
    )
    _save(contact, force_insert=True)
    _record(audit, Action.CONTACT_CREATED, contact, id=contact.pk)
    return contact


@transaction.atomic
def contact_update(
    *, contact: Contact, data: Mapping[str, Any], audit: AuditContext | None = None
) -> Contact:
    """Change the given fields (a subset of UPDATABLE_FIELDS, validated by ContactIn). The
    log entry's details are the context's: what the person asking changed."""
    changes = {name: data[name] for name in UPDATABLE_FIELDS if name in data}
    if not changes:
        _record(audit, Action.CONTACT_UPDATED, contact)
        return contact
    if "phone_number" in changes:
        changes["phone_number"] = _phone(changes["phone_number"])
        if contact.opted_out and changes["phone_number"] != contact.phone_number:
            # The opt-out is the phone's: moved with the contact, the phone that asked would
            # be messaged again and the new one silenced.
            raise DomainError(
                ErrorCode.CONFLICT,
                "This contact's phone opted out: its number cannot change. Add the new number "
                "as a contact of its own.",
                {"phone_number": ["the contact's phone opted out"]},
            )
    if "custom_fields" in changes:
        try:
            changes["custom_fields"] = merge_custom_fields(
                contact.custom_fields or {}, changes["custom_fields"]
            )
        except CustomFieldError as exc:
            raise DomainError(
                ErrorCode.VALIDATION_ERROR,
                f"custom_fields: {exc}",
                {"custom_fields": [str(exc)]},
            ) from None
    for name, value in changes.items():
        setattr(contact, name, list(value) if name == "tags" else value)
    contact.updated_at = timezone.now()
    _save(contact, update_fields=[*changes, "updated_at"])
    _record(audit, Action.CONTACT_UPDATED, contact)
    return contact


@transaction.atomic
def contact_delete(*, contact: Contact, audit: AuditContext | None = None) -> None:
    """Delete the contact; CONFLICT when its phone opted out (the contact is what keeps that
    phone from being messaged again)."""
    if contact.opted_out:
        raise DomainError(
            ErrorCode.CONFLICT,
            "This contact's phone opted out: the contact is kept so that no message reaches it "
            "again. Opt it back in first if the phone asked to.",
            {"id": contact.pk},
        )
    _record(audit, Action.CONTACT_DELETED, contact, name=contact.name)
    contact.delete()


def _opted_out_by_import(contact: Contact) -> bool:
    """Whether the contact's latest opt-out in its history came from an import."""
    latest = (
        OptOutChange.objects.filter(contact=contact, opted_out=True)
        .order_by("-created_at", "-id")
        .values_list("source", flat=True)
        .first()
    )
    return latest == OptOutSource.IMPORT


def _record_opt_change(
    contact: Contact,
    *,
    opted_out: bool,
    source: str,
    inbound_id: str,
    is_test: bool,
    detail: str,
    announce: bool = True,
) -> None:
    """One row of the contact's history and, when ``announce``, its webhook event."""
    OptOutChange.objects.create(
        contact=contact,
        account_id=contact.account_id,
        opted_out=opted_out,
        source=source,
        inbound_id=inbound_id,
        detail=detail[:255],
    )
    if not announce:
        return
    event_record_accounts(
        events=[
            _opt_event(
                contact.account_id,
                contact.id,
                contact.phone_number,
                opted_out=opted_out,
                source=source,
                inbound_id=inbound_id,
                is_test=is_test,
            )
        ]
    )


def _opt_event(
    account_id: int,
    contact_id: str,
    phone: str,
    *,
    opted_out: bool,
    source: str,
    inbound_id: str = "",
    is_test: bool = False,
) -> AccountEvent:
    """The contact.opted_out or contact.opted_in event of one change."""
    return AccountEvent(
        account_id,
        EventType.OPTED_OUT if opted_out else EventType.OPTED_IN,
        {
            "contact_id": contact_id,
            "phone": phone,
            "source": source,
            "inbound_id": inbound_id or None,
        },
        is_test,
    )


def contact_set_opted_out(
    *,
    contact: Contact,
    opted_out: bool,
    source: str = OptOutSource.API,
    inbound_id: str = "",
    is_test: bool = False,
    detail: str = "",
    audit: AuditContext | None = None,
) -> Contact:
    """Opt the contact out (or back in), recording when and how in its history and telling
    the account's webhooks. Idempotent: a repeat keeps the first opt-out time and tells no
    webhook (the activity log still notes that someone asked); it is kept in the history
    only when it confirms an import's opt-out, so that a later import cannot opt back in a
    phone that opted out itself (an import opts in only what an import opted out)."""
    action = Action.CONTACT_OPTED_OUT if opted_out else Action.CONTACT_OPTED_IN
    if contact.opted_out == opted_out:
        if opted_out and source != OptOutSource.IMPORT and _opted_out_by_import(contact):
            _record_opt_change(
                contact,
                opted_out=True,
                source=source,
                inbound_id=inbound_id,
                is_test=is_test,
                detail=detail,
                announce=False,
            )
        _record(audit, action, contact)
        return contact
    now = timezone.now()
    contact.opted_out, contact.opted_out_at, contact.updated_at = (
        opted_out,
        now if opted_out else None,
        now,
    )
    with transaction.atomic():
        contact.save(update_fields=["opted_out", "opted_out_at", "updated_at"])
        _record_opt_change(
            contact,
            opted_out=opted_out,
            source=source,
            inbound_id=inbound_id,
            is_test=is_test,
            detail=detail,
        )
        _record(audit, action, contact)
    return contact


def contact_opt_out(*, contact: Contact, **how: Any) -> Contact:
    return contact_set_opted_out(contact=contact, opted_out=True, **how)


def contact_opt_in(*, contact: Contact, **how: Any) -> Contact:
    return contact_set_opted_out(contact=contact, opted_out=False, **how)


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    opted_out: int = 0
    opted_in: int = 0
    left_opted_out: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
            "opted_out": self.opted_out,
            "opted_in": self.opted_in,
            "left_opted_out": self.left_opted_out,
            "errors": [e.as_dict() for e in self.errors[:MAX_REPORTED_ERRORS]],
            "errors_truncated": len(self.errors) > MAX_REPORTED_ERRORS,
            "ignored_columns": self.ignored_columns,
        }


def contact_import(
    *,
    account: Account,
    data: bytes,
    on_duplicate: OnDuplicate,
    is_test: bool = False,
    audit: AuditContext | None = None,
    filename: str = "",
) -> ImportResult:
    """Import a CSV (see contacts.csvio). Rows with errors are reported and left out; rows
    whose number is already a contact are skipped or, with on_duplicate="update", overwrite
    the columns the file has. All or nothing: a failure part-way leaves no rows behind.
    ``filename`` names the import in the activity log.

    The opted_out column applies to every row's contact, new, updated or skipped: true opts it
    out (source import). False opts it back in only when an import opted it out; a contact
    that opted out itself (keyword, carrier, API) or was opted out in the dashboard stays
    out, counted in ``left_opted_out``: consent is the customer's, not the file's. The opt-out
    events go to the endpoints of the key's mode (``is_test``)."""
    parsed = csv_parse(csv_decode(data))
    result = ImportResult(
        failed=parsed.failed, errors=parsed.errors, ignored_columns=parsed.ignored_columns
    )
    update_fields = [c for c in parsed.columns if c not in ("phone_number", "opted_out")]
    if parsed.custom_columns:
        update_fields.append("custom_fields")
    size = min(IMPORT_BATCH_SIZE, IN_LIST_SIZE)
    with transaction.atomic():
        for start in range(0, len(parsed.rows), size):
            outcome = _import_batch(
                account=account,
                rows=parsed.rows[start : start + size],
                update_fields=update_fields if on_duplicate == "update" else None,
                is_test=is_test,
            )
            result.created += outcome.created
            result.updated += outcome.updated
            result.skipped += outcome.skipped
            result.failed += len(outcome.errors)
            result.errors.extend(outcome.errors)
            result.opted_out += outcome.opted_out
            result.opted_in += outcome.opted_in
            result.left_opted_out += outcome.left_opted_out
        if audit is not None:
            audit.record(
                account=account,
                action=Action.CONTACTS_IMPORTED,
                target=filename,
                details={
                    "created": result.created,
                    "updated": result.updated,
                    "skipped": result.skipped,
                    "failed": result.failed,
                },
            )
    return result


def _import_batch(
    *,
    account: Account,
    rows: Sequence[ImportRow],
    update_fields: list[str] | None,
    is_test: bool,
) -> ImportResult:
    # A contact created by another request between our read and our insert fails the batch
    # on the unique constraint; reading again makes it a skip. (Updates are upserts.)
    for attempt in range(_CONCURRENT_RETRIES):
        try:
            with transaction.atomic():
                return _write_batch(
                    account=account, rows=rows, update_fields=update_fields, is_test=is_test
                )
        except IntegrityError:
            if attempt == _CONCURRENT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _write_batch(
    *,
    account: Account,
    rows: Sequence[ImportRow],
    update_fields: list[str] | None,
    is_test: bool,
) -> ImportResult:
    """Created, updated, skipped and opt-out counts, and the rows refused: an update whose
    custom fields, merged into the contact's, would pass the limit of keys."""
    existing = dict(
        Contact.objects.filter(
            account=account, phone_number__in=[r.phone_number for r in rows]
        ).values_list("phone_number", "custom_fields")
    )
    refused: list[RowError] = []
    if update_fields is not None and "custom_fields" in update_fields:
        kept = []
        for row in rows:
            current = existing.get(row.phone_number)
            try:
                if current is not None:
                    merge_custom_fields(current or {}, row.custom_fields)
            except CustomFieldError as exc:
                refused.append(RowError(row.row, "custom_fields", str(exc)))
                continue
            kept.append(row)
        rows = kept
    found = sum(r.phone_number in existing for r in rows)
    all_rows = rows
    if update_fields is None:
        rows = [r for r in rows if r.phone_number not in existing]
    now = timezone.now()
    _write(account=account, rows=rows, update_fields=update_fields, now=now)
    if update_fields is None:
        result = ImportResult(created=len(rows), skipped=found, errors=refused)
    else:
        result = ImportResult(created=len(rows) - found, updated=found, errors=refused)
    _apply_opt_outs(account=account, rows=all_rows, now=now, result=result, is_test=is_test)
    return result


def _opt_out_sql() -> str:
    """Opt the account's contacts with these numbers out; returns those it changed."""
    contact = table(Contact)
    opted_out, phone = column(Contact, "opted_out"), column(Contact, "phone_number")
    return (
        f"UPDATE {contact} SET {opted_out} = true, "  # noqa: S608 - names from the models
        f"{column(Contact, 'opted_out_at')} = %s, {column(Contact, 'updated_at')} = %s "
        f"WHERE {column(Contact, 'account')} = %s AND {phone} = ANY(%s) AND NOT {opted_out} "
        f"RETURNING {column(Contact, 'id')}, {phone}"
    )


def _opted_out_sources_sql() -> str:
    """The opted-out contacts among the numbers, with the source of their latest opt-out
    (none for a contact opted out before the history was kept)."""

    def c(name: str) -> str:
        return f"c.{column(Contact, name)}"

    def h(name: str) -> str:
        return f"h.{column(OptOutChange, name)}"

    return (
        f"SELECT {c('id')}, {c('phone_number')}, ("  # noqa: S608 - names from the models
        f"SELECT {h('source')} FROM {table(OptOutChange)} h "
        f"WHERE {h('contact')} = {c('id')} AND {h('opted_out')} "
        f"ORDER BY {h('created_at')} DESC, {h('id')} DESC LIMIT 1) "
        f"FROM {table(Contact)} c "
        f"WHERE {c('account')} = %s AND {c('phone_number')} = ANY(%s) AND {c('opted_out')}"
    )


def _apply_opt_outs(
    *,
    account: Account,
    rows: Sequence[ImportRow],
    now: datetime,
    result: ImportResult,
    is_test: bool,
) -> None:
    """The batch's opted_out column, in a fixed number of queries: the contacts changed, one
    history row each (source import) and one webhook event each."""
    out = [r.phone_number for r in rows if r.opted_out is True]
    back_in = [r.phone_number for r in rows if r.opted_out is False]
    changes: list[tuple[str, str, bool]] = []  # contact id, phone, opted out
    opted_in: list[str] = []
    with connection.cursor() as cursor:
        if out:
            cursor.execute(_opt_out_sql(), [now, now, account.pk, out])
            changes.extend((pk, phone, True) for pk, phone in cursor.fetchall())
        if back_in:
            cursor.execute(_opted_out_sources_sql(), [account.pk, back_in])
            for pk, phone, source in cursor.fetchall():
                if source == OptOutSource.IMPORT:
                    opted_in.append(pk)
                    changes.append((pk, phone, False))
                else:
                    result.left_opted_out += 1
    if opted_in:
        update_by_ids(
            Contact, opted_in, {"opted_out": False, "opted_out_at": None, "updated_at": now}
        )
    if not changes:
        return
    # One history row per change.
    insert_from_arrays(
        OptOutChange,
        {
            "contact": [pk for pk, _, _ in changes],
            "opted_out": [opted_out for _, _, opted_out in changes],
        },
        same={
            "account": account.pk,
            "source": OptOutSource.IMPORT.value,
            "created_at": now,
            "inbound_id": "",
            "detail": "",
        },
    )
    event_record_accounts(
        events=[
            _opt_event(
                account.pk,
                pk,
                phone,
                opted_out=opted_out,
                source=OptOutSource.IMPORT,
                is_test=is_test,
            )
            for pk, phone, opted_out in changes
        ]
    )
    result.opted_out += sum(1 for change in changes if change[2])
    result.opted_in += sum(1 for change in changes if not change[2])


def _write(
    *,
    account: Account,
    rows: Sequence[ImportRow],
    update_fields: list[str] | None,
    now: datetime,
) -> None:
    if not rows:
        return
    if update_fields is not None and "is_active" in update_fields:
        # A row whose is_active cell is empty leaves an existing contact's as it is.
        unsaid = [r for r in rows if r.is_active is None]
        if unsaid:
            said = [r for r in rows if r.is_active is not None]
            _write(account=account, rows=said, update_fields=update_fields, now=now)
            rows, update_fields = unsaid, [f for f in update_fields if f != "is_active"]
    # With update_fields, rows whose number exists update those fields instead (ON CONFLICT
    # DO UPDATE: the contact keeps its id and creation time); an update keeps the custom
    # fields the file does not fill.
    assign: dict[str, str] = {}
    if update_fields is not None:
        for name in [*update_fields, "updated_at"]:
            assign[name] = f"EXCLUDED.{column(Contact, name)}"
        if "custom_fields" in assign:
            custom = column(Contact, "custom_fields")
            assign["custom_fields"] = f"{table(Contact)}.{custom} || EXCLUDED.{custom}"
    new_id = Contact._meta.pk.get_default
    insert_from_arrays(
        Contact,
        {
            "id": [new_id() for _ in rows],
            "name": [r.name for r in rows],
            "phone_number": [r.phone_number for r in rows],
            "email": [r.email for r in rows],
            "tags": [json.dumps(r.tags) for r in rows],
            "custom_fields": [json.dumps(r.custom_fields) for r in rows],
            "is_active": [r.is_active is not False for r in rows],
        },
        same={"account": account.pk, "opted_out": False, "created_at": now, "updated_at": now},
        conflict=("account", "phone_number") if update_fields is not None else (),
        assign=assign,
    )
