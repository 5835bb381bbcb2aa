"""Two-factor authentication: a time-based code (TOTP) from an authenticator app, on top of
the password, for dashboard users and staff in Django admin.

Built on django-otp. A user has two-factor on when they have a *confirmed* ``TOTPDevice``;
``django_otp.middleware.OTPMiddleware`` marks a request verified (``request.user.
is_verified()``) once the session passed a code. The rules, for every door:

- A user with two-factor on is asked for a code at sign-in, and a session that has not
  passed one (signed in elsewhere before two-factor was turned on) must pass one before
  anything else.
- Two-factor is *required* of members of an account with ``require_2fa`` (set by operators
  in Django admin, or by the account's owners on the dashboard's two-factor page), and of
  every staff user in Django admin while ``MIFUMO_REQUIRE_STAFF_2FA`` is on. A user it is
  required of and who has not set it up is sent to set it up, and cannot turn it off.
- Users set it up (and turn it off, with a current code) themselves on the dashboard's
  two-factor page; operators can remove a lost device in Django admin (Django OTP > TOTP
  devices), after which the user sets up a new one.
- A new device replaces a confirmed one only after a current code of the confirmed one:
  a signed-in session alone, left open or taken, must not swap the user's factor for one
  of its own.

Codes are checked by django-otp: a code is accepted once (never replayed), within one 30 s
step either way, and failed checks slow the device down; the sign-in throttle
(``integration.throttle``, scope "code") limits guesses per user and address as well.
"""

from __future__ import annotations

import django_otp
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from integration.audit import Action, AuditContext
from integration.models import Account, Membership

DEVICE_NAME = "Authenticator app"

AnyUser = AbstractBaseUser | AnonymousUser


def confirmed_device(user: AnyUser) -> TOTPDevice | None:
    if not user.is_authenticated:
        return None
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("id").first()


def is_enabled(user: AnyUser) -> bool:
    return confirmed_device(user) is not None


def accounts_requiring(user: AnyUser) -> list[Account]:
    """The user's accounts that require two-factor of their members."""
    if not user.is_authenticated:
        return []
    return [
        m.account
        for m in Membership.objects.filter(user_id=user.pk, account__require_2fa=True)
        .select_related("account")
        .order_by("account__name")
    ]


def required_of_staff(user: AnyUser) -> bool:
    return bool(settings.MIFUMO_REQUIRE_STAFF_2FA and getattr(user, "is_staff", False))


def is_required(user: AnyUser) -> bool:
    """Whether the user may not be without two-factor anywhere."""
    return required_of_staff(user) or bool(accounts_requiring(user))


CODE_STEP = "code"
SETUP_STEP = "setup"


def missing_step(user: AnyUser, *, required: bool) -> str | None:
    """What a signed-in session still owes before it may go on: a code (two-factor is on
    and this session has not passed one), setting two-factor up (``required`` and it is
    off), or nothing."""
    is_verified = getattr(user, "is_verified", None)
    if is_verified is not None and is_verified():
        return None
    if is_enabled(user):
        return CODE_STEP
    return SETUP_STEP if required else None


def verify(user: AnyUser, code: str | None) -> TOTPDevice | None:
    """The user's device if ``code`` is its current code (each code is accepted once)."""
    device = confirmed_device(user)
    token = "".join((code or "").split())
    if device is None or not token.isdigit():
        return None
    verified = django_otp.verify_token(user, device.persistent_id, token)
    return verified if isinstance(verified, TOTPDevice) else None


def setup_begin(user: AbstractBaseUser) -> TOTPDevice:
    """A new, unconfirmed device (a fresh secret) for the user to add to their app; any
    earlier unconfirmed one is dropped. With two-factor on, the caller has checked a current
    code of the confirmed device, which the new one is to replace (``setup_confirm``)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).delete()
        return TOTPDevice.objects.create(user_id=user.pk, name=DEVICE_NAME, confirmed=False)


def pending_device(user: AbstractBaseUser) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user_id=user.pk, confirmed=False).order_by("-id").first()


def setup_confirm(
    user: AbstractBaseUser, code: str | None, *, replacing: int | None = None
) -> TOTPDevice | None:
    """Turn two-factor on if ``code`` comes from the device being set up; None if it does
    not (or nothing is being set up). While the user has a confirmed device, the new one
    replaces it only if it is ``replacing``: the device begun after the caller checked a
    current code of the confirmed one."""
    token = "".join((code or "").split())
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user_id=user.pk, confirmed=False)
            .order_by("-id")
            .first()
        )
        if device is None or not token.isdigit():
            return None
        if device.pk != replacing and is_enabled(user):
            return None
        if not device.verify_token(token):
            return None
        TOTPDevice.objects.filter(user_id=user.pk, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    return device


def disable(user: AbstractBaseUser) -> int:
    """Remove every device of the user; the caller has checked a current code."""
    deleted, _ = TOTPDevice.objects.filter(user_id=user.pk).delete()
    return deleted


@transaction.atomic
def account_set_required(
    *, account: Account, required: bool, audit: AuditContext | None = None
) -> bool:
    """Require two-factor of the account's members (or stop); True if that changed. Only a
    change is logged."""
    changed = (
        Account.objects.filter(pk=account.pk)
        .exclude(require_2fa=required)
        .update(require_2fa=required)
    )
    account.require_2fa = required
    if changed and audit is not None:
        audit.record(
            account=account,
            action=Action.ACCOUNT_TWO_FACTOR_CHANGED,
            target=account.name,
            details={"required": required},
        )
    return bool(changed)
