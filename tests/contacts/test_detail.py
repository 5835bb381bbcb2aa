from contacts.models import Contact
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope


def url(contact_id, action=""):
    return f"contacts/{contact_id}/{action + '/' if action else ''}"


def test_get_answers_the_contact(api, alice):
    contact = make_contact(alice, 1, name="Asha", tags=["vip"], email="asha@example.com")
    body = assert_envelope(api.get(url(contact.id)), 200)
    assert body["message"] == "Contact retrieved successfully"
    assert body["data"]["id"] == contact.id
    assert body["data"]["name"] == "Asha"
    assert body["data"]["tags"] == ["vip"]
    assert body["data"]["email"] == "asha@example.com"


def test_an_unknown_id_is_not_found_for_every_method(api):
    for response in (
        api.get(url("con_unknown")),
        api.patch(url("con_unknown"), {"name": "x"}),
        api.delete(url("con_unknown")),
        api.post(url("con_unknown", "opt-out")),
        api.post(url("con_unknown", "opt-in")),
    ):
        body = assert_envelope(response, 404, "NOT_FOUND")
        assert body["details"] == {"contact_id": "con_unknown"}


def test_patch_changes_only_the_fields_sent(api, alice):
    contact = make_contact(alice, 1, name="Asha", tags=["vip"], email="asha@example.com")
    body = assert_envelope(api.patch(url(contact.id), {"name": "Asha M."}), 200)
    assert body["message"] == "Contact updated successfully"
    data = body["data"]
    assert data["name"] == "Asha M."
    assert data["tags"] == ["vip"]
    assert data["email"] == "asha@example.com"
    assert data["updated_at"] >= data["created_at"]
    contact.refresh_from_db()
    assert contact.name == "Asha M."


def test_patch_normalises_phone_and_tags(api, alice):
    contact = make_contact(alice, 1)
    data = assert_envelope(
        api.patch(url(contact.id), {"phone_number": "0754 000 111", "tags": [" A ", "a", "B"]}),
        200,
    )["data"]
    assert data["phone_number"] == "+255754000111"
    assert data["tags"] == ["a", "b"]


def test_patch_can_clear_the_email_and_deactivate(api, alice):
    contact = make_contact(alice, 1, email="x@example.com")
    data = api.patch(url(contact.id), {"email": None, "is_active": False}).json()["data"]
    assert data["email"] is None
    assert data["is_active"] is False


def test_patch_with_an_empty_body_changes_nothing(api, alice):
    contact = make_contact(alice, 1, name="Same")
    assert assert_envelope(api.patch(url(contact.id), {}), 200)["data"]["name"] == "Same"


def test_patch_to_a_phone_of_another_contact_is_a_conflict(api, alice):
    taken = make_contact(alice, 1)
    contact = make_contact(alice, 2)
    body = assert_envelope(
        api.patch(url(contact.id), {"phone_number": taken.phone_number}), 409, "CONFLICT"
    )
    assert body["details"] == {"contact_id": taken.id, "phone_number": taken.phone_number}
    contact.refresh_from_db()
    assert contact.phone_number != taken.phone_number


def test_patch_to_its_own_phone_in_another_format_is_fine(api, alice):
    contact = make_contact(alice, phone_number="+255712345678")
    assert_envelope(api.patch(url(contact.id), {"phone_number": "0712345678"}), 200)


def test_patch_with_a_bad_phone_is_invalid_phone(api, alice):
    contact = make_contact(alice, 1)
    body = assert_envelope(
        api.patch(url(contact.id), {"phone_number": "123"}), 400, "INVALID_PHONE"
    )
    assert body["details"]["invalid"][0]["phone"] == "123"


def test_patch_with_bad_fields_is_a_validation_error(api, alice):
    contact = make_contact(alice, 1)
    body = assert_envelope(
        api.patch(url(contact.id), {"name": "", "email": "nope", "tags": "vip"}),
        400,
        "VALIDATION_ERROR",
    )
    assert set(body["details"]) == {"name", "email", "tags"}


def test_delete_removes_the_contact(api, alice):
    contact = make_contact(alice, 1)
    body = assert_envelope(api.delete(url(contact.id)), 200)
    assert body["data"] == {"id": contact.id, "deleted": True}
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert_envelope(api.get(url(contact.id)), 404, "NOT_FOUND")


def test_a_contact_whose_phone_opted_out_is_kept_and_keeps_its_number(api, alice):
    """The opt-out is the phone's: deleting the contact, or moving it to another number,
    would let the phone that asked be messaged again."""
    contact = make_contact(alice, 1, opted_out=True)
    body = assert_envelope(api.delete(url(contact.id)), 409, "CONFLICT")
    assert "opted out" in body["message"]
    moved = api.patch(url(contact.id), {"phone_number": "+255710000099"})
    assert assert_envelope(moved, 409, "CONFLICT")["details"] == {
        "phone_number": ["the contact's phone opted out"]
    }
    same = api.patch(url(contact.id), {"name": "Renamed", "phone_number": contact.phone_number})
    assert_envelope(same, 200)
    send = api.post("sms/send/", {"message": "Habari", "recipients": [contact.phone_number]})
    assert_envelope(send, 400, "OPTED_OUT")
    assert_envelope(api.post(url(contact.id, "opt-in")), 200)
    assert_envelope(api.delete(url(contact.id)), 200)


def test_opt_out_marks_the_contact_and_is_idempotent(api, alice):
    contact = make_contact(alice, 1)
    first = assert_envelope(api.post(url(contact.id, "opt-out")), 200)
    assert first["message"] == "Contact opted out"
    assert first["data"]["opted_out"] is True
    assert first["data"]["opted_out_at"].endswith("Z")
    again = assert_envelope(api.post(url(contact.id, "opt-out")), 200)
    assert again["data"]["opted_out_at"] == first["data"]["opted_out_at"]
    contact.refresh_from_db()
    assert contact.opted_out is True


def test_opt_in_clears_the_opt_out(api, alice):
    contact = make_contact(alice, 1, opted_out=True)
    body = assert_envelope(api.post(url(contact.id, "opt-in")), 200)
    assert body["message"] == "Contact opted in"
    assert body["data"]["opted_out"] is False
    assert body["data"]["opted_out_at"] is None
    assert_envelope(api.post(url(contact.id, "opt-in")), 200)


def test_opt_out_does_not_accept_get(api, alice):
    contact = make_contact(alice, 1)
    assert_envelope(api.get(url(contact.id, "opt-out")), 405, "METHOD_NOT_ALLOWED")


def test_put_on_a_contact_is_method_not_allowed(api, alice):
    contact = make_contact(alice, 1)
    response = api.client.put(f"/api/integration/v1/{url(contact.id)}", {}, format="json")
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
