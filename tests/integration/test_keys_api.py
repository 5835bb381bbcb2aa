from datetime import timedelta

import pytest
from django.utils import timezone

from integration.models import ApiKey, AuditEvent
from tests.helpers import Api, assert_envelope


@pytest.mark.django_db
def test_create_list_rotate_revoke_through_the_api(api, alice):
    created = assert_envelope(
        api.post("keys/create/", {"name": "ci", "permissions": "read", "test": True}), 201
    )["data"]
    assert created["key"].startswith("mif_test_") and created["permissions"] == ["read"]
    new_api = Api(created["key"])
    assert_envelope(new_api.get("sms/balance/"), 200)
    listed = assert_envelope(api.get("keys/"), 200)["data"]["keys"]
    assert created["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed)
    rotated = assert_envelope(api.post(f"keys/{created['id']}/rotate/"), 200)["data"]
    assert_envelope(new_api.get("sms/balance/"), 401, "INVALID_CREDENTIALS")
    assert_envelope(Api(rotated["key"]).get("sms/balance/"), 200)
    # The rotated key is a new record; the old one is revoked and cannot be rotated again.
    assert rotated["id"] != created["id"] and rotated["name"] == "ci"
    assert_envelope(api.post(f"keys/{created['id']}/rotate/"), 409, "CONFLICT")
    revoked = assert_envelope(api.post(f"keys/{rotated['id']}/revoke/"), 200)["data"]
    assert revoked["status"] == "revoked"
    assert_envelope(Api(rotated["key"]).get("sms/balance/"), 401, "INVALID_CREDENTIALS")
    assert_envelope(api.post(f"keys/{rotated['id']}/rotate/"), 409, "CONFLICT")
    actions = set(AuditEvent.objects.filter(account=alice).values_list("action", flat=True))
    assert {"api_key.created", "api_key.rotated", "api_key.revoked"} <= actions


@pytest.mark.django_db
def test_a_key_that_expires_cannot_make_one_that_outlives_it(alice, make_key):
    ends = timezone.now() + timedelta(days=1)
    expiring = Api(make_key(alice, expires_at=ends).raw)
    later = (ends + timedelta(days=30)).isoformat()
    for body in ({"name": "forever"}, {"name": "later", "expires_at": later}):
        created = assert_envelope(expiring.post("keys/create/", body), 201)["data"]
        assert ApiKey.objects.get(pk=created["id"]).expires_at == ends
    sooner = ends - timedelta(hours=1)
    created = assert_envelope(
        expiring.post("keys/create/", {"name": "sooner", "expires_at": sooner.isoformat()}), 201
    )["data"]
    assert ApiKey.objects.get(pk=created["id"]).expires_at == sooner


@pytest.mark.django_db
def test_key_validation_and_isolation(api, bob, make_key):
    body = assert_envelope(
        api.post("keys/create/", {"permissions": "root"}), 400, "VALIDATION_ERROR"
    )
    assert set(body["details"]) == {"name", "permissions"}
    assert_envelope(
        api.post("keys/create/", {"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        400,
        "VALIDATION_ERROR",
    )
    bobs = make_key(bob).api_key
    assert_envelope(api.post(f"keys/{bobs.pk}/revoke/"), 404, "NOT_FOUND")
    assert_envelope(api.post(f"keys/{bobs.pk}/rotate/"), 404, "NOT_FOUND")
    assert ApiKey.objects.get(pk=bobs.pk).revoked_at is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("asked", "level", "answered"),
    [
        ("read", "read", ["read"]),
        (["read"], "read", ["read"]),
        (["read", "write"], "write", ["read", "write"]),
        (["admin", "read"], "admin", ["read", "write", "admin"]),
        (None, "write", ["read", "write"]),  # not given: write
    ],
)
def test_permissions_are_asked_as_they_are_answered(api, asked, level, answered):
    body = {"name": "scoped"} if asked is None else {"name": "scoped", "permissions": asked}
    created = assert_envelope(api.post("keys/create/", body), 201)["data"]
    assert created["permissions"] == answered
    assert ApiKey.objects.get(pk=created["id"]).permission == level
    # What a key's answer says can be sent back to make another like it.
    again = {"name": "copy", "permissions": created["permissions"]}
    assert assert_envelope(api.post("keys/create/", again), 201)["data"]["permissions"] == answered


@pytest.mark.django_db
def test_a_read_key_made_through_the_api_cannot_send(api):
    created = assert_envelope(api.post("keys/create/", {"name": "r", "permissions": "read"}), 201)
    sent = Api(created["data"]["key"]).post(
        "sms/send/", {"message": "Habari", "recipients": ["0712345678"]}
    )
    assert_envelope(sent, 403, "PERMISSION_DENIED")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "k", "permission": "read"}, "permission"),  # the singular is not a field
        ({"name": "k", "scope": "read"}, "scope"),
        ({"name": "k", "permissions": "read", "mode": "test"}, "mode"),
        ({"name": "k", "permissions": []}, "permissions"),
        ({"name": "k", "permissions": ["read", "root"]}, "permissions"),
        ({"name": "k", "permissions": 3}, "permissions"),
        ({"name": "k", "permissions": [["read"]]}, "permissions"),
    ],
)
def test_unknown_fields_and_bad_permissions_are_refused(api, body, field):
    answer = assert_envelope(api.post("keys/create/", body), 400, "VALIDATION_ERROR")
    assert set(answer["details"]) == {field}, answer
    assert not ApiKey.objects.filter(name="k").exists()
