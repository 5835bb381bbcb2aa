"""Another account's contact ids answer 404 on every endpoint and are never changed."""

import pytest

from contacts.models import Contact
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope


@pytest.fixture
def bobs(bob):
    return make_contact(bob, 1, name="Bob's contact", tags=["b"])


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "", None),
        ("patch", "", {"name": "Stolen"}),
        ("delete", "", None),
        ("post", "opt-out/", None),
        ("post", "opt-in/", None),
    ],
)
def test_another_accounts_contact_is_not_found(api, bobs, method, path, payload):
    url = f"contacts/{bobs.id}/{path}"
    call = getattr(api, method)
    response = call(url, payload) if payload is not None else call(url)
    assert_envelope(response, 404, "NOT_FOUND")
    after = Contact.objects.get(pk=bobs.pk)
    assert (after.name, after.opted_out) == ("Bob's contact", False)


def test_the_not_found_answer_does_not_reveal_that_the_id_exists(api, bobs):
    theirs = api.get(f"contacts/{bobs.id}/").json()
    unknown = api.get("contacts/con_01JAAAAAAAAAAAAAAAAAAAAAAA/").json()
    assert theirs["message"] == unknown["message"]


def test_a_contact_is_visible_to_its_own_account(api_for, bob, bobs):
    assert_envelope(api_for(bob).get(f"contacts/{bobs.id}/"), 200)


def test_the_same_number_in_two_accounts_are_separate_contacts(api, alice, bobs):
    response = api.post("contacts/create/", {"name": "Mine", "phone_number": bobs.phone_number})
    mine = assert_envelope(response, 201)["data"]
    api.post(f"contacts/{mine['id']}/opt-out/")
    assert Contact.objects.get(pk=bobs.pk).opted_out is False
