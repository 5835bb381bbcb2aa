"""Two-factor authentication (TOTP) for dashboard users and staff: set up and turned off by
the user, required by an account of its members or by the operator of every staff user,
asked for at sign-in at both doors, and never skipped by a session that has not passed it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from integration import two_factor
from integration.members import membership_add
from integration.models import Account, AuditEvent
from integration.throttle import MAX_FAILURES

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 7"
DASH = "/api/integration/dashboard/"
LOGIN = f"{DASH}login/"
CODE = f"{DASH}login/code/"
PAGE = f"{DASH}two-factor/"


def code_for(device: TOTPDevice, *, ahead: int = 0) -> str:
    """The device's code now (or ``ahead`` steps later, which it also accepts for one step);
    django-otp never accepts a step twice, so a test needing another code in the same 30 s
    takes the next step's."""
    device.refresh_from_db()
    value = totp(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead)
    return f"{value:0{device.digits}d}"


def fresh_step(device: TOTPDevice) -> None:
    """Forget which step was used last, as if the next 30 s had come."""
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)


def wait_out_backoff() -> None:
    """After a wrong code django-otp refuses the device's next check for a second."""
    time.sleep(1.1)


@pytest.fixture
def asha(alice: Account) -> Any:
    user = get_user_model().objects.create_user(username="asha", password=PASSWORD)
    membership_add(user=user, account=alice, role="owner")
    return user


@pytest.fixture
def juma(alice: Account) -> Any:
    user = get_user_model().objects.create_user(username="juma", password=PASSWORD)
    membership_add(user=user, account=alice, role="member")
    return user


def enable(client: Client) -> TOTPDevice:
    """Turn two-factor on through the page, as a user would."""
    begun = client.post(PAGE, {"action": "begin"})
    assert begun.status_code == 200
    device = begun.context["setup"]
    assert b"<svg" in begun.content and begun.context["secret"].replace(" ", "")
    confirmed = client.post(PAGE, {"action": "confirm", "code": code_for(device)})
    assert confirmed.status_code == 302, confirmed.content[:500]
    device.refresh_from_db()
    assert device.confirmed
    return device


def signed_in(user: Any) -> Client:
    client = Client()
    assert (
        client.post(LOGIN, {"username": user.get_username(), "password": PASSWORD}).status_code
        == 302
    )
    return client


def test_setting_up_needs_a_code_from_the_new_device(asha: Any) -> None:
    client = signed_in(asha)
    begun = client.post(PAGE, {"action": "begin"})
    device = begun.context["setup"]
    assert not device.confirmed and not two_factor.is_enabled(asha)
    wrong = client.post(PAGE, {"action": "confirm", "code": "000000"})
    assert wrong.status_code == 400 and not two_factor.is_enabled(asha)
    wait_out_backoff()
    assert client.post(PAGE, {"action": "confirm", "code": code_for(device)}).status_code == 302
    assert two_factor.is_enabled(asha)
    assert AuditEvent.objects.filter(action="two_factor.enabled", actor=asha).count() == 1
    # The session that set it up has proved the factor and carries on.
    assert client.get(f"{DASH}keys/").status_code == 200


def test_signing_in_asks_for_the_code_before_anything(asha: Any) -> None:
    device = enable(signed_in(asha))
    fresh_step(device)
    client = Client()
    response = client.post(
        LOGIN, {"username": "asha", "password": PASSWORD, "next": f"{DASH}usage/"}
    )
    assert response.status_code == 302 and response["Location"] == CODE
    assert "_auth_user_id" not in client.session
    assert client.get(f"{DASH}keys/").status_code == 302  # still signed out
    assert client.post(CODE, {"code": "123456"}).status_code == 200
    assert "_auth_user_id" not in client.session
    wait_out_backoff()
    done = client.post(CODE, {"code": code_for(device)})
    assert done.status_code == 302 and done["Location"] == f"{DASH}usage/"
    assert client.get(f"{DASH}keys/").status_code == 200
    assert AuditEvent.objects.filter(action="login", actor=asha).exists()


