"""Another account's segment ids answer 404 everywhere, and membership never crosses
accounts."""

import pytest

from segments.models import Segment
from segments.selectors import segment_member_phones
from tests.contacts.factories import make_contact, phone
from tests.helpers import assert_envelope


@pytest.fixture
def bobs(bob):
    return Segment.objects.create(account=bob, name="Bob's", criteria={})


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "", None),
        ("patch", "", {"name": "Stolen"}),
        ("delete", "", None),
        ("get", "contacts/", None),
    ],
)
def test_another_accounts_segment_is_not_found(api, bobs, method, path, payload):
    url = f"contacts/segments/{bobs.id}/{path}"
    call = getattr(api, method)
    response = call(url, payload) if payload is not None else call(url)
    assert_envelope(response, 404, "NOT_FOUND")
    assert Segment.objects.get(pk=bobs.pk).name == "Bob's"


def test_another_accounts_segment_cannot_filter_search_or_export(api, bobs):
    assert_envelope(api.get("contacts/search/", {"segment_id": bobs.id}), 404, "NOT_FOUND")
    assert_envelope(api.get("contacts/export/", {"segment_id": bobs.id}), 404, "NOT_FOUND")


def test_membership_holds_only_the_accounts_own_contacts(api, alice, bob):
    make_contact(alice, 1, tags=["vip"])
    make_contact(bob, 2, tags=["vip"])
    created = api.post("contacts/segments/create/", {"name": "VIP", "criteria": {"tags": ["vip"]}})
    segment = assert_envelope(created, 201)["data"]
    assert segment["contact_count"] == 1
    listed = api.get(f"contacts/segments/{segment['id']}/contacts/").json()["data"]
    assert [c["phone_number"] for c in listed["contacts"]] == [phone(1)]
    assert segment_member_phones(account=alice, segment_ids=[segment["id"]]) == {
        segment["id"]: [phone(1)]
    }


def test_segments_list_only_the_accounts_own(api, alice, bobs):
    Segment.objects.create(account=alice, name="Mine")
    names = [s["name"] for s in api.get("contacts/segments/").json()["data"]["segments"]]
    assert names == ["Mine"]
