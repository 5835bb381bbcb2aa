from datetime import UTC, datetime, timedelta

import pytest

from contacts.models import Contact
from contacts.selectors import contact_queryset, contact_search
from segments.models import Segment
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope

URL = "contacts/search/"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ids(response):
    return [c["id"] for c in response.json()["data"]["contacts"]]


@pytest.fixture
def people(alice):
    return {
        "john": make_contact(
            alice,
            1,
            name="John Doe",
            phone_number="+255712345678",
            email="john@example.com",
            created_at=T0,
        ),
        "asha": make_contact(
            alice,
            2,
            name="Asha Mwinyi",
            phone_number="+255754111222",
            email="asha@mail.co.tz",
            created_at=T0 + timedelta(days=1),
        ),
        "juma": make_contact(
            alice,
            3,
            name="Juma Johnson",
            phone_number="+255688000999",
            email="",
            created_at=T0 + timedelta(days=2),
        ),
    }


def test_without_q_lists_the_accounts_contacts_newest_first(api, people):
    body = assert_envelope(api.get(URL), 200)
    assert body["message"] == "Contacts retrieved successfully"
    assert ids(api.get(URL)) == [people[n].id for n in ("juma", "asha", "john")]
    assert body["data"]["pagination"] == {"limit": 20, "offset": 0, "total": 3}
    first = body["data"]["contacts"][0]
    assert set(first) == {
        "id",
        "name",
        "custom_fields",
        "phone_number",
        "email",
        "tags",
        "is_active",
        "opted_out",
        "opted_out_at",
        "created_at",
        "updated_at",
    }


def test_limit_and_offset_page_through_the_list(api, people):
    body = api.get(URL, {"limit": 2, "offset": 1}).json()["data"]
    assert [c["id"] for c in body["contacts"]] == [people["asha"].id, people["john"].id]
    assert body["pagination"] == {"limit": 2, "offset": 1, "total": 3}


def test_an_offset_past_the_end_answers_an_empty_page_with_the_total(api, people):
    body = assert_envelope(api.get(URL, {"offset": 10}), 200)["data"]
    assert body["contacts"] == []
    assert body["pagination"]["total"] == 3


def test_contacts_created_at_the_same_moment_are_ordered_by_id_descending(api, alice):
    made = [make_contact(alice, n, created_at=T0) for n in range(5)]
    expected = sorted((c.id for c in made), reverse=True)
    assert ids(api.get(URL)) == expected
    pages = ids(api.get(URL, {"limit": 2})) + ids(api.get(URL, {"limit": 2, "offset": 2}))
    assert pages == expected[:4]


@pytest.mark.parametrize(
    ("q", "who"),
    [
        ("john", {"john", "juma"}),
        ("JOHN", {"john", "juma"}),
        ("doe", {"john"}),
        ("mwin", {"asha"}),
        ("example.COM", {"john"}),
        ("mail.co", {"asha"}),
        ("  asha  ", {"asha"}),
        ("nobody", set()),
    ],
)
def test_q_is_a_case_insensitive_substring_of_name_or_email(api, people, q, who):
    assert set(ids(api.get(URL, {"q": q}))) == {people[n].id for n in who}


@pytest.mark.parametrize(
    "q",
    [
        "0712345678",
        "712345678",
        "+255712345678",
        "255712345678",
        "0712",
        "712",
        "+255712",
        "0712 345",
        "345678",
        "+255 712-345",
    ],
)
def test_every_format_of_a_phone_finds_the_same_contact(api, people, q):
    assert ids(api.get(URL, {"q": q})) == [people["john"].id]


def test_a_text_with_digits_that_is_not_phone_like_does_not_search_numbers(api, alice):
    make_contact(alice, 1, name="Room 7", phone_number="+255712345678")
    make_contact(alice, 2, name="Someone", phone_number="+255717777777")
    assert [c["name"] for c in api.get(URL, {"q": "room 7"}).json()["data"]["contacts"]] == [
        "Room 7"
    ]


def test_like_wildcards_in_q_are_taken_literally(api, alice):
    make_contact(alice, 1, name="100% Juice")
    make_contact(alice, 2, name="Plain")
    make_contact(alice, 3, name="under_score")
    assert len(ids(api.get(URL, {"q": "%"}))) == 1
    assert len(ids(api.get(URL, {"q": "_"}))) == 1


