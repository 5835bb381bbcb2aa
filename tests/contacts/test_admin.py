import pytest

from contacts.admin import ContactAdmin
from contacts.models import Contact, OptOutChange
from contacts.services import contact_set_opted_out
from segments.models import Segment
from tests.contacts.factories import make_contact


@pytest.fixture
def contacts(alice):
    return [
        make_contact(alice, 1, name="Asha", tags=["vip"]),
        make_contact(alice, 2, name="Juma", opted_out=True),
    ]


def test_the_contact_list_is_searchable_and_filterable(admin_client, contacts):
    page = admin_client.get("/admin/contacts/contact/", {"q": "asha"})
    assert page.status_code == 200
    assert b"Asha" in page.content and b"Juma" not in page.content
    page = admin_client.get("/admin/contacts/contact/", {"opted_out__exact": "1"})
    assert b"Juma" in page.content and b"Asha" not in page.content
    page = admin_client.get("/admin/contacts/contact/", {"q": contacts[0].phone_number[4:]})
    assert b"Asha" in page.content


def test_the_contact_form_normalises_phone_and_tags(admin_client, alice):
    response = admin_client.post(
        "/admin/contacts/contact/add/",
        {
            "account": alice.pk,
            "name": "New",
            "phone_number": "0712 345 678",
            "email": "",
            "tags": "VIP; lead|vip",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    contact = Contact.objects.get(name="New")
    assert contact.phone_number == "+255712345678"
    assert contact.tags == ["vip", "lead"]


def test_the_contact_form_refuses_a_bad_phone(admin_client, alice):
    response = admin_client.post(
        "/admin/contacts/contact/add/",
        {"account": alice.pk, "name": "New", "phone_number": "123", "tags": ""},
    )
    assert response.status_code == 200
    assert b"is not a valid phone number" in response.content
    assert not Contact.objects.exists()


def test_the_contact_change_page_shows_tags_as_text(admin_client, contacts):
    page = admin_client.get(f"/admin/contacts/contact/{contacts[0].pk}/change/")
    assert page.status_code == 200
    assert b'value="vip"' in page.content


def change_form(contact, **changes):
    form = {
        "account": contact.account_id,
        "name": contact.name,
        "phone_number": contact.phone_number,
        "email": contact.email,
        "tags": ", ".join(contact.tags),
        "is_active": "on",
        **changes,
    }
    if contact.opted_out:
        form.setdefault("opted_out", "on")
    return {k: v for k, v in form.items() if v is not None}


def test_renaming_a_contact_keeps_an_opt_out_made_while_the_page_was_open(
    admin_client, contacts, monkeypatch
):
    asha = contacts[0]
    read = ContactAdmin.get_object

    def read_then_the_phone_opts_out(self, request, *args):
        contact = read(self, request, *args)
        if request.method == "POST":
            contact_set_opted_out(contact=Contact.objects.get(pk=asha.pk), opted_out=True)
        return contact

    monkeypatch.setattr(ContactAdmin, "get_object", read_then_the_phone_opts_out)
    page = f"/admin/contacts/contact/{asha.pk}/change/"
    response = admin_client.post(page, change_form(asha, name="Asha M."))
    assert response.status_code == 302, response.content[:2000]
    asha.refresh_from_db()
    assert (asha.name, asha.opted_out) == ("Asha M.", True)


def test_an_operator_opting_a_contact_in_is_recorded_in_its_history(admin_client, contacts):
    juma = contacts[1]
    form = change_form(juma, opted_out=None)
    response = admin_client.post(f"/admin/contacts/contact/{juma.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    juma.refresh_from_db()
    assert not juma.opted_out and juma.opted_out_at is None
    change = OptOutChange.objects.get(contact=juma)
    assert (change.opted_out, change.source) == (False, "dashboard")


def test_the_segment_admin_lists_validates_and_counts(admin_client, alice, contacts):
    segment = Segment.objects.create(account=alice, name="VIP", criteria={"tags": ["vip"]})
    page = admin_client.get("/admin/segments/segment/", {"q": "vip"})
    assert page.status_code == 200 and b"VIP" in page.content
    page = admin_client.get(f"/admin/segments/segment/{segment.pk}/change/")
    assert page.status_code == 200
    response = admin_client.post(
        "/admin/segments/segment/add/",
        {"account": alice.pk, "name": "Bad", "description": "", "criteria": '{"colour": 1}'},
    )
    assert response.status_code == 200
    assert b"colour" in response.content
    assert not Segment.objects.filter(name="Bad").exists()


def test_an_opted_out_contact_keeps_its_number(admin_client, contacts):
    juma = contacts[1]
    response = admin_client.post(
        f"/admin/contacts/contact/{juma.pk}/change/",
        change_form(juma, phone_number="+255754999888"),
    )
    assert response.status_code == 200
    assert "its number cannot change" in response.content.decode()
    juma.refresh_from_db()
    assert juma.phone_number != "+255754999888" and juma.opted_out


def test_a_contact_not_opted_out_may_change_number(admin_client, contacts):
    asha = contacts[0]
    response = admin_client.post(
        f"/admin/contacts/contact/{asha.pk}/change/", change_form(asha, phone_number="0754999888")
    )
    assert response.status_code == 302, response.content[:2000]
    asha.refresh_from_db()
    assert asha.phone_number == "+255754999888"


def test_an_opted_out_contact_cannot_be_deleted_alone_or_in_a_selection(admin_client, contacts):
    asha, juma = contacts
    page = f"/admin/contacts/contact/{juma.pk}/delete/"
    assert admin_client.post(page, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        "/admin/contacts/contact/",
        {"action": "delete_selected", "_selected_action": [asha.pk, juma.pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert set(Contact.objects.values_list("pk", flat=True)) == {asha.pk, juma.pk}
    response = admin_client.post(f"/admin/contacts/contact/{asha.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Contact.objects.filter(pk=asha.pk).exists()
