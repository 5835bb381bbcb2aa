"""The dashboard's tasks end to end in headless Chromium: a team that runs itself (invite,
accept, a member who sees but cannot change; a forgotten password; two-factor turned on and
a sign-in with a code), sending with a preview and a confirmation, a segment made in the
browser and sent to, and the phone's layout."""

from __future__ import annotations

import re
import time
from base64 import b32decode
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from contacts.models import Contact
from integration.models import Account, ApiKey, AuditEvent, Membership
from sms.models import Message
from tests.dashboard.data import make_message
from tests.dashboard.support import PASSWORD, authenticator_code, dash, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def link_in(body: str, pattern: str) -> str:
    found = re.search(pattern, body)
    assert found is not None, body
    return urlsplit(found.group(0)).path


def forged_post(page: Page, base_url: str, path: str, data: dict[str, str]) -> int:
    """A POST the page offers no button for, with the session's valid CSRF token."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        base_url + dash(path),
        form={"csrfmiddlewaretoken": token, **data},
        headers={"Referer": base_url + dash()},
        max_redirects=0,
    )
    return response.status


def test_invite_accept_and_the_new_member_sees_but_cannot_change(
    live_server: Any, open_page: Any, owner: Any, alice: Account
) -> None:
    page: Page = open_page(**LAPTOP)
    sign_in(page, live_server.url, owner.username)
    page.get_by_role("link", name="Team").click()
    page.get_by_label("E-mail address").fill("neema@example.com")
    page.locator("#invite-form").get_by_label("Role").select_option("member")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to neema@example.com")).to_be_visible()
    expect(page.locator("#invitations-table")).to_contain_text("neema@example.com")
    [invitation] = mail.outbox
    link = link_in(str(invitation.body), r"https?://\S+/invite/\S+/")

    newcomer: Page = open_page(**PHONE)
    newcomer.goto(live_server.url + link)
    expect(newcomer.get_by_role("heading", name="Join alice")).to_be_visible()
    newcomer.get_by_label("Username").fill("neema")
    newcomer.locator("#id_password1").fill(PASSWORD)
    newcomer.locator("#id_password2").fill(PASSWORD)
    newcomer.get_by_role("button", name="Create my login and join").click()
    expect(newcomer.get_by_text("Welcome to alice: you are member.")).to_be_visible()
    expect(newcomer.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    user = get_user_model().objects.get(username="neema")
    assert Membership.objects.get(user=user).role == "member"

    # A member sees keys and the team, with no form to change either.
    newcomer.goto(live_server.url + dash("keys/"))
    expect(newcomer.get_by_text("Only the account's owners and admins")).to_be_visible()
    expect(newcomer.get_by_role("button", name="Create key")).to_have_count(0)
    newcomer.goto(live_server.url + dash("team/"))
    expect(newcomer.locator("#members-table")).to_contain_text("asha")
    expect(newcomer.locator("#invite-form")).to_have_count(0)
    expect(newcomer.get_by_role("button", name=re.compile("Change role"))).to_have_count(0)
    # Forged POSTs with a valid session and token are refused all the same.
    key = {"name": "Sneaky", "permission": "admin", "mode": "live", "nonce": "n"}
    assert forged_post(newcomer, live_server.url, "keys/create/", key) == 403
    mine = Membership.objects.get(user=user)
    assert (
        forged_post(newcomer, live_server.url, f"team/members/{mine.pk}/role/", {"role": "owner"})
        == 403
    )
    invite = {"email": "x@example.com", "role": "owner"}
    assert forged_post(newcomer, live_server.url, "team/invite/", invite) == 403
    assert not ApiKey.objects.exists()
    assert Membership.objects.get(user=user).role == "member" and len(mail.outbox) == 1

    # The owner sees the new member, and the used link is gone from the waiting list.
    page.reload()
    expect(page.locator("#members-table")).to_contain_text("neema")
    expect(page.get_by_text("No invitations are waiting.")).to_be_visible()


def test_a_forgotten_password_is_reset_by_email(
    live_server: Any, open_page: Any, owner: Any
) -> None:
    owner.email = "asha@example.com"
    owner.save()
    page: Page = open_page(**PHONE)
    page.goto(live_server.url + dash("login/"))
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("asha@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()
    [message] = mail.outbox
    page.goto(live_server.url + link_in(str(message.body), r"https?://\S+/password/reset/\S+/\S+/"))
    page.locator("#id_new_password1").fill("serengeti-plains-77")
    page.locator("#id_new_password2").fill("serengeti-plains-77")
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_role("heading", name="Your password is changed")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill(owner.username)
    page.get_by_label("Password").fill("serengeti-plains-77")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


def key_bytes(shown_key: str) -> bytes:
    """The key the page shows for the app (base32 in groups of four), as the app reads it."""
    text = shown_key.replace(" ", "")
    return b32decode(text + "=" * (-len(text) % 8))


def test_two_factor_is_turned_on_and_the_next_sign_in_asks_for_a_code(
    live_server: Any, open_page: Any, owner: Any, alice: Account
) -> None:
    page: Page = open_page(**LAPTOP)
    sign_in(page, live_server.url, owner.username)
    page.get_by_role("link", name="Two-factor").click()
    expect(page.get_by_role("heading", name="Two-factor authentication", level=1)).to_be_visible()
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator(".qr svg")).to_be_visible()
    key = key_bytes(page.locator("#two-factor-secret").inner_text())
    # The key on the page is the new device's: what the app is given is what is checked.
    assert key == TOTPDevice.objects.get(user=owner, confirmed=False).bin_key
    wrong = f"{(int(authenticator_code(key)) + 1) % 1_000_000:06d}"
    page.get_by_label("Authentication code").fill(wrong)
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("That code does not match")).to_be_visible()
    assert not TOTPDevice.objects.filter(user=owner, confirmed=True).exists()
    time.sleep(1.1)  # django-otp holds a device back for a second after a wrong code
    used_at = time.time()
    used = authenticator_code(key, at=used_at)
    page.get_by_label("Authentication code").fill(used)
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("Two-factor authentication is on")).to_be_visible()
    expect(page.locator("#two-factor-disable")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    # On a phone, the password alone no longer signs in: the code step comes first.
    phone: Page = open_page(**PHONE)
    phone.goto(live_server.url + dash("keys/"))
    phone.get_by_label("Username").fill(owner.username)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign in").click()
    expect(phone.get_by_role("heading", name="Enter your authentication code")).to_be_visible()
    # Until the code is given, nothing of the account opens.
    phone.goto(live_server.url + dash("keys/"))
    expect(phone.get_by_role("button", name="Sign in")).to_be_visible()
    phone.goto(live_server.url + dash("login/code/"))
    # The code used to turn it on is spent; a replay of it is refused.
    phone.get_by_label("Authentication code").fill(used)
    phone.get_by_role("button", name="Continue").click()
    expect(phone.get_by_text("That code is not right, or it was already used")).to_be_visible()
    time.sleep(1.1)
    # The step after the spent one: now's step if the clock has moved on since, else the next.
    phone.get_by_label("Authentication code").fill(authenticator_code(key, at=used_at + 30))
    phone.get_by_role("button", name="Continue").click()
    expect(phone.get_by_role("heading", name="API keys", level=1)).to_be_visible()

    actions = list(
        AuditEvent.objects.filter(account=alice).order_by("id").values_list("action", flat=True)
    )
    assert actions[-3:] == ["two_factor.enabled", "login.failed", "login"], actions
    phone.goto(live_server.url + dash("activity/"))
    log = phone.locator("#activity-table")
    expect(log).to_contain_text("Turned on two-factor authentication")
    expect(log).to_contain_text("Failed sign-in")


def test_send_with_a_live_counter_a_preview_and_a_confirmation(
    live_server: Any, open_page: Any, owner: Any, alice: Account
) -> None:
    page: Page = open_page(**PHONE)
    sign_in(page, live_server.url, owner.username)
    page.goto(live_server.url + dash("messages/send/"))
    page.get_by_label("Recipients").fill("+255712345678\n0754 000 001")
    box = page.get_by_label("Message")
    box.fill("Habari 😀" * 10)
    expect(page.locator("#message-count")).to_have_text(
        "80 / 160 characters · UCS-2 (Unicode: emoji or accents) · 2 parts (up to 67 units each)"
    )
    box.fill("Habari! Karibu Mifumo.")
    expect(page.locator("#message-count")).to_contain_text("22 / 160 characters · GSM-7 · 1 part")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-cost")).to_contain_text(
        "20.00 TZS = 2 recipients × 1 part × 10.00"
    )
    expect(page.locator("#preview-balance")).to_have_text("5,000.00 now, 4,980.00 after")
    assert Message.objects.count() == 0
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_label("Message")).to_have_value("Habari! Karibu Mifumo.")
    page.get_by_role("button", name="Preview").click()
    confirmation = page.evaluate(
        "() => Object.fromEntries(new FormData(document.querySelector('.preview form')))"
    )
    page.get_by_role("button", name="Confirm and send").click()
    expect(page.get_by_text("is on its way to 2 recipients, cost 20.00 TZS")).to_be_visible()
    # The same confirmation sent again (a double click, a resubmitted page) sends nothing.
    again = page.request.post(
        live_server.url + dash("messages/send/"),
        form={**confirmation, "step": "send"},
        headers={"Referer": live_server.url + dash()},
    )
    assert "That confirmation was already used" in again.text()
    assert Message.objects.count() == 1
    alice.refresh_from_db()
    assert alice.balance == 4980


def test_a_segment_made_in_the_browser_is_counted_live_and_sent_to(
    live_server: Any, open_page: Any, owner: Any, alice: Account
) -> None:
    for n, tags in enumerate([["vip"], ["vip", "dar"], ["dar"], []]):
        Contact.objects.create(
            account=alice, name=f"C{n}", phone_number=f"+25571300000{n}", tags=tags
        )
    page: Page = open_page(**LAPTOP)
    sign_in(page, live_server.url, owner.username)
    page.get_by_role("link", name="Segments").click()
    page.get_by_role("link", name="New segment").click()
    count = page.locator("#segment-live-count")
    expect(count).to_have_text("4 contacts match now")
    page.get_by_label("Name").fill("VIP")
    page.get_by_label("Has any of the tags").fill("vip")
    expect(count).to_have_text("2 contacts match now")
    page.get_by_label("Has all of the tags").fill("vip, dar")
    expect(count).to_have_text("1 contact match now")
    page.get_by_label("Has all of the tags").fill("")
    expect(count).to_have_text("2 contacts match now")
    page.get_by_role("button", name="Create segment").click()
    expect(page.locator("#segment-count")).to_have_text("2 members")
    page.get_by_role("link", name="Send to this segment").click()
    expect(page.get_by_label("VIP (2 contacts)")).to_be_checked()
    page.get_by_label("Message").fill("Ofa ya VIP!")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-recipients")).to_contain_text("2")
    page.get_by_role("button", name="Confirm and send").click()
    expect(page.locator("#recipients-table tbody tr")).to_have_count(2)
    message = Message.objects.get()
    assert sorted(message.recipients.values_list("phone", flat=True)) == [
        "+255713000000",
        "+255713000001",
    ]


def test_on_a_phone_the_menu_folds_and_the_charts_fit(
    live_server: Any, open_page: Any, owner: Any, alice: Account
) -> None:
    make_message(alice, statuses=["delivered", "failed"])
    page: Page = open_page(**PHONE)
    sign_in(page, live_server.url, owner.username)
    heading = page.get_by_role("heading", name="Overview", level=1).bounding_box()
    assert heading is not None and heading["y"] < 120  # content first, not 355 px of menu
    menu = page.get_by_role("button", name="Menu")
    expect(page.get_by_role("link", name="Billing")).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("link", name="Billing")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    menu.click()
    expect(page.get_by_role("link", name="Billing")).to_be_hidden()

    chart = page.locator("svg.chart-narrow").first
    expect(chart).to_be_visible()
    expect(page.locator("svg.chart-wide").first).to_be_hidden()
    frame = chart.evaluate(
        """svg => {
          const box = svg.getBoundingClientRect();
          const bars = Array.from(svg.querySelectorAll("rect.bar"))
            .map(e => e.getBoundingClientRect());
          // The size the text is drawn at: its font size times the drawing's scale.
          const sizes = Array.from(svg.querySelectorAll("text"))
            .map(t => t.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize));
          return {
            right: box.right,
            parent: svg.parentElement.getBoundingClientRect().right,
            lastBar: Math.max(...bars.map(b => b.right)),
            smallestText: Math.min(...sizes),
            screen: window.innerWidth,
          };
        }"""
    )
    assert frame["right"] <= frame["parent"] + 0.5 and frame["right"] <= frame["screen"]
    assert frame["lastBar"] <= frame["right"]  # today's bar is on screen
    assert frame["smallestText"] >= 10  # axis text a person can read
    # The newest day is always named on the axis.
    today = timezone.now().astimezone(UTC).strftime("%d %b")
    expect(page.locator("svg.chart-narrow text.x-label").last).to_have_text(today)


def test_a_large_import_shows_its_progress_and_is_sent_once(
    live_server: Any, open_page: Any, owner: Any, tmp_path: Any
) -> None:
    rows = "".join(f"Mteja {n};07130{n:05d};;dar\r\n" for n in range(20_000))
    path = tmp_path / "wateja.csv"
    path.write_bytes(("name;phone_number;email;tags\r\n" + rows).encode("cp1252"))
    page: Page = open_page(**LAPTOP)
    sign_in(page, live_server.url, owner.username)
    page.goto(live_server.url + dash("contacts/import/"))
    # A slow uplink, so that the upload takes long enough to watch.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 150_000},
    )
    page.get_by_label("CSV file").set_input_files(str(path))
    button = page.get_by_role("button", name="Import")
    button.click()
    expect(button).to_be_disabled()
    expect(page.locator("#import-progress")).to_be_visible()
    expect(page.locator("#import-status")).to_contain_text(re.compile(r"Uploading… [1-9]\d?%"))
    expect(page.get_by_text("Imported: 20000 created, 0 updated, 0 skipped.")).to_be_visible(
        timeout=60_000
    )
    assert Contact.objects.count() == 20_000
    assert page.url.endswith(dash("contacts/"))
    # The answer written in place of the form is a dashboard page like any other: its
    # stylesheet applies and its script runs, under the page's Content-Security-Policy.
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))
    background = page.locator("header.topbar").evaluate(
        "element => getComputedStyle(element).backgroundColor"
    )
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")


def test_an_operator_top_up_with_too_many_decimals_is_explained(
    live_server: Any, open_page: Any, admin_user: Any, alice: Account
) -> None:
    page: Page = open_page(**LAPTOP)
    page.goto(live_server.url + "/admin/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Log in").click()
    page.goto(live_server.url + "/admin/integration/account/")
    page.locator(f"input[name=_selected_action][value='{alice.pk}']").check()
    page.locator("select[name=action]").select_option("top_up")
    page.get_by_role("button", name="Go").click()
    amount = page.get_by_label("Amount")
    amount.fill("10.005")
    page.get_by_role("button", name="Top up").click()
    expect(page.get_by_text("Use at most two decimal places (cents), e.g. 10.01.")).to_be_visible()
    expect(page.get_by_label("Amount")).to_have_value("10.005")
    page.get_by_label("Amount").fill("10.01")
    page.get_by_role("button", name="Top up").click()
    expect(page.get_by_text("alice: +10.01 TZS, balance 5010.01 TZS")).to_be_visible()
