"""Custom fields on contacts through the API: create, change, read, search and export."""

import csv
import io

import pytest

from contacts.models import Contact
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope


def create(api, **fields):
    return api.post("contacts/create/", {"name": "Asha", "phone_number": "0754000111", **fields})


def test_create_stores_and_answers_the_custom_fields(api):
    data = assert_envelope(create(api, custom_fields={"city": "Arusha", "order_id": "1043"}), 201)[
        "data"
    ]
    assert data["custom_fields"] == {"city": "Arusha", "order_id": "1043"}
    assert Contact.objects.get().custom_fields == {"city": "Arusha", "order_id": "1043"}


def test_a_contact_without_custom_fields_answers_an_empty_object(api):
    data = assert_envelope(create(api), 201)["data"]
    assert data["custom_fields"] == {}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Arusha", "must be an object"),
        (["city"], "must be an object"),
        ({"City": "x"}, "'City' is not a valid key"),
        ({"1city": "x"}, "'1city' is not a valid key"),
        ({"a" * 33: "x"}, "is not a valid key"),
        ({"name": "x"}, "'name' is reserved"),
        ({"phone": "x"}, "'phone' is reserved"),
        ({"city\n": "x"}, "is not a valid key"),
        ({"name\n": "x"}, "is not a valid key"),
        ({"opted_out": "x"}, "'opted_out' is reserved"),
        ({"city": 5}, "the value of 'city' must be a string"),
        ({"city": None}, "the value of 'city' must be a string"),
        ({"city": "a" * 256}, "longer than 255 characters"),
        ({f"k{i}": "x" for i in range(21)}, "at most 20 keys"),
    ],
)
def test_invalid_custom_fields_are_a_validation_error_naming_the_field(api, value, reason):
    body = assert_envelope(create(api, custom_fields=value), 400, "VALIDATION_ERROR")
    assert reason in body["details"]["custom_fields"][0]
    assert not Contact.objects.exists()


def test_the_longest_key_and_value_and_20_keys_are_accepted(api):
    fields = {f"k{i}": "v" for i in range(19)} | {"a" * 32: "b" * 255}
    data = assert_envelope(create(api, custom_fields=fields), 201)["data"]
    assert data["custom_fields"] == fields


def test_patch_merges_and_null_removes_a_key(api, alice):
    contact = make_contact(alice, custom_fields={"city": "Dar", "tier": "gold"})
    body = assert_envelope(
        api.patch(
            f"contacts/{contact.pk}/",
            {"custom_fields": {"city": "Arusha", "tier": None, "order_id": "7", "gone": None}},
        ),
        200,
    )
    assert body["data"]["custom_fields"] == {"city": "Arusha", "order_id": "7"}
    contact.refresh_from_db()
    assert contact.custom_fields == {"city": "Arusha", "order_id": "7"}
    got = assert_envelope(api.get(f"contacts/{contact.pk}/"), 200)["data"]
    assert got["custom_fields"] == {"city": "Arusha", "order_id": "7"}


def test_patch_without_custom_fields_keeps_them(api, alice):
    contact = make_contact(alice, custom_fields={"city": "Dar"})
    body = assert_envelope(api.patch(f"contacts/{contact.pk}/", {"name": "New"}), 200)
    assert body["data"]["custom_fields"] == {"city": "Dar"}


def test_patch_that_would_pass_20_keys_is_refused_and_changes_nothing(api, alice):
    current = {f"k{i}": "x" for i in range(20)}
    contact = make_contact(alice, custom_fields=current)
    body = assert_envelope(
        api.patch(f"contacts/{contact.pk}/", {"custom_fields": {"extra": "y"}}),
        400,
        "VALIDATION_ERROR",
    )
    assert "at most 20 keys" in body["details"]["custom_fields"][0]
    contact.refresh_from_db()
    assert contact.custom_fields == current


def test_patch_with_a_bad_value_is_refused(api, alice):
    contact = make_contact(alice, custom_fields={"city": "Dar"})
    body = assert_envelope(
        api.patch(f"contacts/{contact.pk}/", {"custom_fields": {"city": 1}}),
        400,
        "VALIDATION_ERROR",
    )
    assert "must be a string" in body["details"]["custom_fields"][0]


def test_search_rows_carry_the_custom_fields(api, alice):
    make_contact(alice, 1, name="Asha", custom_fields={"city": "Moshi"})
    rows = assert_envelope(api.get("contacts/search/", {"q": "Asha"}), 200)["data"]["contacts"]
    assert [r["custom_fields"] for r in rows] == [{"city": "Moshi"}]


def test_export_has_a_column_per_custom_field_key_and_imports_back(api, alice):
    make_contact(alice, 1, name="Asha", custom_fields={"city": "Moshi"})
    make_contact(alice, 2, name="Juma", custom_fields={"order_id": "=1+2", "city": "Dar"})
    make_contact(alice, 3, name="Neema")
    response = api.get("contacts/export/")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        *("name", "phone_number", "email", "tags", "is_active", "opted_out"),
        *("city", "order_id"),
    ]
    by_name = {r[0]: r[6:] for r in rows[1:]}
    # A formula-like value is guarded for spreadsheets.
    assert by_name == {"Asha": ["Moshi", ""], "Juma": ["Dar", "'=1+2"], "Neema": ["", ""]}
    Contact.objects.all().delete()
    upload = api.client.post(
        "/api/integration/v1/contacts/import/", data=text.encode(), content_type="text/csv"
    )
    assert assert_envelope(upload, 200)["data"]["created"] == 3
    assert dict(Contact.objects.values_list("name", "custom_fields")) == {
        "Asha": {"city": "Moshi"},
        "Juma": {"city": "Dar", "order_id": "=1+2"},
        "Neema": {},
    }


def test_text_that_starts_with_an_apostrophe_before_a_formula_sign_imports_back_whole(api, alice):
    make_contact(alice, 1, name="'=x", custom_fields={"note": "'@y", "code": "''+z"})
    exported = b"".join(api.get("contacts/export/").streaming_content)
    Contact.objects.all().delete()
    upload = api.client.post(
        "/api/integration/v1/contacts/import/", data=exported, content_type="text/csv"
    )
    assert assert_envelope(upload, 200)["data"]["created"] == 1
    contact = Contact.objects.get()
    assert (contact.name, contact.custom_fields) == ("'=x", {"code": "''+z", "note": "'@y"})