def test_a_code_is_accepted_once(asha: Any) -> None:
    device = enable(signed_in(asha))
    fresh_step(device)
    code = code_for(device)
    first = Client()
    first.post(LOGIN, {"username": "asha", "password": PASSWORD})
    assert first.post(CODE, {"code": code}).status_code == 302
    second = Client()
    second.post(LOGIN, {"username": "asha", "password": PASSWORD})
    assert second.post(CODE, {"code": code}).status_code == 200
    assert "_auth_user_id" not in second.session


def test_wrong_codes_are_throttled(asha: Any) -> None:
    device = enable(signed_in(asha))
    fresh_step(device)
    client = Client(REMOTE_ADDR="203.0.113.90")
    client.post(LOGIN, {"username": "asha", "password": PASSWORD})
    answers = [client.post(CODE, {"code": f"{n:06d}"}).status_code for n in range(MAX_FAILURES + 2)]
    assert answers[: MAX_FAILURES - 1] == [200] * (MAX_FAILURES - 1)
    assert set(answers[MAX_FAILURES - 1 :]) == {429}
    blocked = client.post(CODE, {"code": code_for(device)})
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


def test_the_code_step_expires(asha: Any) -> None:
    device = enable(signed_in(asha))
    fresh_step(device)
    client = Client()
    client.post(LOGIN, {"username": "asha", "password": PASSWORD})
    session = client.session
    session["dashboard_2fa_pending"] = {**session["dashboard_2fa_pending"], "at": time.time() - 301}
    session.save()
    response = client.post(CODE, {"code": code_for(device)})
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert "_auth_user_id" not in client.session


def test_an_older_session_must_pass_a_code_once_two_factor_is_on(asha: Any) -> None:
    older = signed_in(asha)
    device = enable(signed_in(asha))
    fresh_step(device)
    response = older.get(f"{DASH}keys/")
    assert response.status_code == 302 and response["Location"].startswith(CODE)
    assert older.post(CODE, {"code": code_for(device)}).status_code == 302
    assert older.get(f"{DASH}keys/").status_code == 200


def test_turning_it_off_needs_a_current_code(asha: Any) -> None:
    client = signed_in(asha)
    device = enable(client)
    assert client.post(PAGE, {"action": "disable", "code": "000000"}).status_code == 400
    assert two_factor.is_enabled(asha)
    wait_out_backoff()
    assert (
        client.post(PAGE, {"action": "disable", "code": code_for(device, ahead=1)}).status_code
        == 302
    )
    assert not two_factor.is_enabled(asha)
    assert AuditEvent.objects.filter(action="two_factor.disabled").count() == 1


def devices(user: Any) -> list[tuple[int, bool]]:
    return list(TOTPDevice.objects.filter(user=user).order_by("pk").values_list("pk", "confirmed"))


def test_replacing_the_app_needs_a_current_code_from_the_app_in_use(asha: Any) -> None:
    client = signed_in(asha)
    old = enable(client)
    page = client.get(PAGE).content.decode()
    assert 'id="two-factor-replace"' in page and 'name="current-code"' in page
    # Without a code, or with a wrong one: nothing to scan, and the app in use stays.
    for data in ({"action": "begin"}, {"action": "begin", "current-code": "000000"}):
        refused = client.post(PAGE, data)
        assert refused.status_code == 400 and "setup" not in refused.context
        assert b"That code is not right" in refused.content
        assert refused.context["current_form"].errors
    assert devices(asha) == [(old.pk, True)]
    # A device not begun with such a code in this session cannot take the place of the old.
    stray = TOTPDevice.objects.create(user=asha, name="Authenticator app", confirmed=False)
    refused = client.post(PAGE, {"action": "confirm", "code": code_for(stray)})
    assert refused.status_code == 302
    assert "enter a code from the app in use first" in client.get(PAGE).content.decode()
    assert devices(asha) == [(old.pk, True), (stray.pk, False)]

    wait_out_backoff()
    begun = client.post(PAGE, {"action": "begin", "current-code": code_for(old, ahead=1)})
    assert begun.status_code == 200 and b"replaces the one in use" in begun.content
    new = begun.context["setup"]
    assert b"<svg" in begun.content and devices(asha) == [(old.pk, True), (new.pk, False)]
    assert client.post(PAGE, {"action": "confirm", "code": code_for(new)}).status_code == 302
    assert devices(asha) == [(new.pk, True)]
    event = AuditEvent.objects.get(action="two_factor.replaced")
    assert event.actor == asha and event.target == "asha"
    assert client.get(f"{DASH}keys/").status_code == 200


