from datetime import UTC, datetime, timedelta

import pytest

from mifumo.errors import DomainError, ErrorCode
from segments.models import Segment
from segments.selectors import segment_contact_count, segment_member_phones
from tests.contacts.factories import make_contact, phone

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def segments(alice):
    for n in range(6):
        make_contact(
            alice, n, tags=["vip"] if n % 2 else ["lead"], created_at=T0 + timedelta(hours=n)
        )
    return {
        "vip": Segment.objects.create(account=alice, name="VIP", criteria={"tags": ["vip"]}),
        "lead": Segment.objects.create(account=alice, name="Lead", criteria={"tags": ["lead"]}),
        "none": Segment.objects.create(account=alice, name="None", criteria={"tags": ["x"]}),
    }


def test_member_phones_are_e164_per_segment_oldest_first(alice, segments):
    ids = [segments["vip"].id, segments["lead"].id, segments["none"].id]
    assert segment_member_phones(account=alice, segment_ids=ids) == {
        segments["vip"].id: [phone(1), phone(3), phone(5)],
        segments["lead"].id: [phone(0), phone(2), phone(4)],
        segments["none"].id: [],
    }


def test_member_phones_take_one_query_per_segment(alice, segments, django_assert_num_queries):
    ids = [s.id for s in segments.values()]
    with django_assert_num_queries(1 + len(ids)):
        segment_member_phones(account=alice, segment_ids=ids)


def test_a_repeated_segment_id_is_answered_once(alice, segments):
    vip = segments["vip"].id
    assert list(segment_member_phones(account=alice, segment_ids=[vip, vip])) == [vip]


def test_no_segment_ids_is_an_empty_answer(alice):
    assert segment_member_phones(account=alice, segment_ids=[]) == {}


def test_unknown_and_foreign_ids_are_not_found_listing_exactly_those(alice, bob, segments):
    bobs = Segment.objects.create(account=bob, name="Bob's")
    ids = [segments["vip"].id, "seg_unknown", bobs.id]
    with pytest.raises(DomainError) as caught:
        segment_member_phones(account=alice, segment_ids=ids)
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert caught.value.details == {"segment_ids": ["seg_unknown", bobs.id]}
    assert bobs.id in caught.value.message


def test_contact_count_matches_the_members(alice, segments):
    assert segment_contact_count(segment=segments["vip"]) == 3
    assert segment_contact_count(segment=segments["none"]) == 0
