import pytest

from contacts.models import Contact
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope

URL = "contacts/create/"
JOHN = {
    "name": "John Doe",
    "phone_number": "+255712345678",
    "email": "john@example.com",
    "tags": ["customer", "vip"],
    "is_active": True,
}


def test_create_answers_201_with_the_contact(api, alice):
    body = assert_envelope(api.post(URL, JOHN), 201)
    data = body["data"]
    assert body["message"] == "Contact created successfully"
    assert data["id"].startswith("con_") and len(data["id"]) == 30
    assert {k: data[k] for k in JOHN} == JOHN
    assert data["opted_out"] is False
    assert data["opted_out_at"] is None
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")
    stored = Contact.objects.get(pk=data["id"])
    assert stored.account == alice
    assert stored.phone_number == "+255712345678"


def test_create_with_only_the_required_fields_uses_the_defaults(api):
    data = assert_envelope(api.post(URL, {"name": "Asha", "phone_number": "0754000111"}), 201)[
        "data"
    ]
    assert data["is_active"] is True
    assert data["tags"] == []
    assert data["email"] is None


def test_create_can_make_an_inactive_contact(api):
    data = api.post(URL, {**JOHN, "is_active": False}).json()["data"]
    assert data["is_active"] is False


@pytest.mark.parametrize(
    "raw",
    [
        "0712345678",
        "712345678",
        "+255712345678",
        "+255 712 345 678",
        "00255712345678",
        "0712-345-678",
    ],
)
def test_create_stores_every_phone_format_as_e164(api, raw):
    data = assert_envelope(api.post(URL, {**JOHN, "phone_number": raw}), 201)["data"]
    assert data["phone_number"] == "+255712345678"


def test_tags_are_trimmed_lower_cased_and_deduplicated(api):
    tags = [" VIP ", "vip", "Customer", "customer ", "Lead"]
    data = assert_envelope(api.post(URL, {**JOHN, "tags": tags}), 201)["data"]
    assert data["tags"] == ["vip", "customer", "lead"]


def test_fifty_tags_of_fifty_characters_are_accepted(api):
    tags = [f"{i:02d}" + "x" * 48 for i in range(50)]
    data = assert_envelope(api.post(URL, {**JOHN, "tags": tags}), 201)["data"]
    assert data["tags"] == tags


@pytest.mark.parametrize(
    "tags",
    [
        ["x" * 51],
        [f"tag{i}" for i in range(51)],
        ["   "],
        [""],
        ["ok", 5],
        "vip",
        {"a": 1},
        ["a;b"],
        ["a|b"],
    ],
    ids=[
        "too-long",
        "too-many",
        "blank",
        "empty",
        "not-a-string",
        "not-a-list",
        "object",
        "semicolon",
        "pipe",
    ],
)
def test_bad_tags_are_a_validation_error(api, tags):
    body = assert_envelope(api.post(URL, {**JOHN, "tags": tags}), 400, "VALIDATION_ERROR")
    assert "tags" in body["details"]
    assert not Contact.objects.exists()


def test_duplicate_tags_count_once_towards_the_limit(api):
    tags = [f"tag{i}" for i in range(50)] * 2
    assert_envelope(api.post(URL, {**JOHN, "tags": tags}), 201)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"phone_number": "+255712345678"}, "name"),
        ({"name": "", "phone_number": "+255712345678"}, "name"),
        ({"name": "   ", "phone_number": "+255712345678"}, "name"),
        ({"name": "x" * 201, "phone_number": "+255712345678"}, "name"),
        ({"name": "John"}, "phone_number"),
        ({"name": "John", "phone_number": None}, "phone_number"),
        ({**JOHN, "email": "not-an-email"}, "email"),
        ({**JOHN, "is_active": "sometimes"}, "is_active"),
    ],
    ids=[
        "no-name",
        "empty-name",
        "blank-name",
        "long-name",
        "no-phone",
        "null-phone",
        "bad-email",
        "bad-is-active",
    ],
)
def test_field_errors_are_validation_errors_naming_the_field(api, payload, field):
    body = assert_envelope(api.post(URL, payload), 400, "VALIDATION_ERROR")
    assert field in body["details"]
    assert isinstance(body["details"][field], list)


