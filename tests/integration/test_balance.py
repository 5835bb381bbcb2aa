from decimal import Decimal

from integration.services import account_top_up
from tests.helpers import assert_envelope


def test_balance_matches_the_guide_shape(api, alice):
    body = assert_envelope(api.get("sms/balance/"), 200)
    assert body["message"] == "Balance retrieved successfully"
    assert body["data"]["balance"] == 5000.0
    assert body["data"]["currency"] == "TZS"
    assert body["data"]["last_updated"].endswith("Z")


def test_balance_reflects_a_top_up(api, alice):
    account_top_up(account=alice, amount=Decimal("12.50"))
    assert api.get("sms/balance/").json()["data"]["balance"] == 5012.5


def test_balance_is_per_account(api, bob, api_for):
    bob_api = api_for(bob)
    account_top_up(account=bob, amount=1)
    assert bob_api.get("sms/balance/").json()["data"]["balance"] == 5001.0
    assert api.get("sms/balance/").json()["data"]["balance"] == 5000.0
