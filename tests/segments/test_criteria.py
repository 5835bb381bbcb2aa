"""Every criterion alone and combined, checked through the count and the member list."""

from datetime import UTC, datetime

import pytest

from segments.models import Segment
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope


def at(month, day, hour=8):
    return datetime(2024, month, day, hour, tzinfo=UTC)


@pytest.fixture
def people(alice):
    specs = {
        "a": {"tags": ["vip", "lead"], "created_at": at(1, 10)},
        "b": {"tags": ["vip"], "is_active": False, "created_at": at(2, 10)},
        "c": {"tags": ["lead"], "opted_out": True, "created_at": at(3, 10)},
        "d": {"tags": [], "created_at": at(4, 10)},
        "e": {"tags": ["premium", "vip", "lead"], "created_at": at(5, 10, 12)},
    }
    return {
        name: make_contact(alice, n, name=name, **spec)
        for n, (name, spec) in enumerate(specs.items())
    }


def members(api, criteria):
    created = api.post("contacts/segments/create/", {"name": "s", "criteria": criteria})
    segment = assert_envelope(created, 201)["data"]
    listed = assert_envelope(
        api.get(f"contacts/segments/{segment['id']}/contacts/", {"limit": 100}), 200
    )["data"]
    names = {c["name"] for c in listed["contacts"]}
    assert segment["contact_count"] == len(names) == listed["pagination"]["total"]
    return names


CASES = [
    ({}, "abcde"),
    ({"tags": ["vip"]}, "abe"),
    ({"tags": ["vip", "premium"]}, "abe"),
    ({"tags": ["lead", "nobody-has-this"]}, "ace"),
    ({"tags": [" VIP "]}, "abe"),
    ({"tags": ["nobody-has-this"]}, ""),
    ({"tags_all": ["vip"]}, "abe"),
    ({"tags_all": ["vip", "lead"]}, "ae"),
    ({"tags_all": ["Lead", "VIP", "premium"]}, "e"),
    ({"tags_all": ["vip", "nobody-has-this"]}, ""),
    ({"is_active": True}, "acde"),
    ({"is_active": False}, "b"),
    ({"opted_out": True}, "c"),
    ({"opted_out": False}, "abde"),
    ({"created_after": "2024-03-10"}, "cde"),
    ({"created_after": "2024-03-10T08:00:00Z"}, "cde"),
    ({"created_after": "2024-03-10T08:00:01Z"}, "de"),
    ({"created_after": "2024-03-10T10:00:00+03:00"}, "cde"),
    ({"created_after": "2024-05-11"}, ""),
    ({"created_before": "2024-02-10"}, "a"),
    ({"created_before": "2024-02-10T08:00:00Z"}, "a"),
    ({"created_before": "2024-02-10T08:00:01Z"}, "ab"),
    ({"created_after": "2024-02-01", "created_before": "2024-04-01"}, "bc"),
    ({"tags": ["vip"], "is_active": True, "opted_out": False, "created_after": "2024-01-01"}, "ae"),
    ({"tags": ["premium", "lead"], "tags_all": ["vip"]}, "ae"),
    ({"tags": ["lead"], "opted_out": False, "created_before": "2024-05-01"}, "a"),
    ({"tags_all": ["lead"], "is_active": True, "created_after": "2024-03-01"}, "ce"),
]


@pytest.mark.parametrize(("criteria", "expected"), CASES, ids=[str(c) for c, _ in CASES])
def test_membership_follows_the_criteria(api, people, criteria, expected):
    assert members(api, criteria) == set(expected)


def test_membership_is_evaluated_when_asked_not_when_saved(api, alice, people):
    segment = assert_envelope(
        api.post("contacts/segments/create/", {"name": "VIP", "criteria": {"tags": ["vip"]}}),
        201,
    )["data"]
    assert segment["contact_count"] == 3
    make_contact(alice, 50, tags=["vip"])
    people["a"].delete()
    body = assert_envelope(api.get(f"contacts/segments/{segment['id']}/"), 200)
    assert body["data"]["contact_count"] == 3
    assert Segment.objects.get(pk=segment["id"]).criteria == {"tags": ["vip"]}


def test_an_opt_out_moves_a_contact_between_segments(api, people):
    created = api.post(
        "contacts/segments/create/", {"name": "Reachable", "criteria": {"opted_out": False}}
    )
    segment = created.json()["data"]
    api.post(f"contacts/{people['a'].id}/opt-out/")
    assert api.get(f"contacts/segments/{segment['id']}/").json()["data"]["contact_count"] == 3


def test_a_moment_keeps_its_fraction_of_a_second(api, alice):
    """A client's toISOString() sends milliseconds: contacts of that second land by them."""
    second = datetime(2024, 1, 1, 10, 0, 0, tzinfo=UTC)
    make_contact(alice, 1, name="early", created_at=second.replace(microsecond=200000))
    make_contact(alice, 2, name="late", created_at=second.replace(microsecond=800000))

    def named(name, criteria):
        created = api.post("contacts/segments/create/", {"name": name, "criteria": criteria})
        segment = assert_envelope(created, 201)["data"]
        path = f"contacts/segments/{segment['id']}/contacts/"
        listed = assert_envelope(api.get(path), 200)["data"]["contacts"]
        return segment["criteria"], {c["name"] for c in listed}

    after = {"created_after": "2024-01-01T10:00:00.500Z"}
    assert named("after", after) == ({"created_after": "2024-01-01T10:00:00.500000Z"}, {"late"})
    before = {"created_before": "2024-01-01T10:00:00.500Z"}
    assert named("before", before)[1] == {"early"}
    both = {"created_after": "2024-01-01T10:00:00.100Z"}
    both["created_before"] = "2024-01-01T10:00:00.900Z"
    assert named("both", both)[1] == {"early", "late"}
    whole = {"created_after": "2024-01-01T10:00:00Z"}
    assert named("whole", whole)[0] == {"created_after": "2024-01-01T10:00:00Z"}
