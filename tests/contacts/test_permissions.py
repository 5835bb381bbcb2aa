import pytest

from integration.models import Permission
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope


@pytest.fixture
def reader(alice, api_for):
    return api_for(alice, Permission.READ)


@pytest.fixture
def writer(alice, api_for):
    return api_for(alice, Permission.WRITE)


def test_a_read_key_cannot_create_a_contact(reader):
    response = reader.post("contacts/create/", {"name": "x", "phone_number": "0712345678"})
    body = assert_envelope(response, 403, "PERMISSION_DENIED")
    assert "write" in body["message"]


def test_a_read_key_cannot_change_contacts(reader, alice):
    contact = make_contact(alice, 1)
    for response in (
        reader.patch(f"contacts/{contact.id}/", {"name": "x"}),
        reader.delete(f"contacts/{contact.id}/"),
        reader.post(f"contacts/{contact.id}/opt-out/"),
        reader.post(f"contacts/{contact.id}/opt-in/"),
        reader.client.post(
            "/api/integration/v1/contacts/import/",
            data=b"name,phone_number\n",
            content_type="text/csv",
        ),
    ):
        assert_envelope(response, 403, "PERMISSION_DENIED")
    contact.refresh_from_db()
    assert contact.name == "Contact 1"


def test_a_read_key_can_read_contacts(reader, alice):
    contact = make_contact(alice, 1)
    assert_envelope(reader.get("contacts/search/"), 200)
    assert_envelope(reader.get(f"contacts/{contact.id}/"), 200)
    assert reader.get("contacts/export/").status_code == 200


def test_a_write_key_can_create_a_contact(writer):
    response = writer.post("contacts/create/", {"name": "x", "phone_number": "0712345678"})
    assert_envelope(response, 201)


def test_a_read_key_cannot_create_a_segment(reader):
    assert_envelope(
        reader.post("contacts/segments/create/", {"name": "x"}), 403, "PERMISSION_DENIED"
    )
    assert_envelope(reader.get("contacts/segments/"), 200)


def test_a_read_key_cannot_change_or_delete_a_segment(reader, alice):
    from segments.models import Segment

    segment = Segment.objects.create(account=alice, name="VIP")
    assert_envelope(
        reader.patch(f"contacts/segments/{segment.id}/", {"name": "x"}), 403, "PERMISSION_DENIED"
    )
    assert_envelope(reader.delete(f"contacts/segments/{segment.id}/"), 403, "PERMISSION_DENIED")
    assert_envelope(reader.get(f"contacts/segments/{segment.id}/contacts/"), 200)
    assert Segment.objects.get(pk=segment.pk).name == "VIP"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "contacts/search/"),
        ("get", "contacts/export/"),
        ("post", "contacts/import/"),
        ("get", "contacts/con_x/"),
        ("patch", "contacts/con_x/"),
        ("delete", "contacts/con_x/"),
        ("post", "contacts/con_x/opt-out/"),
        ("post", "contacts/con_x/opt-in/"),
        ("get", "contacts/segments/"),
        ("post", "contacts/segments/create/"),
        ("get", "contacts/segments/seg_x/"),
        ("patch", "contacts/segments/seg_x/"),
        ("delete", "contacts/segments/seg_x/"),
        ("get", "contacts/segments/seg_x/contacts/"),
    ],
)
def test_every_endpoint_needs_a_key(anon, method, path):
    assert_envelope(getattr(anon, method)(path), 401, "INVALID_CREDENTIALS")
