"""Operators see every inbound message in Django admin, those that matched no account too,
and assign numbers there with the same normalisation as the command."""

from __future__ import annotations

from typing import Any

import pytest

from inbox.models import Number
from inbox.services import inbound_receive, number_assign
from integration.models import Account

pytestmark = pytest.mark.django_db


def test_unmatched_inbound_is_listed_for_operators(admin_client: Any, alice: Account) -> None:
    number_assign(account=alice, number="+255700000100")
    inbound_receive(carrier="beem", sender="+255712345678", destination="+255700000100", text="Hi")
    lost, _ = inbound_receive(
        carrier="beem", sender="+255712345679", destination="+255799999999", text="Nobody?"
    )
    page = admin_client.get("/admin/inbox/inboundmessage/", {"account__isempty": "1"})
    assert page.status_code == 200
    assert lost.id.encode() in page.content and b"+255712345678" not in page.content
    assert admin_client.get(f"/admin/inbox/inboundmessage/{lost.id}/change/").status_code == 200


def test_a_number_added_in_admin_is_normalised(admin_client: Any, alice: Account) -> None:
    response = admin_client.post(
        "/admin/inbox/number/add/", {"account": alice.pk, "number": "0700 000 100", "keyword": ""}
    )
    assert response.status_code == 302, response.content[:1000]
    assert Number.objects.get().number == "+255700000100"
    bad = admin_client.post(
        "/admin/inbox/number/add/", {"account": alice.pk, "number": "12", "keyword": ""}
    )
    assert bad.status_code == 200 and b"short code" in bad.content
