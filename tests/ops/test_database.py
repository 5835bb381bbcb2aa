"""Statements bind their parameters on the server, and a statement a connection runs again
and again is prepared (planned once): what the settings ask of Django and the driver, read
off the wire."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from integration.models import Account
from sms.models import Recipient
from tests.helpers import prepared_text, wire

pytestmark = pytest.mark.django_db

SECRET_NAME = "binding-probe-account"


def test_the_settings_bind_on_the_server_and_prepare_the_fifth_run() -> None:
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