def test_wrong_codes_to_replace_the_app_are_throttled_with_the_code_step(asha: Any) -> None:
    client = signed_in(asha)
    device = enable(client)
    answers = [
        client.post(PAGE, {"action": "begin", "current-code": f"{n:06d}"}).status_code
        for n in range(MAX_FAILURES + 2)
    ]
    assert answers[: MAX_FAILURES - 1] == [400] * (MAX_FAILURES - 1)
    assert set(answers[MAX_FAILURES - 1 :]) == {429}
    wait_out_backoff()
    blocked = client.post(PAGE, {"action": "begin", "current-code": code_for(device, ahead=1)})
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert b"Too many wrong codes" in blocked.content
    assert devices(asha) == [(device.pk, True)]
    # One budget with the sign-in's code step.
    fresh_step(device)
    other = Client()
    other.post(LOGIN, {"username": "asha", "password": PASSWORD})
    assert other.post(CODE, {"code": code_for(device)}).status_code == 429


def test_an_account_can_require_it_of_every_member(alice: Account, asha: Any, juma: Any) -> None:
    member = signed_in(juma)
    owner = signed_in(asha)
    # An owner needs it on before requiring it.
    owner.post(PAGE, {"action": "require", "account": alice.pk})
    alice.refresh_from_db()
    assert not alice.require_2fa
    enable(owner)
    assert owner.post(PAGE, {"action": "require", "account": alice.pk}).status_code == 302
    alice.refresh_from_db()
    assert alice.require_2fa
    event = AuditEvent.objects.get(action="account.two_factor")
    assert event.details == {"required": True} and event.actor == asha

    # The member without it is sent to set it up, from every page.
    for page in ("", "keys/", "messages/", "webhooks/"):
        response = member.get(f"{DASH}{page}")
        assert response.status_code == 302 and response["Location"].startswith(PAGE), page
    device = enable(member)
    assert member.get(f"{DASH}keys/").status_code == 200
    # It cannot be turned off while required.
    member.post(PAGE, {"action": "disable", "code": code_for(device, ahead=1)})
    assert two_factor.is_enabled(juma)


def test_an_owner_signed_in_with_a_password_alone_cannot_lift_the_requirement(
    alice: Account, asha: Any, juma: Any
) -> None:
    owner = signed_in(asha)
    enable(owner)
    assert owner.post(PAGE, {"action": "require", "account": alice.pk}).status_code == 302
    membership_add(user=juma, account=alice, role="owner")  # an owner without two-factor
    other = signed_in(juma)
    assert other.get(f"{DASH}keys/")["Location"].startswith(PAGE)
    assert other.post(PAGE, {"action": "allow", "account": alice.pk}).status_code == 302
    alice.refresh_from_db()
    assert alice.require_2fa
    assert other.get(f"{DASH}keys/")["Location"].startswith(PAGE)
    # With a code passed in this session, an owner may.
    assert owner.post(PAGE, {"action": "allow", "account": alice.pk}).status_code == 302
    alice.refresh_from_db()
    assert not alice.require_2fa


def test_only_owners_change_the_requirement(alice: Account, juma: Any) -> None:
    member = signed_in(juma)
    enable(member)
    member.post(PAGE, {"action": "require", "account": alice.pk})
    alice.refresh_from_db()
    assert not alice.require_2fa
    assert not AuditEvent.objects.filter(action="account.two_factor").exists()


def test_operators_require_it_in_django_admin(alice: Account) -> None:
    root = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    admin = Client()
    admin.force_login(root)
    page = admin.get(f"/admin/integration/account/{alice.pk}/change/")
    assert b"require_2fa" in page.content
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k in form.fields}
    data.update(
        {
            "name": alice.name,
            "status": alice.status,
            "require_2fa": "on",
            "webhook_send_api_key": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "api_keys-TOTAL_FORMS": "0",
            "api_keys-INITIAL_FORMS": "0",
        }
    )
    response = admin.post(f"/admin/integration/account/{alice.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]
    alice.refresh_from_db()
    assert alice.require_2fa
    assert AuditEvent.objects.get(action="account.two_factor").details["required"] is True


# --- staff in Django admin ------------------------------------------------------------------------


@pytest.fixture
def root() -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)


