import pytest

from contacts.models import Contact
from tests.helpers import assert_envelope


@pytest.fixture
def limit_of(alice):
    def set_limit(n):
        alice.contacts_per_hour = n
        alice.save(update_fields=["contacts_per_hour"])

    return set_limit


def test_contact_operations_beyond_the_hourly_limit_are_refused(api, limit_of):
    limit_of(3)
    for _ in range(3):
        assert_envelope(api.get("contacts/search/"), 200)
    response = api.get("contacts/search/")
    body = assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    assert body["details"]["bucket"] == "contacts"
    assert body["details"]["limit"] == 3
    assert body["details"]["window"] == 3600
    assert int(response["Retry-After"]) >= 1
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "0"


def test_every_response_reports_the_contacts_budget(api, limit_of):
    limit_of(10)
    response = api.get("contacts/search/")
    assert response["X-RateLimit-Limit"] == "10"
    assert response["X-RateLimit-Remaining"] == "9"


def test_a_refused_create_creates_nothing(api, limit_of):
    limit_of(1)
    assert_envelope(api.post("contacts/create/", {"name": "a", "phone_number": "0712345678"}), 201)
    response = api.post("contacts/create/", {"name": "b", "phone_number": "0712345679"})
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    assert Contact.objects.count() == 1


def test_an_import_of_many_rows_counts_as_one_operation(api, limit_of):
    limit_of(2)
    rows = "".join(f"P{n},+25571{n:07d}\n" for n in range(300))
    response = api.client.post(
        "/api/integration/v1/contacts/import/",
        data=("name,phone_number\n" + rows).encode(),
        content_type="text/csv",
    )
    assert assert_envelope(response, 200)["data"]["created"] == 300
    assert response["X-RateLimit-Remaining"] == "1"
    assert_envelope(api.get("contacts/search/"), 200)
    assert_envelope(api.get("contacts/search/"), 429, "RATE_LIMIT_EXCEEDED")


def test_segments_share_the_contacts_budget(api, limit_of):
    limit_of(2)
    assert_envelope(api.get("contacts/search/"), 200)
    assert_envelope(api.get("contacts/segments/"), 200)
    response = api.post("contacts/segments/create/", {"name": "x"})
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")


def test_the_platform_default_applies_without_an_account_override(api, settings):
    settings.MIFUMO_RATE_LIMITS = {**settings.MIFUMO_RATE_LIMITS, "contacts": (2, 3600)}
    assert_envelope(api.get("contacts/segments/"), 200)
    assert api.get("contacts/export/").status_code == 200
    assert_envelope(api.get("contacts/search/"), 429, "RATE_LIMIT_EXCEEDED")


def test_an_exhausted_contacts_budget_leaves_other_endpoints_alone(api, limit_of):
    limit_of(1)
    assert_envelope(api.get("contacts/search/"), 200)
    assert_envelope(api.get("contacts/search/"), 429, "RATE_LIMIT_EXCEEDED")
    assert_envelope(api.get("sms/balance/"), 200)


def test_each_account_has_its_own_contacts_budget(api, limit_of, bob, api_for):
    limit_of(1)
    assert_envelope(api.get("contacts/search/"), 200)
    assert_envelope(api.get("contacts/search/"), 429, "RATE_LIMIT_EXCEEDED")
    assert_envelope(api_for(bob).get("contacts/search/"), 200)


def test_a_refused_export_is_a_json_envelope_not_csv(api, limit_of):
    limit_of(1)
    assert api.get("contacts/export/").status_code == 200
    response = api.get("contacts/export/", HTTP_ACCEPT="text/csv")
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    assert response["Retry-After"]
