import pytest

from segments.models import Segment
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope

URL = "contacts/segments/create/"
VIP = {
    "name": "VIP Customers",
    "description": "High-value customers",
    "criteria": {"tags": ["vip", "premium"], "is_active": True, "created_after": "2024-01-01"},
}


def test_create_answers_201_with_the_segment_and_its_count(api, alice):
    make_contact(alice, 1, tags=["vip"])
    make_contact(alice, 2, tags=["premium"], is_active=False)
    make_contact(alice, 3, tags=["other"])
    body = assert_envelope(api.post(URL, VIP), 201)
    data = body["data"]
    assert body["message"] == "Segment created successfully"
    assert data["id"].startswith("seg_") and len(data["id"]) == 30
    assert data["name"] == "VIP Customers"
    assert data["description"] == "High-value customers"
    assert data["criteria"] == VIP["criteria"]
    assert data["contact_count"] == 1
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")
    assert Segment.objects.get(pk=data["id"]).account == alice


def test_a_segment_without_criteria_holds_every_contact(api, alice):
    make_contact(alice, 1)
    make_contact(alice, 2, is_active=False, opted_out=True)
    data = assert_envelope(api.post(URL, {"name": "Everyone"}), 201)["data"]
    assert data["criteria"] == {}
    assert data["description"] == ""
    assert data["contact_count"] == 2


def test_criteria_are_stored_in_canonical_form(api):
    criteria = {
        "tags_all": [" VIP", "vip", "Lead"],
        "created_before": "2024-06-01T12:30:00+03:00",
        "opted_out": False,
    }
    data = assert_envelope(api.post(URL, {"name": "x", "criteria": criteria}), 201)["data"]
    assert data["criteria"] == {
        "tags_all": ["vip", "lead"],
        "opted_out": False,
        "created_before": "2024-06-01T09:30:00Z",
    }


def test_a_name_used_in_the_account_is_a_conflict_whatever_its_case(api, alice):
    existing = Segment.objects.create(account=alice, name="VIP Customers")
    body = assert_envelope(api.post(URL, {**VIP, "name": "vip customers"}), 409, "CONFLICT")
    assert body["details"] == {"segment_id": existing.id, "name": "vip customers"}
    assert Segment.objects.count() == 1


def test_another_account_may_use_the_same_name(api, bob):
    Segment.objects.create(account=bob, name="VIP Customers")
    assert_envelope(api.post(URL, VIP), 201)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"criteria": {}}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "description": "d" * 1001}, "description"),
        ({"name": "x", "criteria": ["tags"]}, "criteria"),
        ({"name": "x", "criteria": "vip"}, "criteria"),
    ],
)
def test_field_errors_are_validation_errors(api, payload, field):
    body = assert_envelope(api.post(URL, payload), 400, "VALIDATION_ERROR")
    assert field in body["details"]


@pytest.mark.parametrize(
    ("criteria", "key"),
    [
        ({"colour": "red"}, "colour"),
        ({"tags": "vip"}, "tags"),
        ({"tags": []}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": [1]}, "tags"),
        ({"tags_all": "vip"}, "tags_all"),
        ({"tags_all": [""]}, "tags_all"),
        ({"is_active": "yes"}, "is_active"),
        ({"is_active": 1}, "is_active"),
        ({"opted_out": None}, "opted_out"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2024-02-30"}, "created_after"),
        ({"created_after": 20240101}, "created_after"),
        ({"created_after": "2024-01-01T10:00:00"}, "created_after"),
        ({"created_before": "2024-13-01"}, "created_before"),
        ({"created_after": "2024-02-01", "created_before": "2024-01-01"}, "created_before"),
        ({"created_after": "2024-01-01", "created_before": "2024-01-01"}, "created_before"),
    ],
)
def test_a_bad_criterion_is_a_validation_error_naming_it(api, criteria, key):
    body = assert_envelope(
        api.post(URL, {"name": "x", "criteria": criteria}), 400, "VALIDATION_ERROR"
    )
    assert list(body["details"]) == ["criteria"]
    assert key in body["details"]["criteria"]
    assert not Segment.objects.exists()


def test_every_bad_criterion_is_named_at_once(api):
    criteria = {"colour": 1, "is_active": "no", "tags": "x"}
    body = assert_envelope(
        api.post(URL, {"name": "x", "criteria": criteria}), 400, "VALIDATION_ERROR"
    )
    assert set(body["details"]["criteria"]) == {"colour", "is_active", "tags"}


def test_the_same_request_twice_with_an_idempotency_key_makes_one_segment(api):
    first = api.post(URL, VIP, HTTP_IDEMPOTENCY_KEY="seg-1")
    again = api.post(URL, VIP, HTTP_IDEMPOTENCY_KEY="seg-1")
    assert_envelope(again, 201)
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert Segment.objects.count() == 1


def test_create_without_a_key_is_invalid_credentials(anon):
    assert_envelope(anon.post(URL, VIP), 401, "INVALID_CREDENTIALS")


def test_get_on_create_is_method_not_allowed(api):
    assert_envelope(api.get(URL), 405, "METHOD_NOT_ALLOWED")
