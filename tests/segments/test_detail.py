from datetime import UTC, datetime, timedelta

import pytest

from contacts.models import Contact
from segments.models import Segment
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def vip(alice):
    make_contact(alice, 1, tags=["vip"])
    make_contact(alice, 2, tags=["lead"])
    return Segment.objects.create(
        account=alice, name="VIP", description="d", criteria={"tags": ["vip"]}
    )


def url(segment_id, rest=""):
    return f"contacts/segments/{segment_id}/{rest}"


def test_get_answers_the_segment_with_its_count(api, vip):
    body = assert_envelope(api.get(url(vip.id)), 200)
    assert body["message"] == "Segment retrieved successfully"
    assert body["data"] == {
        "id": vip.id,
        "name": "VIP",
        "description": "d",
        "criteria": {"tags": ["vip"]},
        "contact_count": 1,
        "created_at": body["data"]["created_at"],
        "updated_at": body["data"]["updated_at"],
    }


def test_an_unknown_segment_is_not_found_for_every_endpoint(api):
    for response in (
        api.get(url("seg_nope")),
        api.patch(url("seg_nope"), {"name": "x"}),
        api.delete(url("seg_nope")),
        api.get(url("seg_nope", "contacts/")),
    ):
        body = assert_envelope(response, 404, "NOT_FOUND")
        assert body["details"] == {"segment_id": "seg_nope"}


def test_patch_changes_only_the_fields_sent(api, vip):
    body = assert_envelope(api.patch(url(vip.id), {"description": "new"}), 200)
    assert body["message"] == "Segment updated successfully"
    assert body["data"]["description"] == "new"
    assert body["data"]["name"] == "VIP"
    assert body["data"]["criteria"] == {"tags": ["vip"]}


def test_patch_replaces_the_criteria_and_the_count_follows(api, vip):
    data = assert_envelope(api.patch(url(vip.id), {"criteria": {"tags": ["lead", "vip"]}}), 200)[
        "data"
    ]
    assert data["criteria"] == {"tags": ["lead", "vip"]}
    assert data["contact_count"] == 2
    data = api.patch(url(vip.id), {"criteria": {}}).json()["data"]
    assert data["criteria"] == {}
    assert data["contact_count"] == 2


def test_patch_with_a_bad_criterion_is_a_validation_error_and_changes_nothing(api, vip):
    body = assert_envelope(
        api.patch(url(vip.id), {"criteria": {"tag": ["x"]}}), 400, "VALIDATION_ERROR"
    )
    assert "tag" in body["details"]["criteria"]
    vip.refresh_from_db()
    assert vip.criteria == {"tags": ["vip"]}


def test_patch_to_a_name_in_use_is_a_conflict(api, alice, vip):
    other = Segment.objects.create(account=alice, name="Leads")
    body = assert_envelope(api.patch(url(vip.id), {"name": "LEADS"}), 409, "CONFLICT")
    assert body["details"] == {"segment_id": other.id, "name": "LEADS"}


def test_patch_may_change_the_case_of_its_own_name(api, vip):
    assert assert_envelope(api.patch(url(vip.id), {"name": "vip"}), 200)["data"]["name"] == "vip"


def test_patch_with_an_empty_name_is_a_validation_error(api, vip):
    assert_envelope(api.patch(url(vip.id), {"name": ""}), 400, "VALIDATION_ERROR")


def test_delete_removes_the_segment_but_not_its_contacts(api, vip):
    body = assert_envelope(api.delete(url(vip.id)), 200)
    assert body["data"] == {"id": vip.id, "deleted": True}
    assert not Segment.objects.filter(pk=vip.pk).exists()
    assert Contact.objects.count() == 2
    assert_envelope(api.get(url(vip.id)), 404, "NOT_FOUND")


def test_post_on_a_segment_is_method_not_allowed(api, vip):
    assert_envelope(api.post(url(vip.id), {}), 405, "METHOD_NOT_ALLOWED")


def test_segment_contacts_are_paged_newest_first(api, alice):
    made = [
        make_contact(alice, n, tags=["vip"], created_at=T0 + timedelta(hours=n)) for n in range(5)
    ]
    make_contact(alice, 9, tags=["other"])
    segment = Segment.objects.create(account=alice, name="VIP", criteria={"tags": ["vip"]})
    body = assert_envelope(api.get(url(segment.id, "contacts/"), {"limit": 2, "offset": 1}), 200)
    assert body["message"] == "Segment contacts retrieved successfully"
    assert [c["id"] for c in body["data"]["contacts"]] == [made[3].id, made[2].id]
    assert body["data"]["pagination"] == {"limit": 2, "offset": 1, "total": 5}


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}])
def test_segment_contacts_with_bad_paging_is_a_validation_error(api, vip, params):
    assert_envelope(api.get(url(vip.id, "contacts/"), params), 400, "VALIDATION_ERROR")
