"""The prepared single-row insert the send path uses for its message (its values as the fields
give them), the reads of model rows by SQL written once (``read_models``, ``from_row``), and
times formatted by PostgreSQL as the API writes them (``iso_sql``)."""

from datetime import UTC, datetime, timedelta
from datetime import timezone as tz
from decimal import Decimal

import pytest
from django.db import connection, models
from django.db.models.signals import post_init
from django.test.utils import isolate_apps
from django.utils import timezone
from django.utils.translation import gettext_lazy
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int2

from contacts.models import Contact
from contacts.services import contact_create
from integration.models import Account, ApiKey
from integration.services import debit_entry
from mifumo.api.fields import iso
from mifumo.db import (
    _row_values,
    column,
    columns,
    from_row,
    insert_row,
    iso_sql,
    read_models,
    table,
)
from mifumo.ids import new_id
from sms.models import Message, Recipient, SenderId
from tests.helpers import same_as_the_orm


def _message(account, **fields):
    return Message(
        **{
            "account": account,
            "text": "Habari",
            "sender_id": "MIFUMO",
            "encoding": "GSM-7",
            "segments": 1,
            "recipient_count": 1,
            "cost": Decimal("10.00"),
            "currency": "TZS",
            "created_at": timezone.now(),
            **fields,
        }
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
        same_as_the_orm(row, Message)


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
    same_as_the_orm(read, Contact)


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


# --- the row's values, and instances from rows ---------------------------------------------


def _asked(instance):
    """What every field of ``instance`` gives ``save()``, asked one by one."""
    return [
        field.get_db_prep_save(field.pre_save(instance, True), connection)
        for field in type(instance)._meta.concrete_fields
    ]


def _plain(values):
    """Values compared by what they hold: the driver's JSON wrapper by its object."""
    return [(type(v), v.obj) if isinstance(v, Jsonb) else (type(v), v) for v in values]


def _ledger_entry(account):
    return debit_entry(account_id=account.pk, amount=Decimal("30.00"), reference="msg_1", note="x")


def _recipient(account):
    """A foreign key to a text primary key (its message), an empty text, a decimal."""
    message = _message(account, id=new_id("msg"))
    return Recipient(
        message=message,
        account=account,
        created_at=timezone.now(),
        phone="+255712345678",
        status=Recipient.Status.QUEUED,
        carrier="",
        cost=Decimal("10.00"),
    )


def _contact(account):
    return Contact(
        id=new_id("con"),
        account=account,
        name="Asha",
        phone_number="+255712345678",
        custom_fields={"city": "Arusha"},
        opted_out_at=timezone.now(),
        created_at=timezone.now(),
        updated_at=timezone.now(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make",
    [
        lambda account: _message(account, id=new_id("msg")),
        lambda account: _message(
            account,
            id=new_id("msg"),
            source=Message.Source.DASHBOARD,  # a str subclass
            schedule_time=datetime(2026, 12, 6, 13, 5, tzinfo=EAT),
            webhook_url="https://example.com/hook",
            is_test=True,
        ),
        _ledger_entry,
        _contact,
        _recipient,
    ],
    ids=["message", "message-every-field", "ledger-entry", "contact", "recipient"],
)
def test_the_row_values_are_what_the_fields_give(alice, make):
    instance = make(alice)
    if instance.pk is None:
        instance.pk = 1_000_000
    assert _plain(_row_values(instance)) == _plain(_asked(instance))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("segments", True, Int2(1)),  # the integer fields give the driver's type of their size
        ("account_id", True, 1),  # a bool for an automatic key: the key's field makes it an int
        ("text", gettext_lazy("Habari"), "Habari"),  # a lazy string: the field casts it
        ("cost", 10, Decimal("10")),  # not a type passed on as it is
    ],
)
def test_a_value_the_field_changes_is_left_to_the_field(alice, field, value, stored):
    message = _message(alice, id=new_id("msg"), **{field: value})
    values = _row_values(message)
    names = [f.attname for f in Message._meta.concrete_fields]
    got = values[names.index(field)]
    assert got == stored and type(got) is type(stored)
    assert _plain(values) == _plain(_asked(message))


