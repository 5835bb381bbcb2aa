"""Message templates: create, list, read, change, delete, and isolation between accounts."""

import pytest

from message_templates.models import MessageTemplate
from tests.helpers import assert_envelope

ORDER = {"name": "Order ready", "text": "Habari {{name}}, order {{order_id}} {{city|Dar}}"}


def create(api, **body):
    return api.post("sms/templates/create/", {**ORDER, **body})


@pytest.mark.django_db
def test_create_answers_201_with_the_template(api, alice):
    body = assert_envelope(create(api), 201)
    data = body["data"]
    assert body["message"] == "Template created successfully"
    assert data["id"].startswith("tpl_") and len(data["id"]) == 30
    assert data["name"] == ORDER["name"] and data["text"] == ORDER["text"]
    assert data["placeholders"] == ["name", "order_id", "city"]
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")
    assert MessageTemplate.objects.get(pk=data["id"]).account == alice


@pytest.mark.django_db
def test_a_name_used_in_the_account_is_a_conflict_whatever_its_case(api):
    first = assert_envelope(create(api), 201)["data"]
    body = assert_envelope(create(api, name="ORDER READY"), 409, "CONFLICT")
    assert body["details"] == {"template_id": first["id"], "name": "ORDER READY"}
    assert MessageTemplate.objects.count() == 1


@pytest.mark.django_db
def test_a_name_that_lowers_to_a_used_one_is_a_conflict_not_an_error(api):
    """The Kelvin sign lowers to k, as the unique index compares, though upper() keeps it."""
    first = assert_envelope(create(api, name="kit"), 201)["data"]
    body = assert_envelope(create(api, name="\u212ait"), 409, "CONFLICT")
    assert body["details"] == {"template_id": first["id"], "name": "\u212ait"}


@pytest.mark.django_db
def test_another_account_may_use_the_same_name(api, bob, api_for):
    assert_envelope(create(api), 201)
    assert_envelope(create(api_for(bob)), 201)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"text": ""}, "text"),
        ({"text": "  "}, "text"),
        ({"text": "Hi {{Name}}"}, "text"),
        ({"text": "Hi {{name"}, "text"),
        ({"text": "x" * 10_001}, "text"),
    ],
)
@pytest.mark.django_db
def test_bad_fields_are_validation_errors_naming_them(api, body, field):
    response = assert_envelope(create(api, **body), 400, "VALIDATION_ERROR")
    assert field in response["details"]
    assert not MessageTemplate.objects.exists()


@pytest.mark.django_db
def test_list_is_newest_first_and_paginated(api, alice, bob):
    for n in range(3):
        assert_envelope(create(api, name=f"t{n}"), 201)
    MessageTemplate.objects.create(account=bob, name="theirs", text="x")
    data = assert_envelope(api.get("sms/templates/", {"limit": 2}), 200)["data"]
    assert [t["name"] for t in data["templates"]] == ["t2", "t1"]
    assert data["pagination"] == {"limit": 2, "offset": 0, "total": 3}
    rest = assert_envelope(api.get("sms/templates/", {"limit": 2, "offset": 2}), 200)["data"]
    assert [t["name"] for t in rest["templates"]] == ["t0"]


@pytest.mark.django_db
def test_get_patch_and_delete(api):
    created = assert_envelope(create(api), 201)["data"]
    url = f"sms/templates/{created['id']}/"
    assert assert_envelope(api.get(url), 200)["data"] == created
    changed = assert_envelope(api.patch(url, {"text": "Bye {{name}}"}), 200)["data"]
    assert changed["text"] == "Bye {{name}}" and changed["name"] == ORDER["name"]
    assert changed["placeholders"] == ["name"]
    assert changed["updated_at"] >= created["updated_at"]
    bad = assert_envelope(api.patch(url, {"text": "{{"}), 400, "VALIDATION_ERROR")
    assert "text" in bad["details"]
    deleted = assert_envelope(api.delete(url), 200)
    assert deleted["data"] == {"id": created["id"], "deleted": True}
    assert_envelope(api.get(url), 404, "NOT_FOUND")


@pytest.mark.django_db
def test_patch_to_a_used_name_is_a_conflict(api):
    assert_envelope(create(api, name="a"), 201)
    b = assert_envelope(create(api, name="b"), 201)["data"]
    assert_envelope(api.patch(f"sms/templates/{b['id']}/", {"name": "A"}), 409, "CONFLICT")


@pytest.mark.django_db
def test_another_accounts_template_is_not_found(api, bob):
    theirs = MessageTemplate.objects.create(account=bob, name="x", text="Hi")
    url = f"sms/templates/{theirs.id}/"
    for response in (api.get(url), api.patch(url, {"name": "mine"}), api.delete(url)):
        body = assert_envelope(response, 404, "NOT_FOUND")
        assert body["details"] == {"template_id": theirs.id}
    theirs.refresh_from_db()
    assert theirs.name == "x"


@pytest.mark.django_db
def test_a_read_key_cannot_create(api_for, alice):
    from integration.models import Permission

    response = create(api_for(alice, Permission.READ))
    assert response.status_code == 403
    assert not MessageTemplate.objects.exists()
