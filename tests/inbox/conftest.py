"""Alice's number, and the webhook tests' receiver and settings: inbound events go to a
local receiver."""

from __future__ import annotations

import pytest

from inbox.services import number_assign
from integration.models import Account
from tests.webhooks.conftest import _webhook_settings, receiver  # noqa: F401 - fixtures

NUMBER = "+255700000100"
PHONE = "+255712345678"


@pytest.fixture
def alice_number(alice: Account) -> str:
    number_assign(account=alice, number=NUMBER)
    return NUMBER
