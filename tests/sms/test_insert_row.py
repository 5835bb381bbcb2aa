"""The prepared single-row insert the send path uses for its message, the reads of model
rows by SQL written once (``read_models``), and times formatted by PostgreSQL as the API
writes them (``iso_sql``)."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as tz
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_create
from mifumo.api.fields import iso
from mifumo.db import column, columns, insert_row, iso_sql, read_models, table
from mifumo.ids import new_id
from sms.models import Message


def _message(account, **fields):
    return Message(
        account=account,
        text="Habari",
        sender_id="MIFUMO",
        encoding="GSM-7",
        segments=1,
        recipient_count=1,
        cost=Decimal("10.00"),
        currency="TZS",
        created_at=timezone.now(),
        **fields,
    )


@pytest.mark.django_db
def test_the_row_reads_back_as_save_would_have_written_it(alice):
    message = _message(alice, id=new_id("msg"), webhook_url="https://example.com/hook")
    insert_row(message)
    stored = Message.objects.get(pk=message.pk)
    for field in Message._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(message, field.attname), field.name
    assert not message._state.adding


@pytest.mark.django_db
def test_a_row_without_its_primary_key_is_refused(alice):
    with pytest.raises(ValueError, match="primary key"):
        insert_row(_message(alice, id=None))
    assert not Message.objects.exists()


def _same_as_the_orm(read, model):
    stored = model.objects.get(pk=read.pk)
    for field in model._meta.concrete_fields:
        value = getattr(read, field.attname)
        assert value == getattr(stored, field.attname), field.name
        assert type(value) is type(getattr(stored, field.attname)), field.name
    assert not read._state.adding and read._state.db == stored._state.db


@pytest.mark.django_db
def test_read_models_gives_what_the_orm_reads_with_the_extra_columns_beside(alice):
    message = _message(alice, id=new_id("msg"), schedule_time=timezone.now())
    insert_row(message)
    other = _message(alice, id=new_id("msg"), webhook_url="https://example.com/hook")
    insert_row(other)
    rows = read_models(
        Message,
        f"SELECT {columns(Message, 'm')}, 41 + 1, 'x' FROM {table(Message)} m"  # noqa: S608
        f" WHERE m.{column(Message, 'account')} = %s ORDER BY m.{column(Message, 'id')}",
        [alice.pk],
    )
    assert [(row.pk, extra) for row, extra in rows] == sorted(
        [(message.pk, (42, "x")), (other.pk, (42, "x"))]
    )
    for row, _ in rows:
        _same_as_the_orm(row, Message)


@pytest.mark.django_db
def test_read_models_converts_json_fields_as_the_orm_does(alice):
    contact = contact_create(
        account=alice,
        name="Asha",
        phone_number="+255712345678",
        tags=["vip", "arusha"],
        custom_fields={"city": "Arusha", "plan": "gold ✓"},
    )
    ((read, extra),) = read_models(
        Contact,
        f"SELECT {columns(Contact)} FROM {table(Contact)} WHERE {column(Contact, 'id')} = %s",  # noqa: S608
        [contact.pk],
    )
    assert extra == ()
    assert read.tags == ["vip", "arusha"]
    assert read.custom_fields == {"city": "Arusha", "plan": "gold ✓"}
    _same_as_the_orm(read, Contact)


@pytest.mark.django_db
def test_read_models_of_nothing_is_empty(alice):
    sql = f"SELECT {columns(Message)} FROM {table(Message)} WHERE false"  # noqa: S608
    assert read_models(Message, sql, []) == []


EAT = tz(timedelta(hours=3))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 6, 13, 5, 9, tzinfo=UTC),
        datetime(2026, 12, 6, 13, 5, 9, 999_999, tzinfo=UTC),  # cut to the second, not rounded
        datetime(2026, 1, 1, 1, 0, 0, 500_000, tzinfo=EAT),  # the day and year before in UTC
        datetime(2028, 2, 29, 23, 59, 59, 1, tzinfo=UTC),
        datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC),
        None,
    ],
)
def test_iso_sql_writes_a_time_as_the_api_does(moment):
    with connection.cursor() as cursor:
        # Whatever the session's time zone.
        cursor.execute("SET LOCAL TIME ZONE 'Africa/Dar_es_Salaam'")
        cursor.execute(f"SELECT {iso_sql('%s::timestamptz')}", [moment])
        assert cursor.fetchone() == (iso(moment),)
