"""The indexes Django makes on its own for ids (a pattern twin for ``LIKE``, one on a column
that a composite index starts with) are gone from the tables written per message, event,
delivery, inbound message and contact; each lookup still finds an index, and the operation
that retired them runs both ways."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from contacts.models import Contact, OptOutChange
from inbox.models import InboundMessage
from mifumo.migration_ops import RetireFieldIndexes
from sms.models import SubmitAttempt
from tests.webhooks.conftest import make_message
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Event

EXPECTED = {
    "webhooks_event": {
        "webhooks_event_pkey": "(id)",
        "webhook_event_recent": "(account_id, created_at DESC)",
        "webhook_event_message": "(message_id)",
        "webhooks_event_api_key_id_a77a79b1": "(api_key_id)",
    },
    "webhooks_delivery": {
        "webhooks_delivery_pkey": "(id)",
        "webhook_delivery_due": "(status, next_attempt_at)",
        "webhook_delivery_endpoint": "(endpoint_id, created_at DESC)",
        "webhook_delivery_account": "(account_id, created_at DESC)",
        "webhook_delivery_event": "(event_id)",
    },
    "webhooks_deliveryattempt": {
        "webhooks_deliveryattempt_pkey": "(id)",
        "webhook_attempt_delivery": "(delivery_id)",
    },
    "sms_submitattempt": {
        "sms_submitattempt_pkey": "(id)",
        "submit_attempt_carrier": "(carrier, created_at)",
        "submit_attempt_message": "(message_id)",
    },
    "inbox_inboundmessage": {
        "inbox_inboundmessage_pkey": "(id)",
        "inbound_account_recent": "(account_id, received_at DESC, id DESC)",
        "inbound_conversation": "(account_id, sender, received_at DESC)",
        "inbound_carrier_id_unique": (
            "(carrier, carrier_message_id) WHERE (NOT ((carrier_message_id)::text = ''::text))"
        ),
        "inbound_contact": "(contact_id)",
        "inbound_in_reply_to": "(in_reply_to_id)",
        "inbox_inboundmessage_number_id_c322b74f": "(number_id)",
    },
    "contacts_optoutchange": {
        "contacts_optoutchange_pkey": "(id)",
        "opt_out_change_recent": "(account_id, created_at DESC)",
        "opt_out_change_contact": "(contact_id)",
    },
}
# Of the contacts' table, its btree indexes (the search's GIN indexes are another matter).
CONTACT_BTREES = {
    "contacts_contact_pkey": "(id)",
    "contact_account_recent": "(account_id, created_at DESC, id DESC)",
    "contact_phone_unique": "(account_id, phone_number)",
    "contact_opted_out": "(account_id, phone_number) WHERE opted_out",
}


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return {
            name: sql.split(" USING btree ")[1] if " USING btree " in sql else sql
            for name, sql in cursor.fetchall()
        }


@pytest.mark.parametrize("table", sorted(EXPECTED))
@pytest.mark.django_db
def test_each_table_has_these_indexes_and_no_more(table: str) -> None:
    assert indexes(table) == EXPECTED[table]


@pytest.mark.django_db
def test_the_contacts_btree_indexes_are_these_and_no_more() -> None:
    found = {name: how for name, how in indexes("contacts_contact").items() if "USING" not in how}
    assert found == CONTACT_BTREES


def plan(queryset: Any) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_every_lookup_by_a_key_still_takes_an_index(alice: Any) -> None:
    message = make_message(alice)
    endpoint = Endpoint.objects.create(account=alice, url="https://example.com/hook")
    event = Event.objects.create(account=alice, type="message.sent", message=message, body="{}")
    delivery = Delivery.objects.create(
        event=event, account=alice, endpoint=endpoint, url=endpoint.url
    )
    contact = Contact.objects.create(account=alice, name="Asha", phone_number="+255754000001")
    OptOutChange.objects.create(contact=contact, account=alice, opted_out=True, source="api")
    inbound = InboundMessage.objects.create(
        account=alice,
        sender=contact.phone_number,
        destination="15555",
        carrier="simulator",
        contact=contact,
        in_reply_to=message,
    )
    # Each lookup and the indexes that may serve it: where several start with the key, the
    # planner picks by its estimates.
    inbound_account = ("inbound_account_recent", "inbound_conversation")
    contact_account = ("contact_account_recent", "contact_phone_unique", "contact_opted_out")
    lookups: list[tuple[Any, tuple[str, ...]]] = [
        (Event.objects.filter(message=message), ("webhook_event_message",)),
        (Event.objects.filter(account=alice), ("webhook_event_recent",)),
        (Delivery.objects.filter(event=event), ("webhook_delivery_event",)),
        (Delivery.objects.filter(endpoint=endpoint), ("webhook_delivery_endpoint",)),
        (Delivery.objects.filter(account=alice), ("webhook_delivery_account",)),
        (DeliveryAttempt.objects.filter(delivery=delivery), ("webhook_attempt_delivery",)),
        (SubmitAttempt.objects.filter(message=message), ("submit_attempt_message",)),
        (InboundMessage.objects.filter(contact=contact), ("inbound_contact",)),
        (InboundMessage.objects.filter(in_reply_to=message), ("inbound_in_reply_to",)),
        (InboundMessage.objects.filter(account=alice), inbound_account),
        (OptOutChange.objects.filter(contact=contact), ("opt_out_change_contact",)),
        (OptOutChange.objects.filter(account=alice), ("opt_out_change_recent",)),
        (Contact.objects.filter(account=alice), contact_account),
        # An id is looked up whole, by the primary key.
        (InboundMessage.objects.filter(pk=inbound.pk), ("inbox_inboundmessage_pkey",)),
        (Contact.objects.filter(pk=contact.pk), ("contacts_contact_pkey",)),
        (Event.objects.filter(pk=event.pk), ("webhooks_event_pkey",)),
        (Delivery.objects.filter(pk=delivery.pk), ("webhooks_delivery_pkey",)),
    ]
    for queryset, served_by in lookups:
        found = plan(queryset)
        assert "Seq Scan" not in found and any(name in found for name in served_by), found


def state_at(app: str, migration: str) -> Any:
    return MigrationExecutor(connection).loader.project_state((app, migration), at_end=True)


@pytest.mark.django_db
def test_the_operation_puts_back_what_it_took_and_takes_it_again() -> None:
    """Backwards then forwards, inside the test's transaction (PostgreSQL's DDL is
    transactional): Django's own plain and pattern indexes come back under Django's names, as
    a database made before the change has them, then go again."""
    after = state_at("webhooks", "0005_fewer_indexes")
    before = state_at("webhooks", "0004_inbound_events")
    operations = [
        RetireFieldIndexes("event", "id", plain=False),
        RetireFieldIndexes("event", "account"),
        RetireFieldIndexes("event", "message", keep_as="webhook_event_message"),
    ]
    with connection.schema_editor(atomic=False) as editor:
        for operation in reversed(operations):
            operation.database_backwards("webhooks", editor, after, before)
    assert indexes("webhooks_event") == {
        "webhooks_event_pkey": "(id)",
        "webhook_event_recent": "(account_id, created_at DESC)",
        "webhooks_event_id_136b0861_like": "(id varchar_pattern_ops)",
        "webhooks_event_account_id_551ec817": "(account_id)",
        "webhooks_event_message_id_f835fdae": "(message_id)",
        "webhooks_event_message_id_f835fdae_like": "(message_id varchar_pattern_ops)",
        "webhooks_event_api_key_id_a77a79b1": "(api_key_id)",
    }
    with connection.schema_editor(atomic=False) as editor:
        for operation in operations:
            operation.database_forwards("webhooks", editor, before, after)
    assert indexes("webhooks_event") == EXPECTED["webhooks_event"]


def test_the_operation_describes_itself_and_rebuilds_from_its_parts() -> None:
    kept = RetireFieldIndexes("event", "message", keep_as="webhook_event_message")
    assert kept.describe() == (
        "Drop the pattern index Django made for event.message, "
        "keeping the plain one as webhook_event_message"
    )
    assert RetireFieldIndexes("event", "account").describe() == (
        "Drop the indexes Django made for event.account"
    )
    name, args, kwargs = kept.deconstruct()
    assert name == "RetireFieldIndexes"
    rebuilt = RetireFieldIndexes(*args, **kwargs)
    assert (rebuilt.model_name, rebuilt.field_name, rebuilt.plain, rebuilt.keep_as) == (
        "event",
        "message",
        True,
        "webhook_event_message",
    )
