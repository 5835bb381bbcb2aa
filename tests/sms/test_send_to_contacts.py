"""Sending meets the contact book: opt-outs are honoured and segments expand to members."""

from decimal import Decimal

import pytest

from contacts.services import contact_create, contact_opt_out
from sms.models import Recipient
from tests.helpers import assert_envelope

TZ = "+255712345678"


def contact(account, phone, *tags, opted_out=False):
    made = contact_create(account=account, name=f"c{phone[-4:]}", phone_number=phone, tags=tags)
    if opted_out:
        contact_opt_out(contact=made)
    return made


def segment(api, name, criteria):
    body = api.post("contacts/segments/create/", {"name": name, "criteria": criteria})
    return assert_envelope(body, 201)["data"]["id"]


@pytest.mark.django_db
def test_opted_out_numbers_are_dropped_and_listed_as_skipped(api, alice):
    contact(alice, "+255754000111", opted_out=True)
    data = assert_envelope(
        api.post("sms/send/", {"message": "hi", "recipients": [TZ, "0754000111"]}), 200
    )["data"]
    assert data["recipients"] == [TZ]
    assert data["skipped"] == [{"phone": "+255754000111", "reason": "opted_out"}]
    assert data["cost"] == 10.0
    assert list(Recipient.objects.values_list("phone", flat=True)) == [TZ]


@pytest.mark.django_db
def test_when_everyone_opted_out_the_send_is_refused_and_nothing_charged(api, alice):
    contact(alice, TZ, opted_out=True)
    body = assert_envelope(
        api.post("sms/send/", {"message": "hi", "recipients": [TZ]}), 400, "OPTED_OUT"
    )
    assert body["details"]["skipped"] == [{"phone": TZ, "reason": "opted_out"}]
    alice.refresh_from_db()
    assert alice.balance == Decimal("5000.00")


@pytest.mark.django_db
def test_an_opted_out_number_written_in_other_digits_is_still_opted_out(api, alice):
    contact(alice, TZ, opted_out=True)
    spelled = "+2557\u0661\u0662345678"  # two Arabic-Indic digits
    assert_envelope(
        api.post("sms/send/", {"message": "hi", "recipients": [spelled]}), 400, "OPTED_OUT"
    )
    assert not Recipient.objects.exists()
    body = api.post("contacts/create/", {"name": "Again", "phone_number": spelled})
    assert_envelope(body, 409, "CONFLICT")


@pytest.mark.django_db
def test_opt_out_in_another_account_does_not_apply(api, alice, bob):
    contact(bob, TZ, opted_out=True)
    assert_envelope(api.post("sms/send/", {"message": "hi", "recipients": [TZ]}), 200)


@pytest.mark.django_db
def test_send_to_segments_unions_members_and_numbers_minus_opt_outs(api, alice):
    contact(alice, "+255754000001", "vip")
    contact(alice, "+255754000002", "vip", "lagos")
    contact(alice, "+255754000003", "lagos")
    contact(alice, "+255754000004", "vip", opted_out=True)
    vip = segment(api, "VIP", {"tags": ["vip"]})
    lagos = segment(api, "Lagos", {"tags": ["lagos"]})
    data = assert_envelope(
        api.post(
            "sms/send/",
            {"message": "Ofa!", "segment_ids": [vip, lagos], "recipients": ["+255754000001", TZ]},
        ),
        200,
    )["data"]
    assert sorted(data["recipients"]) == sorted(
        [TZ, "+255754000001", "+255754000002", "+255754000003"]
    )
    assert data["from_segments"] == {vip: 1, lagos: 1}
    assert data["skipped"] == [{"phone": "+255754000004", "reason": "opted_out"}]
    assert data["cost"] == 40.0


@pytest.mark.django_db
def test_segment_ids_alone_are_enough(api, alice):
    contact(alice, "+255754000001", "vip")
    vip = segment(api, "VIP", {"tags": ["vip"]})
    data = assert_envelope(api.post("sms/send/", {"message": "hi", "segment_ids": [vip]}), 200)[
        "data"
    ]
    assert data["recipients"] == ["+255754000001"]


@pytest.mark.django_db
def test_unknown_or_foreign_segment_is_404(api, bob, api_for):
    foreign = segment(api_for(bob), "Theirs", {"tags": ["x"]})
    for ids in (["seg_01ARZ3NDEKTSV4RRFFQ69G5FAV"], [foreign]):
        assert_envelope(
            api.post("sms/send/", {"message": "hi", "segment_ids": ids}), 404, "NOT_FOUND"
        )


@pytest.mark.django_db
def test_empty_segment_with_no_numbers_is_a_validation_error(api):
    empty = segment(api, "Nobody", {"tags": ["ghost"]})
    assert_envelope(
        api.post("sms/send/", {"message": "hi", "segment_ids": [empty]}), 400, "VALIDATION_ERROR"
    )


@pytest.mark.django_db
def test_segment_sends_have_their_own_total_limit(api, alice, settings):
    settings.MIFUMO_MAX_RECIPIENTS = 1
    settings.MIFUMO_MAX_SEGMENT_RECIPIENTS = 2
    for i in range(3):
        contact(alice, f"+25575400000{i}", "vip")
    vip = segment(api, "VIP", {"tags": ["vip"]})
    body = assert_envelope(
        api.post("sms/send/", {"message": "hi", "segment_ids": [vip]}), 400, "TOO_MANY_RECIPIENTS"
    )
    assert body["details"] == {"count": 3, "limit": 2}
    settings.MIFUMO_MAX_SEGMENT_RECIPIENTS = 3
    assert_envelope(api.post("sms/send/", {"message": "hi", "segment_ids": [vip]}), 200)
