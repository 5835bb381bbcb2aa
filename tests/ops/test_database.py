"""Statements bind their parameters on the server, and a statement a connection runs again
and again is prepared (planned once): what the settings ask of Django and the driver, read
off the wire. And the arrays of the batch statements (``mifumo.postgresql.base.Array``)
take their type from the statement's cast."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import DataError, connection
from psycopg.types.json import Jsonb

from integration.models import Account
from mifumo.postgresql.base import Array
from sms.models import Recipient
from tests.helpers import prepared_text, wire

pytestmark = pytest.mark.django_db

SECRET_NAME = "binding-probe-account"


def test_the_settings_bind_on_the_server_and_prepare_after_five_runs() -> None:
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["server_side_binding"] is True
    assert options["prepare_threshold"] == 5


def test_an_orm_querys_values_travel_apart_from_its_text(make_account: Any) -> None:
    make_account(SECRET_NAME)
    with wire() as statements:
        assert Account.objects.filter(name=SECRET_NAME).count() == 1
    [statement] = statements
    assert SECRET_NAME not in statement
    assert '"integration_account"."name" = $1' in statement


def test_a_query_run_again_and_again_is_prepared_once(make_account: Any) -> None:
    alice = make_account("alice")
    with wire() as statements:
        for _ in range(8):
            assert not Recipient.objects.filter(account=alice, status="queued").exists()
    prepares = [s for s in statements if s.startswith("PREPARE ")]
    executes = [s for s in statements if s.startswith("EXECUTE ")]
    # Five runs unprepared, then prepared once and run by name.
    assert len(prepares) == 1 and len(executes) == 3
    assert len(statements) == 8 + len(prepares)
    assert prepared_text(executes[0]).startswith('SELECT $1 AS "a" FROM "sms_recipient" WHERE')
    assert {prepared_text(e) for e in executes} == {prepared_text(executes[0])}


EAT = timezone(timedelta(hours=3))


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        (
            "text",
            ["plain", 'a " and a \\', "comma, {brace}", "NULL", "", " spaced ", None, "Habari ✓"],
        ),
        ("bigint", [1, -2, 2**40, None]),
        ("int", [0, 7, None]),
        (
            "timestamptz",
            [
                datetime(2026, 12, 6, 13, 5, 9, 123_456, tzinfo=UTC),
                datetime(2026, 1, 1, tzinfo=EAT),
                None,
            ],
        ),
        ("numeric", [Decimal("10.00"), Decimal("-0.005"), None]),
        ("boolean", [True, False, None]),
        ("float8", [1.5, -0.25, None]),
        ("text", []),
    ],
)
def test_an_array_parameter_reads_back_as_given(kind: str, values: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{kind}[]", [Array(values)])
        assert cursor.fetchone() == (values,)


def test_json_in_an_array_parameter_reads_back_as_given() -> None:
    documents: list[Any] = [{"name": 'Asha "A"', "tags": ["vip", "a,b"]}, None, []]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d::text FROM unnest(%s::jsonb[]) WITH ORDINALITY AS t(d, n) ORDER BY n",
            [Array([None if d is None else Jsonb(d) for d in documents])],
        )
        found = [None if text is None else json.loads(text) for (text,) in cursor.fetchall()]
    assert found == documents


def test_an_arrays_type_is_the_statements_cast_not_its_elements() -> None:
    # The driver does not look at the elements to choose a type: Python types it would
    # refuse to put in one list are given to PostgreSQL as text for the cast to read.
    mixed = [1, "2", Decimal("3")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::bigint[]", [Array(mixed)])
        assert cursor.fetchone() == ([1, 2, 3],)
        with pytest.raises(DataError, match="mixed types"):
            cursor.execute("SELECT %s::bigint[]", [mixed])
