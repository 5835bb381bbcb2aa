"""The prepared single-row insert the send path uses for its message."""

from decimal import Decimal

import pytest
from django.utils import timezone

from mifumo.db import insert_row
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
