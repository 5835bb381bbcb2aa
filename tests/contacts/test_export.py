import csv
import io
from datetime import UTC, datetime, timedelta

from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.models import Contact
from segments.models import Segment
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope

URL = "contacts/export/"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def rows(response):
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.getvalue().decode())))


def test_export_streams_a_csv_of_the_accounts_contacts_oldest_first(api, alice):
    make_contact(
        alice,
        1,
        name="Second",
        created_at=T0 + timedelta(days=1),
        tags=["vip", "a"],
        email="s@example.com",
        is_active=False,
    )
    make_contact(alice, 2, name="First", created_at=T0)
    response = api.get(URL)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="contacts-')
    assert rows(response) == [
        ["name", "phone_number", "email", "tags", "is_active", "opted_out"],
        ["First", "+255710000002", "", "", "true", "false"],
        ["Second", "+255710000001", "s@example.com", "vip;a", "false", "false"],
    ]


def test_export_carries_the_rate_limit_headers(api, alice):
    response = api.get(URL)
    assert response["X-RateLimit-Limit"]
    assert response["X-RateLimit-Remaining"]


def test_export_quotes_commas_and_quotes_in_names(api, alice):
    make_contact(alice, 1, name='Doe, John "JD"')
    assert rows(api.get(URL))[1][0] == 'Doe, John "JD"'


def test_export_of_an_empty_account_is_the_header_alone(api):
    header = ["name", "phone_number", "email", "tags", "is_active", "opted_out"]
    assert rows(api.get(URL)) == [header]


def test_export_never_includes_another_accounts_contacts(api, alice, bob):
    make_contact(alice, 1, name="Mine")
    make_contact(bob, 2, name="Theirs")
    assert [r[0] for r in rows(api.get(URL))[1:]] == ["Mine"]


def test_export_with_segment_id_has_only_the_members(api, alice):
    make_contact(alice, 1, name="Vip", tags=["vip"])
    make_contact(alice, 2, name="Plain")
    segment = Segment.objects.create(account=alice, name="VIP", criteria={"tags": ["vip"]})
    assert [r[0] for r in rows(api.get(URL, {"segment_id": segment.id}))[1:]] == ["Vip"]


def test_export_with_an_unknown_or_foreign_segment_is_a_not_found_envelope(api, bob):
    theirs = Segment.objects.create(account=bob, name="Theirs")
    for segment_id in ("seg_nope", theirs.id):
        assert_envelope(api.get(URL, {"segment_id": segment_id}), 404, "NOT_FOUND")


def test_export_honours_accept_text_csv(api, alice):
    make_contact(alice, 1)
    assert len(rows(api.get(URL, HTTP_ACCEPT="text/csv"))) == 2


def test_errors_stay_json_envelopes_even_when_csv_is_asked_for(anon):
    assert_envelope(anon.get(URL, HTTP_ACCEPT="text/csv"), 401, "INVALID_CREDENTIALS")


def test_an_export_imports_back_into_an_identical_set_of_contacts(api, alice, bob, api_for):
    for n in range(30):
        make_contact(
            alice,
            n,
            name=f"Person {n}",
            tags=["t", f"g{n % 3}"],
            email=f"p{n}@example.com" if n % 2 else "",
            is_active=n % 4 != 0,
        )
    exported = api.get(URL).getvalue()
    file = SimpleUploadedFile("export.csv", exported, content_type="text/csv")
    response = api_for(bob).client.post(
        "/api/integration/v1/contacts/import/", {"file": file}, format="multipart"
    )
    assert assert_envelope(response, 200)["data"]["created"] == 30

    def snapshot(account):
        return sorted(
            Contact.objects.filter(account=account).values_list(
                "name", "phone_number", "email", "tags", "is_active"
            )
        )

    assert snapshot(bob) == snapshot(alice)


def test_post_on_export_is_method_not_allowed(api):
    assert_envelope(api.post(URL, {}), 405, "METHOD_NOT_ALLOWED")