def admin_sign_in(client: Client, code: str = "") -> Any:
    return client.post(
        "/admin/login/",
        {"username": "root", "password": PASSWORD, "otp_token": code, "next": "/admin/"},
    )


def test_staff_with_two_factor_give_the_code_with_the_password(root: Any) -> None:
    device = enable(signed_in(root))
    fresh_step(device)
    client = Client()
    refused = admin_sign_in(client)
    assert refused.status_code == 200 and b"current code" in refused.content
    assert "_auth_user_id" not in client.session
    assert admin_sign_in(client, "000000").status_code == 200
    wait_out_backoff()
    assert admin_sign_in(client, code_for(device)).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_staff_session_without_the_code_does_not_reach_the_admin(root: Any) -> None:
    enable(signed_in(root))
    client = Client()
    client.force_login(root)  # a session that never passed a code
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_operators_can_require_two_factor_of_all_staff(root: Any, settings: Any) -> None:
    settings.MIFUMO_REQUIRE_STAFF_2FA = True
    client = Client()
    refused = admin_sign_in(client)
    assert refused.status_code == 200
    assert b"two-factor" in refused.content and PAGE.encode() in refused.content
    # Staff of no account set it up on the dashboard's page, then the admin opens.
    dashboard = signed_in(root)
    device = enable(dashboard)
    assert dashboard.get("/admin/").status_code == 200
    fresh_step(device)
    assert admin_sign_in(Client(), code_for(device)).status_code == 302


def test_operators_can_remove_a_lost_device(root: Any, asha: Any) -> None:
    device = enable(signed_in(asha))
    staff = Client()
    staff.force_login(root)
    listing = staff.get("/admin/otp_totp/totpdevice/")
    assert listing.status_code == 200 and b"asha" in listing.content
    # The secret is never shown once the device exists.
    page = staff.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert device.key not in page.content.decode()
    staff.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert not two_factor.is_enabled(asha)


def operator_signed_in(root: Any) -> Client:
    """root, with two-factor on, through the admin's sign-in with a code."""
    device = enable(signed_in(root))
    fresh_step(device)
    client = Client()
    assert admin_sign_in(client, code_for(device)).status_code == 302
    return client


def test_an_operator_removing_a_device_is_in_each_of_the_users_accounts_logs(
    root: Any, asha: Any, alice: Account, bob: Account
) -> None:
    membership_add(user=asha, account=bob, role="member")
    device = enable(signed_in(asha))
    staff = operator_signed_in(root)
    removed = staff.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert removed.status_code == 302 and not two_factor.is_enabled(asha)
    events = AuditEvent.objects.filter(action="two_factor.disabled").order_by("account__name")
    assert [(e.account.name, e.target, e.actor, e.operator) for e in events] == [
        ("alice", "asha", root, True),
        ("bob", "asha", root, True),
    ]
    # The account sees an operator, never which one.
    log = signed_in(asha).get(f"{DASH}activity/").content.decode()
    assert "Turned off two-factor authentication" in log and "Mifumo operator" in log
    assert "root" not in log


def test_devices_removed_from_the_list_are_logged_for_the_users_left_without_one(
    root: Any, asha: Any, juma: Any, alice: Account
) -> None:
    device = enable(signed_in(asha))
    pending = signed_in(juma).post(PAGE, {"action": "begin"}).context["setup"]
    staff = operator_signed_in(root)
    response = staff.post(
        "/admin/otp_totp/totpdevice/",
        {"action": "delete_selected", "_selected_action": [device.pk, pending.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk__in=[device.pk, pending.pk]).exists()
    # juma had not turned it on: nothing of theirs was turned off.
    events = AuditEvent.objects.filter(action="two_factor.disabled")
    assert [(e.target, e.operator) for e in events] == [("asha", True)]
