"""The CSV import's opted_out column: opt-outs recorded with the source import and announced,
bad values refused, and a false value that never overrides a customer's own opt-out."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.models import Contact, OptOutChange
from contacts.services import contact_import, contact_opt_out
from integration.models import Account
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope
from tests.webhooks.receiver import Receiver
from webhooks.endpoints import endpoint_create
from webhooks.models import Event

URL = "/api/integration/v1/contacts/import/"


def upload(api: Any, text: str, **fields: str) -> dict[str, Any]:
    file = SimpleUploadedFile("contacts.csv", text.encode(), content_type="text/csv")
    response = api.client.post(URL, {"file": file, **fields}, format="multipart")
    return assert_envelope(response, 200)["data"]


def history(account: Account, phone: str) -> list[tuple[bool, str]]:
    changes = OptOutChange.objects.filter(contact__account=account, contact__phone_number=phone)
    return [(c.opted_out, c.source) for c in changes.order_by("created_at", "id")]


def test_new_contacts_are_created_opted_out_with_history_and_events(
    api: Any, alice: Account, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_create(account=alice, url=receiver.url, events=["contact.opted_out"])
    text = (
        "name,phone_number,opted_out\n"
        "Asha,0712000001,true\nJuma,0712000002,NDIYO\nNeema,0712000003,no\nBaraka,0712000004,\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        data = upload(api, text)
    assert (data["created"], data["opted_out"], data["opted_in"], data["left_opted_out"]) == (
        4,
        2,
        0,
        0,
    )
    contacts = {c.phone_number: c for c in Contact.objects.filter(account=alice)}
    assert {p for p, c in contacts.items() if c.opted_out} == {"+255712000001", "+255712000002"}
    assert all(c.opted_out_at for c in contacts.values() if c.opted_out)
    assert history(alice, "+255712000001") == [(True, "import")]
    assert history(alice, "+255712000003") == []
    payloads = sorted((hit.json() for hit in receiver.requests), key=lambda p: p["phone"])
    assert [(p["event"], p["phone"], p["source"], p["contact_id"]) for p in payloads] == [
        ("contact.opted_out", "+255712000001", "import", contacts["+255712000001"].id),
        ("contact.opted_out", "+255712000002", "import", contacts["+255712000002"].id),
    ]


@pytest.mark.parametrize("on_duplicate", ["skip", "update"])
def test_existing_contacts_are_opted_out_whether_skipped_or_updated(
    api: Any, alice: Account, on_duplicate: str
) -> None:
    make_contact(alice, 1, name="Old name")
    already = make_contact(alice, 2)
    contact_opt_out(contact=already, source="keyword")
    text = "name,phone_number,opted_out\nNew name,+255710000001,yes\nX,+255710000002,1\n"
    data = upload(api, text, on_duplicate=on_duplicate)
    assert data["opted_out"] == 1  # the second already was: nothing recorded twice
    first = Contact.objects.get(account=alice, phone_number="+255710000001")
    assert first.opted_out
    assert first.name == ("New name" if on_duplicate == "update" else "Old name")
    assert history(alice, "+255710000001") == [(True, "import")]
    assert history(alice, "+255710000002") == [(True, "keyword")]


@pytest.mark.parametrize("source", ["keyword", "carrier", "api", "dashboard"])
def test_false_does_not_opt_back_in_a_contact_opted_out_elsewhere(
    api: Any, alice: Account, source: str
) -> None:
    contact = make_contact(alice, 1)
    contact_opt_out(contact=contact, source=source)
    text = "name,phone_number,opted_out\nA,+255710000001,false\n"
    data = upload(api, text, on_duplicate="update")
    assert (data["opted_in"], data["left_opted_out"]) == (0, 1)
    contact.refresh_from_db()
    assert contact.opted_out
    assert history(alice, "+255710000001") == [(True, source)]


@pytest.mark.parametrize("source", ["keyword", "carrier", "api", "dashboard"])
def test_false_does_not_opt_back_in_a_contact_that_confirmed_an_imports_opt_out(
    api: Any, alice: Account, receiver: Receiver, source: str
) -> None:
    """An import opted the phone out; then the customer asked too (a STOP already opted out
    changes nothing on the contact). A later import cannot take the customer's word back."""
    endpoint_create(account=alice, url=receiver.url, events=["contact.opted_out"])
    upload(api, "name,phone_number,opted_out\nA,+255710000001,true\n")
    contact = Contact.objects.get(account=alice)
    contact_opt_out(contact=contact, source=source)
    assert Event.objects.filter(type="contact.opted_out").count() == 1  # the import's only
    data = upload(api, "name,phone_number,opted_out\nA,+255710000001,false\n")
    assert (data["opted_in"], data["left_opted_out"]) == (0, 1)
    contact.refresh_from_db()
    assert contact.opted_out
    assert history(alice, "+255710000001") == [(True, "import"), (True, source)]


