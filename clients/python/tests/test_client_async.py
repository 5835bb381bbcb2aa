"""AsyncMifumo against a real server: the same resources awaited, lists walked with
``async for``, errors raised the same way, a lost answer retried into one message."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from faulty_proxy import Fault, FaultyProxy
from mifumo_client import AsyncMifumo, InvalidPhoneError, NotFoundError
from mifumo_server import Server

from integration.models import Account
from sms.models import Message

pytestmark = pytest.mark.slow


def test_the_async_client_sends_waits_and_pages(async_client: AsyncMifumo) -> None:
    async def scenario() -> None:
        async with async_client as client:
            numbers = [f"+25575400{n:03d}5" for n in range(5)]
            sent = await client.sms.send("Habari async", numbers)
            assert sent.cost == Decimal("50.00")
            final = await client.sms.wait(sent.message_id, interval=0.2, timeout=60)
            assert final.status == "delivered"

            pages = [
                page async for page in client.sms.recipients(sent.message_id, page_size=2).pages()
            ]
            assert [len(page.items) for page in pages] == [2, 2, 1]
            phones = [r.phone async for r in client.sms.recipients(sent.message_id, page_size=2)]
            assert sorted(phones) == numbers
            reports = [r async for r in client.sms.delivery_reports(page_size=3)]
            assert len(reports) == 5 and {r.status for r in reports} == {"delivered"}
            messages = [m async for m in client.sms.messages()]
            assert [m.message_id for m in messages] == [sent.message_id]
            assert (await client.balance()).balance == Decimal("4950.00")

    asyncio.run(scenario())


def test_the_async_client_manages_contacts_segments_keys_and_webhooks(
    async_client: AsyncMifumo,
) -> None:
    async def scenario() -> None:
        async with async_client as client:
            made = await client.contacts.create("Amina", "0712000015", tags=["vip"])
            assert (await client.contacts.get(made.id)).phone_number == "+255712000015"
            result = await client.contacts.import_csv(
                b"name,phone_number,tags\nBaraka,0754000025,vip\nBad,nope,\n",
                progress=lambda sent, total: None,
            )
            assert (result.created, result.failed) == (1, 1)
            segment = await client.segments.create("VIP", criteria={"tags": ["vip"]})
            members = [c.name async for c in client.segments.contacts(segment.id, page_size=1)]
            assert members == ["Baraka", "Amina"]
            exported = await client.contacts.export_csv(segment_id=segment.id)
            assert exported.count("\n") == 3
            assert [k.name async for k in client.keys.list()] == ["client admin"]
            assert (await client.webhooks.signing_secret()).secret.startswith("whsec_")
            assert (await client.request("GET", "sms/balance/"))["currency"] == "TZS"

    asyncio.run(scenario())


def test_the_async_client_raises_the_same_errors(async_client: AsyncMifumo) -> None:
    async def scenario() -> None:
        async with async_client as client:
            with pytest.raises(InvalidPhoneError):
                await client.sms.send("Habari", ["12345"])
            with pytest.raises(NotFoundError) as caught:
                await client.sms.status("msg_missing")
            assert caught.value.request_id

    asyncio.run(scenario())


def test_an_async_send_whose_answer_is_lost_stays_one_message(
    server: Server, api_key: str, account: Account
) -> None:
    proxy = FaultyProxy(server.url)
    proxy.fail_next(Fault.CUT, Fault.GATEWAY_503)

    async def scenario() -> str:
        async with AsyncMifumo(api_key, proxy.url, max_retries=2) as client:
            sent = await client.sms.send("Mara moja", ["+255712345675"])
            assert sent.replayed is True
            return sent.message_id

    try:
        message_id = asyncio.run(scenario())
    finally:
        proxy.close()
    faults = [seen.fault for seen in proxy.on("/api/integration/v1/sms/send/")]
    assert faults == [Fault.CUT, Fault.GATEWAY_503, Fault.NONE]
    assert [m.id for m in Message.objects.filter(account=account)] == [message_id]
