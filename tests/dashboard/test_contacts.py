"""Contacts and segments in the dashboard, read and imported through their apps."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from contacts.models import Contact
from dashboard.models import AuditEvent
from integration.models import Account
from segments.models import Segment
from tests.dashboard.data import make_message
from tests.dashboard.support import dash

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(alice: Account) -> list[Contact]:
    return [
        Contact.objects.create(
            account=alice, name="Asha Mwinyi", phone_number="+255712000001", tags=["vip"]
        ),
        Contact.objects.create(account=alice, name="Juma Said", phone_number="+255754000002"),
        Contact.objects.create(
            account=alice, name="Neema", phone_number="+255765000003", email="neema@example.com"
        ),
    ]


def names(response: Any) -> list[str]:
    return [c.name for c in response.context["page"].object_list]


def test_contacts_are_listed_and_searched(owner_client: Client, people: list[Contact]) -> None:
    assert names(owner_client.get(dash("contacts/"))) == ["Neema", "Juma Said", "Asha Mwinyi"]
    assert names(owner_client.get(dash("contacts/"), {"q": "juma"})) == ["Juma Said"]
    assert names(owner_client.get(dash("contacts/"), {"q": "0754 000"})) == ["Juma Said"]
    assert names(owner_client.get(dash("contacts/"), {"q": "example.com"})) == ["Neema"]


def test_a_contact_page_lists_messages_to_the_number(
    owner_client: Client, alice: Account, people: list[Contact]
) -> None:
    message = make_message(alice, phones=[people[0].phone_number])
    page = owner_client.get(dash(f"contacts/{people[0].pk}/")).content.decode()
    assert "Asha Mwinyi" in page and message.pk in page


def test_a_segment_shows_its_members(
    owner_client: Client, alice: Account, people: list[Contact]
) -> None:
    segment = Segment.objects.create(account=alice, name="VIP", criteria={"tags": ["vip"]})
    listing = owner_client.get(dash("segments/"))
    assert listing.context["rows"] == [(segment, 1)]
    page = owner_client.get(dash(f"segments/{segment.pk}/"))
    assert page.context["count"] == 1
    assert names(page) == ["Asha Mwinyi"]
    assert names(owner_client.get(dash(f"segments/{segment.pk}/"), {"q": "juma"})) == []


def test_importing_a_csv(owner_client: Client, alice: Account, people: list[Contact]) -> None:
    data = b"name,phone_number,tags\nZawadi,0713 000 004,new\nAsha again,+255712000001,\n"
    response = owner_client.post(
        dash("contacts/import/"),
        {"file": SimpleUploadedFile("people.csv", data, "text/csv"), "on_duplicate": "skip"},
        follow=True,
    )
    assert b"Imported: 1 created, 0 updated, 1 skipped." in response.content
    assert Contact.objects.get(phone_number="+255713000004").tags == ["new"]
    assert Contact.objects.get(phone_number="+255712000001").name == "Asha Mwinyi"
    event = AuditEvent.objects.get(action="contacts.imported")
    assert event.target == "people.csv" and event.details["created"] == 1


def test_rows_with_errors_are_listed(owner_client: Client) -> None:
    data = b"name,phone_number\nGood,+255712000009\nBad,12\n"
    response = owner_client.post(
        dash("contacts/import/"),
        {"file": SimpleUploadedFile("p.csv", data, "text/csv"), "on_duplicate": "skip"},
    )
    assert response.status_code == 200
    assert response.context["result"].failed == 1
    content = response.content.decode()
    assert "1 rows with errors" in content and "phone_number" in content


def test_a_file_that_is_not_a_csv_is_refused(owner_client: Client) -> None:
    response = owner_client.post(
        dash("contacts/import/"),
        {"file": SimpleUploadedFile("x.csv", b"nonsense\n", "text/csv"), "on_duplicate": "skip"},
    )
    assert response.status_code == 400
    assert b"The CSV file is not valid" in response.content
    assert not Contact.objects.exists()


def test_a_member_cannot_import(member_client: Client) -> None:
    page = member_client.get(dash("contacts/import/"))
    assert b'enctype="multipart/form-data"' not in page.content
    response = member_client.post(
        dash("contacts/import/"),
        {"file": SimpleUploadedFile("p.csv", b"name,phone_number\nA,+255712000009\n")},
    )
    assert response.status_code == 403 and not Contact.objects.exists()