def test_the_total_counts_every_match_not_the_page(api, alice):
    for n in range(7):
        make_contact(alice, n, name=f"Neema {n}")
    make_contact(alice, 50, name="Other")
    body = api.get(URL, {"q": "neema", "limit": 3}).json()["data"]
    assert len(body["contacts"]) == 3
    assert body["pagination"] == {"limit": 3, "offset": 0, "total": 7}


def test_limit_100_is_allowed(api, people):
    assert_envelope(api.get(URL, {"limit": 100}), 200)


def test_empty_limit_and_offset_mean_the_defaults(api, people):
    body = assert_envelope(api.get(URL, {"limit": "", "offset": ""}), 200)
    assert body["data"]["pagination"] == {"limit": 20, "offset": 0, "total": 3}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": "99999999999999999999999"}, "offset"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
    ],
)
def test_bad_parameters_are_validation_errors_never_500(api, people, params, field):
    body = assert_envelope(api.get(URL, params), 400, "VALIDATION_ERROR")
    assert field in body["details"]


def test_segment_id_narrows_the_search_to_members(api, alice, people):
    Contact.objects.filter(pk=people["juma"].pk).update(tags=["vip"])
    Contact.objects.filter(pk=people["john"].pk).update(tags=["vip", "lead"])
    segment = Segment.objects.create(account=alice, name="VIP", criteria={"tags": ["vip"]})
    assert ids(api.get(URL, {"segment_id": segment.id})) == [people["juma"].id, people["john"].id]
    assert ids(api.get(URL, {"segment_id": segment.id, "q": "doe"})) == [people["john"].id]
    total = api.get(URL, {"segment_id": segment.id}).json()["data"]["pagination"]["total"]
    assert total == 2


def test_an_unknown_segment_id_is_not_found(api, people):
    body = assert_envelope(api.get(URL, {"segment_id": "seg_nope"}), 404, "NOT_FOUND")
    assert body["details"] == {"segment_id": "seg_nope"}


def test_another_accounts_segment_id_is_not_found(api, bob, people):
    theirs = Segment.objects.create(account=bob, name="Theirs", criteria={})
    assert_envelope(api.get(URL, {"segment_id": theirs.id}), 404, "NOT_FOUND")


def test_search_never_shows_another_accounts_contacts(api, bob, people):
    make_contact(bob, 9, name="John Bob", phone_number="+255712345670")
    found = ids(api.get(URL, {"q": "john"}))
    assert set(found) == {people["john"].id, people["juma"].id}
    assert api.get(URL).json()["data"]["pagination"]["total"] == 3


def test_search_without_a_key_is_invalid_credentials(anon):
    assert_envelope(anon.get(URL), 401, "INVALID_CREDENTIALS")


def test_post_on_search_is_method_not_allowed(api):
    assert_envelope(api.post(URL, {}), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    "q",
    [
        "",
        "  ",
        "amina",
        "AMINA",
        "ni ju",
        "0712",
        "712 000",
        "+255 712",
        "(0754)",
        "50%",
        "a_b",
        "x\\y",
        "ju2",
        "nobody",
    ],
)
@pytest.mark.parametrize(("limit", "offset"), [(20, 0), (3, 2), (5, 40)])
def test_the_search_in_sql_answers_as_the_orm_queryset_does(alice, bob, q, limit, offset):
    for n, (name, email) in enumerate(
        [
            ("Amina Juma", "amina@example.com"),
            ("Juma Ni Juma", ""),
            ("Asha 50% off", "a_b@example.com"),
            ("Back\\slash x\\y", "x@example.com"),
            ("Ajuma Ju2", "ju2@example.com"),
            ("Neema", "neema@example.com"),
        ]
        * 3
    ):
        make_contact(
            alice,
            n,
            name=name,
            email=email,
            phone_number=f"+2557120{n:05d}",
            created_at=T0 + timedelta(minutes=n % 4),
        )
        make_contact(bob, n, name=name, email=email)
    found = contact_search(account=alice, q=q, limit=limit, offset=offset)
    orm = contact_queryset(account=alice, q=q)
    assert found.total == orm.count()
    assert [c.pk for c in found.contacts] == [c.pk for c in orm[offset : offset + limit]]
    assert all(isinstance(c, Contact) and c.account_id == alice.pk for c in found.contacts)
