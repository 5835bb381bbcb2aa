from datetime import UTC, datetime, timedelta

import pytest

from segments.models import Segment
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope

URL = "contacts/segments/"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_list_answers_segments_newest_first_with_their_counts(api, alice, bob):
    make_contact(alice, 1, tags=["vip"])
    make_contact(alice, 2, tags=["vip", "lead"], is_active=False)
    make_contact(alice, 3)
    make_contact(bob, 4, tags=["vip"])
    specs = [
        ("All", {}),
        ("VIP", {"tags": ["vip"]}),
        ("Active VIP", {"tags": ["vip"], "is_active": True}),
        ("None", {"tags": ["zzz"]}),
    ]
    for n, (name, criteria) in enumerate(specs):
        Segment.objects.create(
            account=alice, name=name, criteria=criteria, created_at=T0 + timedelta(days=n)
        )
    Segment.objects.create(account=bob, name="Bob's")
    body = assert_envelope(api.get(URL), 200)
    assert body["message"] == "Segments retrieved successfully"
    listed = [(s["name"], s["contact_count"]) for s in body["data"]["segments"]]
    assert listed == [("None", 0), ("Active VIP", 1), ("VIP", 2), ("All", 3)]
    assert body["data"]["pagination"] == {"limit": 20, "offset": 0, "total": 4}


def test_the_counts_of_a_page_come_from_one_query(api, alice, django_assert_max_num_queries):
    for n in range(10):
        Segment.objects.create(account=alice, name=f"S{n}", criteria={"tags": [f"t{n}"]})
    make_contact(alice, 1, tags=["t1", "t2"])
    with django_assert_max_num_queries(12):
        body = api.get(URL).json()
    counts = {s["name"]: s["contact_count"] for s in body["data"]["segments"]}
    assert counts == {f"S{n}": int(n in (1, 2)) for n in range(10)}


def test_list_pages_with_limit_and_offset(api, alice):
    for n in range(5):
        Segment.objects.create(account=alice, name=f"S{n}", created_at=T0 + timedelta(days=n))
    body = api.get(URL, {"limit": 2, "offset": 2}).json()["data"]
    assert [s["name"] for s in body["segments"]] == ["S2", "S1"]
    assert body["pagination"] == {"limit": 2, "offset": 2, "total": 5}
    assert api.get(URL, {"offset": 9}).json()["data"]["segments"] == []


def test_an_empty_account_lists_no_segments(api):
    data = assert_envelope(api.get(URL), 200)["data"]
    assert data == {"segments": [], "pagination": {"limit": 20, "offset": 0, "total": 0}}


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": "-1"}, {"limit": "lots"}]
)
def test_bad_paging_is_a_validation_error(api, params):
    assert_envelope(api.get(URL, params), 400, "VALIDATION_ERROR")


def test_list_without_a_key_is_invalid_credentials(anon):
    assert_envelope(anon.get(URL), 401, "INVALID_CREDENTIALS")
