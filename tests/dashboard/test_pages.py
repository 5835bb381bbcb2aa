"""Every page at a laptop's and a phone's size, in headless Chromium: nothing is wider than
the screen (the page never scrolls sideways), no table scrolls inside its box, and with
MIFUMO_SCREENSHOTS_DIR set each page is photographed there (`python3 dev.py screenshots`).
The two-factor pages are among them: setting it up, the code step of signing in, and the
page of a user who has it on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from integration.models import Account
from tests.dashboard.support import PASSWORD, authenticator_code, dash, sign_in
from tests.dashboard.tour import Tour, public_pages, seed_account, signed_in_pages

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SIZES = {"laptop": (1366, 768), "phone": (390, 844)}
SHOTS = os.environ.get("MIFUMO_SCREENSHOTS_DIR")

# Widths of the page, the screen, and of each table box that scrolls within itself.
MEASURE = """() => ({
  page: document.documentElement.scrollWidth,
  body: document.body.scrollWidth,
  screen: window.innerWidth,
  tables: Array.from(document.querySelectorAll(".table-wrap"))
    .filter(w => w.offsetParent !== null && !w.closest("details"))
    .filter(w => w.scrollWidth > w.clientWidth + 1)
    .map(w => (w.querySelector("table") || w).id || w.className),
})"""


@pytest.fixture
def tour(alice: Account, bob: Account) -> Tour:
    return seed_account(alice, bob)


def check(page: Page, size: str, name: str) -> None:
    widths = page.evaluate(MEASURE)
    assert widths["page"] <= widths["screen"], f"{name} at {size}: {widths}"
    assert widths["body"] <= widths["screen"], f"{name} at {size}: {widths}"
    assert widths["tables"] == [], f"{name} at {size}: tables scroll sideways: {widths}"
    if SHOTS:
        folder = Path(SHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{size}-{name}.png"), full_page=True)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_page_fits_the_screen(
    live_server: Any, open_page: Any, tour: Tour, size: str
) -> None:
    width, height = SIZES[size]
    visitor: Page = open_page(width=width, height=height)
    for name, path in public_pages(tour):
        visitor.goto(live_server.url + path)
        expect(visitor.locator("h1").first).to_be_visible()
        check(visitor, size, name)

    page: Page = open_page(width=width, height=height)
    sign_in(page, live_server.url, tour.owner.username)
    for name, path in signed_in_pages(tour):
        page.goto(live_server.url + path)
        expect(page.locator("main h1").first).to_be_visible()
        check(page, size, name)

    # Pages reached by doing something: the send preview, a new key, the phone's menu.
    page.goto(live_server.url + dash("messages/send/"))
    page.get_by_label("Recipients").fill("+255712345678, 0754 000 001")
    page.get_by_label("Message").fill("Habari! Mkutano wetu ni kesho saa nne asubuhi 😀")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Check and confirm")).to_be_visible()
    check(page, size, "send-preview")
    page.goto(live_server.url + dash("keys/"))
    page.locator("#create-key-form").get_by_label("Name").fill("Screenshot key")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_be_visible()
    check(page, size, "key-created")
    page.goto(live_server.url + dash("two-factor/"))
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator(".qr svg")).to_be_visible()
    check(page, size, "two-factor-setup")
    if size == "phone":
        page.goto(live_server.url + dash())
        page.get_by_role("button", name="Menu").click()
        expect(page.get_by_role("link", name="Billing")).to_be_visible()
        check(page, size, "menu-open")

    # A user with two-factor on: the code step of signing in, then their two-factor page.
    guarded: Page = open_page(width=width, height=height)
    guarded.goto(live_server.url + dash("login/"))
    guarded.get_by_label("Username").fill(tour.guarded.username)
    guarded.get_by_label("Password").fill(PASSWORD)
    guarded.get_by_role("button", name="Sign in").click()
    expect(guarded.get_by_role("heading", name="Enter your authentication code")).to_be_visible()
    check(guarded, size, "login-code")
    key = TOTPDevice.objects.get(user=tour.guarded).bin_key
    guarded.get_by_label("Authentication code").fill(authenticator_code(key))
    guarded.get_by_role("button", name="Continue").click()
    expect(guarded.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    guarded.goto(live_server.url + dash("two-factor/"))
    expect(guarded.locator("#two-factor-disable")).to_be_visible()
    check(guarded, size, "two-factor-on")

    member: Page = open_page(width=width, height=height)
    sign_in(member, live_server.url, tour.member.username)
    for name, path in [("member-team", dash("team/")), ("member-keys", dash("keys/"))]:
        member.goto(live_server.url + path)
        check(member, size, name)
