"""The dashboard in a real browser against the live test server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from integration.models import ApiKey
from tests.dashboard.support import dash, sign_in
from tests.webhooks.receiver import Receiver
from webhooks import signing
from webhooks.models import Endpoint

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BALANCE = "/api/integration/v1/sms/balance/"


@pytest.fixture(autouse=True)
def _local_webhooks(settings: Any) -> None:
    settings.MIFUMO_WEBHOOK_ALLOW_PRIVATE = True
    settings.MIFUMO_WEBHOOK_TIMEOUT = 5


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    yield server
    server.stop()


def balance(base_url: str, raw_key: str) -> httpx.Response:
    return httpx.get(base_url + BALANCE, headers={"Authorization": f"Bearer {raw_key}"}, timeout=10)


def test_a_key_is_shown_once_works_shows_in_usage_and_stops_when_revoked(
    live_server: Any, open_page: Any, owner: Any
) -> None:
    page: Page = open_page()
    sign_in(page, live_server.url, owner.username)
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("Billing app")
    page.get_by_label("Read: view messages, reports and balance").check()
    page.get_by_role("button", name="Create key").click()

    shown = page.locator("#new-key")
    expect(shown).to_be_visible()
    raw = shown.inner_text().strip()
    assert raw.startswith("mif_live_")
    expect(page.get_by_text("it is shown only once")).to_be_visible()

    page.reload()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    assert raw not in page.content()
    expect(page.locator("#new-key")).to_have_count(0)
    assert ApiKey.objects.count() == 1

    assert balance(live_server.url, raw).status_code == 200
    page.get_by_role("link", name="Usage").click()
    row = page.locator("#routes-table tbody tr", has_text="sms/balance/")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text("1")

    page.get_by_role("link", name="API keys").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke Billing app").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(page.locator("#keys-table .badge-revoked")).to_have_text("revoked")
    response = balance(live_server.url, raw)
    assert response.status_code == 401
    assert response.json()["error_code"] == "INVALID_CREDENTIALS"


def test_a_webhook_receives_a_signed_test_event(
    live_server: Any, open_page: Any, owner: Any, receiver: Receiver
) -> None:
    page: Page = open_page()
    sign_in(page, live_server.url, owner.username)
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Endpoint URL").fill(receiver.url)
    page.get_by_label("Description").fill("Local receiver")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_text("Webhook created")).to_be_visible()

    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_text("Test event delivered: HTTP 200")).to_be_visible()
    assert len(receiver.requests) == 1
    hit = receiver.requests[0]
    assert hit.headers["X-Mifumo-Event"] == "message.test"
    row = page.locator(".deliveries-table tbody tr").first
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("200")

    page.get_by_role("button", name="Reveal secret").click()
    secret = page.locator("#endpoint-secret").inner_text().strip()
    assert secret == Endpoint.objects.get().secret
    timestamp = int(hit.headers["X-Mifumo-Signature"].split(",")[0].removeprefix("t="))
    expected = signing.signature(secret, timestamp, hit.body)
    assert f"v1={expected}" in hit.headers["X-Mifumo-Signature"]


def test_the_overview_chart_draws_a_message_sent_from_the_dashboard(
    live_server: Any, open_page: Any, owner: Any
) -> None:
    page: Page = open_page()
    sign_in(page, live_server.url, owner.username)
    page.get_by_role("link", name="Send a message").first.click()
    page.get_by_label("Recipients").fill("+255712345678, 0754 000 001")
    page.get_by_label("Message").fill("Habari! Karibu Mifumo.")
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("button", name="Confirm and send").click()
    expect(page.get_by_text("is on its way to 2 recipients")).to_be_visible()
    expect(page.locator("#recipients-table tbody tr")).to_have_count(2)

    page.get_by_role("link", name="Overview").click()
    chart = page.locator("figure.chart svg.chart-wide")
    expect(chart).to_have_count(1)
    bars = chart.locator("rect.bar")
    assert bars.count() >= 1
    assert sum(int(bars.nth(i).get_attribute("data-value") or 0) for i in range(bars.count())) == 2
    expect(page.locator("#stat-today")).to_have_text("1")


def test_a_member_sees_keys_but_not_the_form_to_create_one(
    live_server: Any, open_page: Any, owner: Any, member: Any
) -> None:
    page: Page = open_page(width=390, height=844)  # a phone
    sign_in(page, live_server.url, member.username)
    page.goto(live_server.url + dash("keys/"))
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    expect(page.locator("#create-key-form")).to_have_count(0)
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)
    expect(page.get_by_text("Only the account's owners and admins")).to_be_visible()
    expect(page.get_by_role("link", name="Send a message")).to_have_count(0)


def test_the_dashboards_own_script_and_styles_run_under_its_policy(
    live_server: Any, open_page: Any, owner: Any
) -> None:
    # Every page is also watched for anything its Content-Security-Policy refuses (the
    # open_page fixture fails the test on the first report).
    page: Page = open_page()
    response = page.goto(live_server.url + dash("login/"))
    assert response is not None
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    sign_in(page, live_server.url, owner.username)
    # The stylesheet applies: the top bar is not an unstyled block.
    background = page.locator("header.topbar").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    # The script runs: the character counter follows the message box.
    page.get_by_role("link", name="Send a message").first.click()
    page.get_by_label("Message").fill("Habari")
    expect(page.locator("#message-count")).to_contain_text("6 / ")
    # The account signing secret's copy button is shown by the script.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_role("button", name="Reveal live secret").click()
    expect(page.locator("[data-copy='account-secret-value-live']")).to_be_visible()
    # The two-factor set-up draws its QR code as inline SVG.
    page.get_by_role("link", name="Two-factor").click()
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator(".qr svg")).to_be_visible()
    for path in ("", "keys/", "messages/", "usage/", "contacts/", "segments/", "activity/"):
        page.goto(live_server.url + dash(path))
        expect(page.locator("main h1").first).to_be_visible()


def test_sending_from_a_template_shows_each_recipients_text_as_the_form_changes(
    live_server: Any, open_page: Any, owner: Any
) -> None:
    from contacts.services import contact_create
    from message_templates.services import template_create

    account = owner.memberships.get().account
    contact_create(
        account=account, name="Asha", phone_number="+255712345678", custom_fields={"city": "Moshi"}
    )
    template_create(account=account, name="Karibu", text="Karibu {{name}} wa {{city|Dar}}")
    page: Page = open_page()
    sign_in(page, live_server.url, owner.username)
    page.get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="Send Karibu").click()
    expect(page.get_by_label("Message")).to_have_value("Karibu {{name}} wa {{city|Dar}}")
    page.get_by_label("Recipients").fill("+255712345678")
    preview = page.locator("#send-live-preview")
    expect(preview).to_contain_text("1 recipient, up to 1 part each, 10.00 TZS in all")
    expect(preview).to_contain_text("Karibu Asha wa Moshi")
    # A number that is not a contact has no name: the preview says what stops the send.
    page.get_by_label("Recipients").fill("+255712345678, 0754 000 001")
    expect(preview).to_contain_text("have no value")
    page.get_by_label("Message").fill("Karibu {{name|mteja}} wa {{city|Dar}}")
    expect(preview).to_contain_text("2 recipients, up to 1 part each, 20.00 TZS in all")
    expect(preview).to_contain_text("Karibu mteja wa Dar")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#first-recipients")).to_contain_text("Karibu Asha wa Moshi")
    page.get_by_role("button", name="Confirm and send").click()
    expect(page.get_by_text("is on its way to 2 recipients")).to_be_visible()
