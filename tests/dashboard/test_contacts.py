"""Contacts and segments in the dashboard, read and imported through their apps."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from contacts.models import Contact, OptOutChange
from contacts.services import contact_opt_out
from integration.models import Account, AuditEvent
from segments.models import Segment
from sms.services import message_send
from tests.contacts.factories import make_contact
from tests.dashboard.data import make_message
from tests.dashboard.support import dash, downloaded

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


def test_a_contact_page_shows_what_the_phone_received_of_a_personalised_message(
    owner_client: Client, alice: Account, people: list[Contact]
) -> None:
    message_send(account=alice, text="Habari {{name}}", recipients=[people[0].phone_number])
    page = owner_client.get(dash(f"contacts/{people[0].pk}/")).content.decode()
    assert "Habari Asha Mwinyi" in page and "{{name}}" not in page


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


def test_a_contact_is_added_edited_opted_out_and_in_and_deleted(
    owner_client: Client, alice: Account, owner: Any
) -> None:
    added = owner_client.post(
        dash("contacts/new/"),
        {
            "name": "Zawadi Mbwana",
            "phone_number": "0713 000 004",
            "email": "zawadi@example.com",
            "tags": "VIP, dar;lead",
            "is_active": "on",
        },
    )
    contact = Contact.objects.get(account=alice)
    assert added["Location"] == dash(f"contacts/{contact.pk}/")
    assert (contact.phone_number, contact.tags) == ("+255713000004", ["vip", "dar", "lead"])
    owner_client.post(
        dash(f"contacts/{contact.pk}/edit/"),
        {"name": "Zawadi M.", "phone_number": "+255713000004", "tags": "vip"},
    )
    contact.refresh_from_db()
    assert (contact.name, contact.tags, contact.is_active) == ("Zawadi M.", ["vip"], False)
    owner_client.post(dash(f"contacts/{contact.pk}/opt-out/"))
    contact.refresh_from_db()
    assert contact.opted_out and contact.opted_out_at is not None
    page = owner_client.get(dash(f"contacts/{contact.pk}/")).content.decode()
    assert "messages skip this number" in page and "Opt back in" in page
    kept = owner_client.post(dash(f"contacts/{contact.pk}/delete/"), follow=True)
    assert "the contact is kept so that no message reaches it again" in kept.content.decode()
    assert Contact.objects.filter(pk=contact.pk).exists()
    owner_client.post(dash(f"contacts/{contact.pk}/opt-in/"))
    contact.refresh_from_db()
    assert not contact.opted_out
    owner_client.post(dash(f"contacts/{contact.pk}/delete/"))
    assert not Contact.objects.exists()
    actions = list(
        AuditEvent.objects.filter(action__startswith="contact.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [
        "contact.created",
        "contact.updated",
        "contact.opted_out",
        "contact.opted_in",
        "contact.deleted",
    ]
    # What the form changed, the e-mail address it left empty included.
    assert AuditEvent.objects.get(action="contact.updated").details == {
        "name": "Zawadi M.",
        "email": "",
        "tags": ["vip"],
        "is_active": False,
    }


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"phone_number": "12"}, "Invalid phone number"),
        ({"phone_number": "+255712000001"}, "already exists"),
        ({"name": "  "}, "This field is required."),
        ({"email": "no"}, "Enter a valid email address."),
        ({"tags": "ok, " + "x" * 51}, "is longer than 50 characters"),
    ],
)
def test_a_bad_contact_is_explained_on_the_form(
    owner_client: Client, people: list[Contact], fields: dict[str, str], shown: str
) -> None:
    data = {"name": "New", "phone_number": "+255713000009", **fields}
    response = owner_client.post(dash("contacts/new/"), data)
    assert response.status_code == 400 and shown in response.content.decode()
    assert Contact.objects.count() == 3


def test_contacts_export_as_csv_with_the_search(
    owner_client: Client, people: list[Contact]
) -> None:
    everyone = owner_client.get(dash("contacts/export.csv"))
    lines = downloaded(everyone).splitlines()
    assert lines[0] == "name,phone_number,email,tags,is_active,opted_out" and len(lines) == 4
    searched = owner_client.get(dash("contacts/export.csv"), {"q": "juma"})
    assert downloaded(searched).splitlines()[1:] == ["Juma Said,+255754000002,,,true,false"]
    assert AuditEvent.objects.filter(action="contacts.exported").count() == 2


def test_contacts_are_paged_with_page_numbers(owner_client: Client, alice: Account) -> None:
    Contact.objects.bulk_create(
        Contact(account=alice, name=f"C{i}", phone_number=f"+2557130{i:05d}") for i in range(130)
    )
    page = owner_client.get(dash("contacts/"), {"page": 3}).content.decode()
    assert 'aria-current="page">3</span>' in page
    for number in (1, 2, 4, 5, 6):
        assert f'aria-label="Page {number}"' in page
    assert "Page 3 of 6 · 130 in all" in page


def test_a_member_can_read_and_export_but_change_nothing(
    member_client: Client, people: list[Contact]
) -> None:
    page = member_client.get(dash(f"contacts/{people[0].pk}/")).content.decode()
    assert "Opt out" not in page and "Edit" not in page
    assert member_client.get(dash("contacts/export.csv")).status_code == 200
    for path in [
        "contacts/new/",
        f"contacts/{people[0].pk}/edit/",
        f"contacts/{people[0].pk}/opt-out/",
        f"contacts/{people[0].pk}/delete/",
    ]:
        assert (
            member_client.post(
                dash(path), {"name": "x", "phone_number": "+255713000001"}
            ).status_code
            == 403
        )
    assert Contact.objects.count() == 3 and not Contact.objects.filter(opted_out=True).exists()


def test_a_segment_is_created_counted_edited_and_deleted(
    owner_client: Client, alice: Account, people: list[Contact]
) -> None:
    count = owner_client.get(dash("segments/count/"), {"tags": "vip", "opted_out": "false"})
    assert count.json() == {"count": 1, "errors": {}, "summary": "1 contact match now"}
    created = owner_client.post(
        dash("segments/new/"), {"name": "VIP", "description": "best", "tags": "VIP"}
    )
    segment = Segment.objects.get()
    assert created["Location"] == dash(f"segments/{segment.pk}/")
    assert segment.criteria == {"tags": ["vip"]}
    edit = owner_client.get(dash(f"segments/{segment.pk}/edit/"))
    assert edit.context["form"]["tags"].value() == "vip"
    assert "1 contact match now" in edit.content.decode()
    owner_client.post(
        dash(f"segments/{segment.pk}/edit/"),
        {"name": "Everyone active", "is_active": "true", "created_after": "2020-01-01"},
    )
    segment.refresh_from_db()
    assert segment.name == "Everyone active"
    assert segment.criteria == {"is_active": True, "created_after": "2020-01-01"}
    detail = owner_client.get(dash(f"segments/{segment.pk}/")).content.decode()
    assert f"messages/send/?segment={segment.pk}" in detail
    owner_client.post(dash(f"segments/{segment.pk}/delete/"))
    assert not Segment.objects.exists() and Contact.objects.count() == 3
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"segment.created", "segment.updated", "segment.deleted"} <= actions


def test_bad_segment_criteria_are_explained(
    owner_client: Client, alice: Account, people: list[Contact]
) -> None:
    Segment.objects.create(account=alice, name="VIP", criteria={})
    duplicate = owner_client.post(dash("segments/new/"), {"name": "vip"})
    assert duplicate.status_code == 400 and b"already exists" in duplicate.content
    backwards = {"name": "Range", "created_after": "2024-02-01", "created_before": "2024-01-01"}
    response = owner_client.post(dash("segments/new/"), backwards)
    assert response.status_code == 400 and b"Must be later than created_after" in response.content
    count = owner_client.get(dash("segments/count/"), backwards).json()
    assert count["count"] is None and "created_before" in count["errors"]
    assert Segment.objects.count() == 1


def test_segments_are_searched_and_paged(owner_client: Client, alice: Account) -> None:
    for n in range(30):
        Segment.objects.create(account=alice, name=f"Campaign {n}", criteria={})
    Segment.objects.create(account=alice, name="Wateja", description="loyal buyers")
    found = owner_client.get(dash("segments/"), {"q": "loyal"})
    assert [s.name for s, _ in found.context["rows"]] == ["Wateja"]
    second = owner_client.get(dash("segments/"), {"page": 2})
    assert len(second.context["rows"]) == 6 and b'aria-label="Page 1"' in second.content


def test_custom_fields_are_added_shown_edited_and_removed(
    owner_client: Client, alice: Account
) -> None:
    owner_client.post(
        dash("contacts/new/"),
        {
            "name": "Asha",
            "phone_number": "0713 000 004",
            "custom_fields": "city: Arusha\r\n\r\norder_id:  1043 \r\nnote: a: b",
            "is_active": "on",
        },
    )
    contact = Contact.objects.get(account=alice)
    assert contact.custom_fields == {"city": "Arusha", "order_id": "1043", "note": "a: b"}
    page = owner_client.get(dash(f"contacts/{contact.pk}/")).content.decode()
    assert "order_id</span>: 1043" in page
    form = owner_client.get(dash(f"contacts/{contact.pk}/edit/")).content.decode()
    assert "city: Arusha\nnote: a: b\norder_id: 1043" in form
    owner_client.post(
        dash(f"contacts/{contact.pk}/edit/"),
        {"name": "Asha", "phone_number": contact.phone_number, "custom_fields": "city: Moshi"},
    )
    contact.refresh_from_db()
    assert contact.custom_fields == {"city": "Moshi"}


@pytest.mark.parametrize(
    ("lines", "shown"),
    [
        ("city Arusha", "Line 1: write it as key: value."),
        ("City: Arusha", "is not a valid key"),
        ("name: x", "is reserved"),
        ("city: " + "a" * 256, "longer than 255 characters"),
    ],
)
def test_bad_custom_fields_are_explained_on_the_form(
    owner_client: Client, alice: Account, lines: str, shown: str
) -> None:
    response = owner_client.post(
        dash("contacts/new/"),
        {"name": "Asha", "phone_number": "0713000004", "custom_fields": lines},
    )
    assert response.status_code == 400 and shown in response.content.decode()
    assert not Contact.objects.exists()


def test_a_segment_on_custom_fields_is_counted_created_and_edited(
    owner_client: Client, alice: Account
) -> None:
    for n, city in enumerate(["Arusha", "Arusha", "Moshi"]):
        Contact.objects.create(
            account=alice,
            name=f"c{n}",
            phone_number=f"+25571200000{n}",
            custom_fields={"city": city, "tier": "gold" if n else "silver"},
        )
    count = owner_client.get(dash("segments/count/"), {"custom_fields": "city: Arusha"})
    assert count.json()["count"] == 2
    owner_client.post(
        dash("segments/new/"), {"name": "Arusha gold", "custom_fields": "city: Arusha\ntier: gold"}
    )
    segment = Segment.objects.get()
    assert segment.criteria == {"custom_fields": {"city": "Arusha", "tier": "gold"}}
    edit = owner_client.get(dash(f"segments/{segment.pk}/edit/"))
    assert edit.context["form"]["custom_fields"].value() == "city: Arusha\ntier: gold"
    assert "1 contact match now" in edit.content.decode()
    bad = owner_client.post(dash("segments/new/"), {"name": "Bad", "custom_fields": "City: x"})
    assert bad.status_code == 400 and b"is not a valid key" in bad.content
    assert Segment.objects.count() == 1


def test_the_dashboard_import_opts_out_and_reports_the_rule(
    owner_client: Client, alice: Account
) -> None:
    kept = make_contact(alice, 1)
    contact_opt_out(contact=kept, source="keyword")
    data = b"name,phone_number,opted_out\nA,+255710000001,no\nB,+255710000002,ndiyo\n"
    response = owner_client.post(
        dash("contacts/import/"),
        {"file": SimpleUploadedFile("p.csv", data, "text/csv"), "on_duplicate": "update"},
        follow=True,
    )
    content = response.content.decode()
    assert "1 created, 1 updated, 0 skipped." in content
    assert "1 opted out, 0 opted back in, 1 left opted out" in content
    assert Contact.objects.get(account=alice, phone_number="+255710000002").opted_out
    changes = OptOutChange.objects.filter(contact__phone_number="+255710000002")
    assert [c.source for c in changes] == ["import"]
    kept.refresh_from_db()
    assert kept.opted_out


def test_the_dashboard_lists_a_bad_opted_out_value(owner_client: Client) -> None:
    data = b"name,phone_number,opted_out\nA,+255710000001,perhaps\n"
    response = owner_client.post(
        dash("contacts/import/"),
        {"file": SimpleUploadedFile("p.csv", data, "text/csv"), "on_duplicate": "skip"},
    )
    content = response.content.decode()
    assert "1 rows with errors" in content and "opted_out" in content and "perhaps" in content