@pytest.mark.django_db
def test_a_naive_time_is_made_aware_with_the_fields_warning(alice):
    naive = datetime(2026, 12, 6, 13, 5)
    message = _message(alice, id=new_id("msg"), created_at=naive)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        values = _row_values(message)
    created = values[[f.attname for f in Message._meta.concrete_fields].index("created_at")]
    assert created.tzinfo is not None


@pytest.mark.django_db
def test_a_field_that_sets_its_own_value_sets_it(alice):
    sender = SenderId(account=alice, value="ACME")
    assert sender.created_at is None
    sender.pk = 1_000_000
    values = _row_values(sender)
    created = values[[f.attname for f in SenderId._meta.concrete_fields].index("created_at")]
    assert created is not None and created == sender.created_at  # auto_now_add did its work


@pytest.mark.django_db
def test_a_deferred_field_is_loaded_by_the_field(alice):
    message = _message(alice, id=new_id("msg"), webhook_url="https://example.com/hook")
    insert_row(message)
    deferred = Message.objects.only("id").get(pk=message.pk)
    assert "webhook_url" in deferred.get_deferred_fields()
    assert _row_values(deferred) == _row_values(message)
    assert not deferred.get_deferred_fields()


def _state(instance):
    return (
        type(instance),
        {k: v for k, v in vars(instance).items() if k != "_state"},
        instance._state.adding,
        instance._state.db,
        instance.get_deferred_fields(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Message, Account, ApiKey, Contact])
@pytest.mark.parametrize("every_field", [True, False], ids=["full", "some-deferred"])
def test_an_instance_from_a_row_is_what_from_db_makes(alice, make_key, model, every_field):
    make_key(alice)
    insert_row(_message(alice, id=new_id("msg"), schedule_time=timezone.now()))
    _contact(alice).save()
    stored = model.objects.filter(account=alice) if model is not Account else Account.objects
    source = stored.order_by("pk").first()
    fields = model._meta.concrete_fields if every_field else model._meta.concrete_fields[::2]
    names = [f.attname for f in fields]
    values = [getattr(source, name) for name in names]
    made = from_row(model, names, values)
    assert _state(made) == _state(model.from_db(connection.alias, names, values))
    assert made == source


@pytest.mark.django_db
def test_an_instance_someone_watches_being_built_is_built_by_django(alice):
    seen = []

    def watch(sender, instance, **kwargs):
        seen.append(instance)

    names = [f.attname for f in Account._meta.concrete_fields]
    values = [getattr(alice, name) for name in names]
    post_init.connect(watch, sender=Account)
    try:
        made = from_row(Account, names, values)
    finally:
        post_init.disconnect(watch, sender=Account)
    assert seen == [made]
    assert _state(made) == _state(Account.from_db(connection.alias, names, values))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "names",
    [
        ["id", "id"],  # a name twice
        ["id", "account"],  # the relation, not its column's attribute
        ["id", "nothing"],
    ],
)
def test_names_that_are_not_plain_fields_go_through_from_db(alice, names):
    values = ["msg_x", alice.pk]
    made = from_row(Message, names, values)
    assert _state(made) == _state(Message.from_db(connection.alias, names, values))


@isolate_apps("sms")
def test_a_field_with_a_descriptor_of_its_own_goes_through_from_db():
    class Attachment(models.Model):
        file = models.FileField()

        class Meta:
            app_label = "sms"

        def __str__(self) -> str:
            return self.file.name

    names = ["id", "file"]
    made = from_row(Attachment, names, [1, "a.txt"])
    assert _state(made) == _state(Attachment.from_db(connection.alias, names, [1, "a.txt"]))
    assert made.file.name == "a.txt"
