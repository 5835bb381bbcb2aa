"""Personalised messages through the client against a real server: contacts' custom fields
(create, merge, remove, export and import), message templates, and sends from a template or
with placeholders, whose recipients each carry their own text, segments and cost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest
from mifumo_client import AsyncMifumo, Mifumo, NotFoundError, ValidationError
from mifumo_client.models import Contact, RecipientStatus, Template
from mifumo_server import Server

from integration.models import Account

pytestmark = pytest.mark.slow


def test_custom_fields_are_created_merged_removed_and_read_back(client: Mifumo) -> None:
    made = client.contacts.create(
        "Amina", "0712000105", custom_fields={"city": "Arusha", "plan": "gold"}
    )
    assert isinstance(made, Contact)
    assert made.custom_fields == {"city": "Arusha", "plan": "gold"}

    changed = client.contacts.update(made.id, custom_fields={"plan": None, "order_id": "1043"})
    assert changed.custom_fields == {"city": "Arusha", "order_id": "1043"}
    assert client.contacts.get(made.id).custom_fields == {"city": "Arusha", "order_id": "1043"}
    (found,) = client.contacts.search("0712000105")
    assert found.custom_fields == {"city": "Arusha", "order_id": "1043"}

    # Changing another field leaves the custom fields alone.
    assert client.contacts.update(made.id, name="Amina J").custom_fields == changed.custom_fields


def test_a_bad_custom_field_key_is_a_validation_error(client: Mifumo) -> None:
    with pytest.raises(ValidationError) as refused:
        client.contacts.create("Baraka", "0712000115", custom_fields={"not a key!": "x"})
    assert "custom_fields" in refused.value.details


def test_custom_fields_travel_through_export_and_import(client: Mifumo) -> None:
    client.contacts.create("Chausiku", "0712000125", custom_fields={"city": "Moshi"})
    exported = client.contacts.export_csv()
    header, row = exported.splitlines()[:2]
    assert header.split(",")[-1] == "city" and row.endswith(",Moshi")

    result = client.contacts.import_csv(
        b"name,phone_number,City\nDaudi,0712000135,Dodoma\n", compress=False
    )
    assert (result.created, result.failed) == (1, 0)
    (daudi,) = client.contacts.search("0712000135")
    assert daudi.custom_fields == {"city": "Dodoma"}


def test_templates_are_created_listed_changed_and_deleted(client: Mifumo) -> None:
    made = client.templates.create("Ukumbusho", "Habari {{name}}, oda {{order_id|yako}} iko tayari")
    assert isinstance(made, Template)
    assert made.id.startswith("tpl_")
    assert made.placeholders == ["name", "order_id"]
    assert made.created_at.tzinfo is not None

    second = client.templates.create("Asante", "Asante!")
    pages = list(client.templates.list(page_size=1).pages())
    assert [page.total for page in pages] == [2, 2]
    assert [t.id for page in pages for t in page.items] == [second.id, made.id]

    changed = client.templates.update(made.id, text="Karibu {{name}}")
    assert (changed.name, changed.text, changed.placeholders) == (
        "Ukumbusho",
        "Karibu {{name}}",
        ["name"],
    )
    assert client.templates.get(made.id) == changed

    deleted = client.templates.delete(made.id)
    assert (deleted.id, deleted.deleted) == (made.id, True)
    with pytest.raises(NotFoundError):
        client.templates.get(made.id)
    assert [t.id for t in client.templates.list()] == [second.id]


def test_a_malformed_template_is_refused_with_the_field_named(client: Mifumo) -> None:
    with pytest.raises(ValidationError) as refused:
        client.templates.create("Mbaya", "Habari {{}}")
    assert "text" in refused.value.details
    with pytest.raises(ValueError, match="template_id must not be empty"):
        client.templates.get(" ")


def _by_phone(client: Mifumo, message_id: str) -> dict[str, RecipientStatus]:
    return {row.phone: row for row in client.sms.recipients(message_id)}


def test_a_template_send_renders_each_recipient_from_variables_and_contacts(
    client: Mifumo,
) -> None:
    client.contacts.create("Amina", "0712000145", custom_fields={"city": "Arusha"})
    template = client.templates.create("Mji", "Habari {{name|mteja}} wa {{city|Dar}}: {{code}}")
    before = client.balance().balance

    sent = client.sms.send(
        recipients=["0712000145", "0712000155"],
        template_id=template.id,
        variables={"code": "A1"},
    )
    assert sent.recipients == ["+255712000145", "+255712000155"]
    assert sent.cost == Decimal("20.00")
    rows = _by_phone(client, sent.message_id)
    assert rows["+255712000145"].text == "Habari Amina wa Arusha: A1"
    assert rows["+255712000155"].text == "Habari mteja wa Dar: A1"
    assert {(row.segments, row.cost) for row in rows.values()} == {(1, Decimal("10.00"))}
    assert client.balance().balance == before - Decimal("20.00")


def test_personalised_texts_are_priced_per_recipient(
    server: Server, make_account: Callable[..., Account], make_key: Callable[..., str]
) -> None:
    account = make_account(max_message_length=320)
    with Mifumo(make_key(account), server.url) as client:
        client.contacts.create("Baraka", "0712000165", custom_fields={"note": "x" * 200})
        sent = client.sms.send("Habari {{note|fupi}}", ["0712000165", "0712000175"])
        rows = _by_phone(client, sent.message_id)
    assert (rows["+255712000165"].segments, rows["+255712000165"].cost) == (2, Decimal("20.00"))
    assert (rows["+255712000175"].text, rows["+255712000175"].cost) == (
        "Habari fupi",
        Decimal("10.00"),
    )
    assert sent.cost == Decimal("30.00")


def test_a_placeholder_without_a_value_or_an_unknown_template_is_refused(
    client: Mifumo,
) -> None:
    before = client.balance().balance
    with pytest.raises(ValidationError) as missing:
        client.sms.send("Habari {{order_id}}", ["0712000185"])
    assert "order_id" in missing.value.message
    with pytest.raises(NotFoundError):
        client.sms.send(recipients=["0712000185"], template_id="tpl_0000000000000000000000000")
    with pytest.raises(ValidationError):
        client.sms.send("Habari {{a}}", ["0712000185"], variables={"a": 5})  # type: ignore[dict-item]
    assert client.balance().balance == before


def test_the_async_client_has_templates_too(async_client: AsyncMifumo) -> None:
    async def scenario() -> list[str]:
        async with async_client as client:
            made = await client.templates.create("Async", "Habari {{name|rafiki}}")
            sent = await client.sms.send(recipients=["0712000195"], template_id=made.id)
            status = await client.sms.status(sent.message_id)
            return [row.id async for row in client.templates.list()] + [status.recipients[0].text]

    ids_and_text = asyncio.run(scenario())
    assert ids_and_text[0].startswith("tpl_") and ids_and_text[1] == "Habari rafiki"
