"""A message's status in one statement (``sms.selectors.message_status_read``) against what
the ORM and the separate selectors read, and the status route's order of errors."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from integration.models import LedgerEntry
from mifumo.errors import DomainError, ErrorCode
from sms.models import Message, Recipient
from sms.selectors import message_refunds, message_status_counts, message_status_read
from sms.services import message_send
from tests.helpers import Api, assert_envelope, same_as_the_orm

pytestmark = pytest.mark.django_db
S = Recipient.Status


def history(account) -> Message:
    """A message of 12 recipients in four states, two delivered at known times, with a
    refund."""
    phones = [f"+2557120001{i:02d}" for i in range(12)]
    message = message_send(account=account, text="Habari", recipients=phones).message
    rows = Recipient.objects.filter(message=message).order_by("id")
    ids = list(rows.values_list("id", flat=True))
    now = timezone.now()
    Recipient.objects.filter(id__in=ids[:2]).update(status=S.DELIVERED, delivered_at=now)
    Recipient.objects.filter(id=ids[1]).update(delivered_at=now + timedelta(minutes=5))
    Recipient.objects.filter(id__in=ids[2:5]).update(
        status=S.FAILED, error_code="UNDELIVERABLE", delivered_at=now + timedelta(hours=1)
    )
    Recipient.objects.filter(id__in=ids[5:7]).update(status=S.SENT, sent_at=now)
    LedgerEntry.objects.create(
        account=account,
        kind=LedgerEntry.Kind.REFUND,
        amount=Decimal("20.00"),
        balance_after=Decimal("0.00"),
        reference=message.id,
    )
    return message


@pytest.mark.parametrize(
    ("offset", "limit"), [(0, 100), (0, 5), (5, 5), (10, 5), (12, 5), (40, 5), (0, 0)]
)
def test_the_one_statement_reads_what_the_orm_and_the_separate_selectors_read(alice, offset, limit):
    message = history(alice)
    message_send(account=alice, text="another", recipients=["+255754000111"])
    read = message_status_read(account=alice, message_id=message.id, offset=offset, limit=limit)
    same_as_the_orm(read.message, Message)
    assert read.refunded == message_refunds(account=alice, message_ids=[message.id])[message.id]
    assert read.counts == message_status_counts(message_ids=[message.id])[message.id]
    assert read.counts == {"delivered": 2, "failed": 3, "sent": 2, "queued": 5}
    latest = Recipient.objects.filter(message=message, status=S.DELIVERED).order_by("-delivered_at")
    assert read.delivered == latest[0].delivered_at
    page = list(Recipient.objects.filter(message=message).order_by("id")[offset : offset + limit])
    assert [r.pk for r in read.recipients] == [r.pk for r in page]
    for recipient in read.recipients:
        same_as_the_orm(recipient, Recipient)


def test_a_message_without_refund_or_delivery_reads_zero_and_none(alice):
    message = message_send(account=alice, text="hi", recipients=["+255712345678"]).message
    read = message_status_read(account=alice, message_id=message.id, offset=0, limit=100)
    assert read.refunded == Decimal("0.00") and read.delivered is None
    assert read.counts == {"queued": 1} and len(read.recipients) == 1


def test_another_accounts_message_or_a_live_one_for_a_test_key_is_not_found(alice, bob):
    message = message_send(account=bob, text="hi", recipients=["+255712345678"]).message
    for account, test_only in ((alice, False), (bob, True)):
        with pytest.raises(DomainError) as missing:
            message_status_read(
                account=account, message_id=message.id, offset=0, limit=100, test_only=test_only
            )
        assert missing.value.code == ErrorCode.NOT_FOUND
    found = message_status_read(account=bob, message_id=message.id, offset=0, limit=100)
    assert found.message.id == message.id


def test_a_test_keys_message_is_read_by_it(alice, make_key):
    test_api = Api(make_key(alice, test=True, name="test key").raw)
    sent = assert_envelope(
        test_api.post("sms/send/", {"message": "t", "recipients": ["+255712345678"]}), 200
    )["data"]
    data = assert_envelope(test_api.get(f"sms/status/{sent['message_id']}/"), 200)["data"]
    assert data["message_id"] == sent["message_id"] and data["counts"] == {"queued": 1}
    read = message_status_read(
        account=alice, message_id=sent["message_id"], offset=0, limit=1, test_only=True
    )
    assert read.message.is_test is True


def test_an_unknown_message_is_a_404_before_bad_page_parameters_are_a_400(api, alice):
    message = message_send(account=alice, text="hi", recipients=["+255712345678"]).message
    unknown = "msg_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    for params in ({"per_page": 0}, {"page": "x"}, {"per_page": 1001}):
        assert_envelope(api.get(f"sms/status/{unknown}/", params), 404, "NOT_FOUND")
        assert_envelope(api.get(f"sms/status/{message.id}/", params), 400, "VALIDATION_ERROR")


def test_a_page_past_the_last_has_no_rows_and_the_counts_of_them_all(api, alice):
    phones = [f"+2557120000{i:02d}" for i in range(25)]
    message = message_send(account=alice, text="hi", recipients=phones).message
    data = api.get(f"sms/status/{message.id}/", {"page": 4, "per_page": 10}).json()["data"]
    assert data["recipients"] == []
    assert data["pagination"] == {"page": 4, "per_page": 10, "total": 25, "pages": 3}
    assert data["counts"] == {"queued": 25} and data["status"] == "queued"


def test_the_message_detail_reads_its_counts_and_refund_in_the_same_statement(api, alice):
    message = history(alice)
    data = assert_envelope(api.get(f"sms/messages/{message.id}/"), 200)["data"]
    assert data["counts"] == {"delivered": 2, "failed": 3, "sent": 2, "queued": 5}
    assert data["refunded"] == 20.0
