"""Segment criteria on contact custom fields: equality, validation, and the index."""

import pytest
from django.db import connection

from contacts.models import Contact
from segments.criteria import criteria_q
from segments.models import Segment
from tests.contacts.factories import make_contact
from tests.helpers import assert_envelope
from tests.segments.test_criteria import members


@pytest.fixture
def people(alice):
    specs = {
        "a": {"city": "Arusha", "tier": "gold"},
        "b": {"city": "Arusha"},
        "c": {"city": "arusha", "tier": "gold"},
        "d": {},
        "e": {"city": "Moshi", "tier": "gold"},
    }
    return {
        name: make_contact(alice, n, name=name, custom_fields=fields)
        for n, (name, fields) in enumerate(specs.items())
    }


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"custom_fields": {"city": "Arusha"}}, "ab"),
        ({"custom_fields": {"city": "Arusha", "tier": "gold"}}, "a"),
        ({"custom_fields": {"tier": "gold"}}, "ace"),
        ({"custom_fields": {"city": "Dodoma"}}, ""),
        ({"custom_fields": {"tier": "gold"}, "tags": ["vip"]}, ""),
    ],
)
def test_custom_field_criteria_match_equal_values(api, people, criteria, expected):
    assert members(api, criteria) == set(expected)


def test_custom_field_criteria_are_stored_sorted_by_key(api):
    criteria = {"custom_fields": {"tier": "gold", "city": "Arusha"}}
    created = api.post("contacts/segments/create/", {"name": "s", "criteria": criteria})
    stored = assert_envelope(created, 201)["data"]["criteria"]["custom_fields"]
    assert list(stored.items()) == [("city", "Arusha"), ("tier", "gold")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({}, "at least one"),
        ("Arusha", "must be an object"),
        ({"City": "Arusha"}, "not a valid key"),
        ({"city": 1}, "must be a string"),
        ({"city": None}, "must be a string"),
    ],
)
def test_bad_custom_field_criteria_are_validation_errors(api, value, reason):
    body = assert_envelope(
        api.post("contacts/segments/create/", {"name": "x", "criteria": {"custom_fields": value}}),
        400,
        "VALIDATION_ERROR",
    )
    assert reason in body["details"]["criteria"]["custom_fields"][0]
    assert not Segment.objects.exists()


def test_custom_field_criteria_are_a_condition_the_gin_index_serves(people):
    # The ORM must emit the operator the index's opclass (jsonb_path_ops) serves: @>.
    condition = criteria_q({"custom_fields": {"city": "Arusha"}})
    sql, params = Contact.objects.filter(condition).values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        # The table is tiny here; with scans off the plan shows whether the index can serve it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "contact_custom_fields_gin" in plan