def test_a_contact_opted_out_without_history_stays_opted_out(api: Any, alice: Account) -> None:
    make_contact(alice, 1, opted_out=True)
    data = upload(api, "name,phone_number,opted_out\nA,+255710000001,hapana\n")
    assert data["left_opted_out"] == 1
    assert Contact.objects.get(account=alice).opted_out


def test_false_opts_back_in_what_an_import_opted_out(
    api: Any, alice: Account, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_create(account=alice, url=receiver.url, events=["contact.opted_in"])
    upload(api, "name,phone_number,opted_out\nA,+255710000001,true\n")
    with django_capture_on_commit_callbacks(execute=True):
        data = upload(api, "name,phone_number,opted_out\nA,+255710000001,False\n")
    assert (data["opted_in"], data["left_opted_out"]) == (1, 0)
    contact = Contact.objects.get(account=alice)
    assert not contact.opted_out and contact.opted_out_at is None
    assert history(alice, "+255710000001") == [(True, "import"), (False, "import")]
    [hit] = receiver.requests
    assert (hit.json()["event"], hit.json()["source"]) == ("contact.opted_in", "import")


def test_without_an_endpoint_no_event_is_written(api: Any, alice: Account) -> None:
    upload(api, "name,phone_number,opted_out\nA,+255710000001,true\n")
    assert not Event.objects.exists()
    assert history(alice, "+255710000001") == [(True, "import")]


@pytest.mark.parametrize("value", ["maybe", "y", "2", "ndio"])
def test_a_bad_value_is_a_row_error_naming_the_column(api: Any, value: str) -> None:
    data = upload(api, f"name,phone_number,opted_out\nA,+255710000001,{value}\nB,+255710000002,0\n")
    assert (data["created"], data["failed"]) == (1, 1)
    [error] = data["errors"]
    assert (error["row"], error["field"]) == (2, "opted_out")
    assert f"'{value}'" in error["reason"] and "ndiyo" in error["reason"]
    assert not OptOutChange.objects.exists()


def test_opted_out_is_not_a_custom_field_column(api: Any, alice: Account) -> None:
    data = upload(api, "name,phone_number,opted_out,city\nA,+255710000001,true,Moshi\n")
    assert data["ignored_columns"] == []
    contact = Contact.objects.get(account=alice)
    assert contact.custom_fields == {"city": "Moshi"} and contact.opted_out


def test_opt_outs_across_batches_are_each_recorded_once(alice: Account) -> None:
    rows = "".join(f"P{n},+2557100{n:05d},{'true' if n % 2 else 'false'}\n" for n in range(2500))
    result = contact_import(
        account=alice, data=("name,phone_number,opted_out\n" + rows).encode(), on_duplicate="skip"
    )
    assert (result.created, result.opted_out) == (2500, 1250)
    assert OptOutChange.objects.filter(source="import", opted_out=True).count() == 1250
    assert Contact.objects.filter(account=alice, opted_out=True).count() == 1250


def test_an_export_with_opt_outs_imports_back_losslessly(
    api: Any, alice: Account, bob: Account, api_for: Any
) -> None:
    for n in range(6):
        contact = make_contact(alice, n, is_active=n != 3)
        if n % 2:
            contact_opt_out(contact=contact, source="keyword")
    exported = api.client.get("/api/integration/v1/contacts/export/").getvalue()
    file = SimpleUploadedFile("export.csv", exported, content_type="text/csv")
    response = api_for(bob).client.post(URL, {"file": file}, format="multipart")
    data = assert_envelope(response, 200)["data"]
    assert (data["created"], data["opted_out"], data["failed"]) == (6, 3, 0)

    def snapshot(account: Account) -> list[tuple[Any, ...]]:
        return sorted(
            Contact.objects.filter(account=account).values_list(
                "name", "phone_number", "is_active", "opted_out"
            )
        )

    assert snapshot(bob) == snapshot(alice)


def test_a_test_keys_import_announces_to_test_endpoints_only(
    alice: Account, api_for: Any, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    live = endpoint_create(account=alice, url=receiver.url, events=["contact.opted_out"])
    test = endpoint_create(account=alice, url=receiver.url, events=["contact.opted_out"], test=True)
    with django_capture_on_commit_callbacks(execute=True):
        upload(api_for(alice, test=True), "name,phone_number,opted_out\nA,+255710000001,1\n")
    [event] = Event.objects.all()
    assert event.is_test
    assert list(event.deliveries.values_list("endpoint_id", flat=True)) == [test.pk]
    assert live.deliveries.count() == 0 and len(receiver.requests) == 1