def test_a_name_of_200_characters_is_accepted(api):
    assert_envelope(api.post(URL, {**JOHN, "name": "x" * 200}), 201)


def test_an_empty_or_null_email_is_stored_as_no_email(api):
    assert api.post(URL, {**JOHN, "email": ""}).json()["data"]["email"] is None
    other = {**JOHN, "phone_number": "+255712345679", "email": None}
    assert api.post(URL, other).json()["data"]["email"] is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12345", "is not a valid phone number"),
        ("+255222123456", "is not a mobile number"),
        ("not a phone", "is not a phone number"),
        ("+255123456789", "is not a valid phone number"),
    ],
)
def test_a_bad_phone_is_invalid_phone_with_the_number_and_reason(api, raw, reason):
    body = assert_envelope(api.post(URL, {**JOHN, "phone_number": raw}), 400, "INVALID_PHONE")
    assert body["details"] == {"invalid": [{"phone": raw, "reason": reason}]}
    assert not Contact.objects.exists()


def test_field_errors_take_precedence_over_a_bad_phone(api):
    payload = {"name": "", "phone_number": "12"}
    assert_envelope(api.post(URL, payload), 400, "VALIDATION_ERROR")


def test_a_phone_already_in_the_account_is_a_conflict_naming_the_contact(api, alice):
    existing = make_contact(alice, phone_number="+255712345678")
    body = assert_envelope(api.post(URL, {**JOHN, "phone_number": "0712 345 678"}), 409, "CONFLICT")
    assert body["details"] == {"contact_id": existing.id, "phone_number": "+255712345678"}
    assert Contact.objects.count() == 1


def test_the_same_phone_may_be_a_contact_of_two_accounts(api, bob):
    make_contact(bob, phone_number="+255712345678")
    assert_envelope(api.post(URL, JOHN), 201)


def test_malformed_json_is_a_validation_error(api):
    response = api.client.post(
        "/api/integration/v1/contacts/create/", data="{nope", content_type="application/json"
    )
    assert_envelope(response, 400, "VALIDATION_ERROR")


def test_a_body_that_is_not_an_object_is_a_validation_error(api):
    assert_envelope(api.post(URL, [JOHN]), 400, "VALIDATION_ERROR")


def test_a_form_encoded_body_is_unsupported_media_type(api):
    response = api.client.post(
        "/api/integration/v1/contacts/create/",
        data="name=John",
        content_type="application/x-www-form-urlencoded",
    )
    assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_get_on_create_is_method_not_allowed(api):
    assert_envelope(api.get(URL), 405, "METHOD_NOT_ALLOWED")


def test_create_without_a_key_is_invalid_credentials(anon):
    assert_envelope(anon.post(URL, JOHN), 401, "INVALID_CREDENTIALS")


def test_create_with_the_same_idempotency_key_creates_one_contact(api):
    first = api.post(URL, JOHN, HTTP_IDEMPOTENCY_KEY="contact-1")
    again = api.post(URL, JOHN, HTTP_IDEMPOTENCY_KEY="contact-1")
    assert_envelope(first, 201)
    assert_envelope(again, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert Contact.objects.count() == 1


def test_a_conflict_under_an_idempotency_key_leaves_no_record_behind(api, alice):
    make_contact(alice, phone_number="+255712345678")
    first = api.post(URL, JOHN, HTTP_IDEMPOTENCY_KEY="dup")
    assert_envelope(first, 409, "CONFLICT")
    Contact.objects.all().delete()
    assert_envelope(api.post(URL, JOHN, HTTP_IDEMPOTENCY_KEY="dup"), 201)
