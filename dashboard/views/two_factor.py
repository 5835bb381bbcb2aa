"""The two-factor page: turn a TOTP authenticator app on (scan, confirm with a code), replace
it or turn it off (each with a current code), and, for an account's owners, require it of
every member.

Any signed-in user reaches it, members of no account included: staff set two-factor up here
too. The rules themselves are in ``integration.two_factor``.
"""

from __future__ import annotations

from base64 import b32encode
from typing import Any

import django_otp
import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_totp.models import TOTPDevice

from dashboard.access import Workspace, user_memberships, workspace_for
from dashboard.forms import CodeForm, CurrentCodeForm
from integration import two_factor
from integration.audit import Action, AuditContext, audit_user_record
from integration.models import Membership
from integration.throttle import LoginThrottle
from mifumo.client_ip import client_address

# The device this session began after a current code of the confirmed one: the one device
# that may replace it (``integration.two_factor.setup_confirm``).
REPLACING_KEY = "dashboard_2fa_replacing"


def _qr_svg(url: str) -> SafeString:
    """The otpauth:// URL as an inline SVG QR code (paths only; nothing from the URL is
    written into the markup as text)."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    svg = image.to_string(encoding="unicode")
    return mark_safe(svg[svg.index("<svg") :])  # noqa: S308 - markup made by qrcode, no input


def _secret_groups(device: TOTPDevice) -> str:
    """The secret as the app's manual entry wants it: base32, in groups of four."""
    text = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def _page(
    request: HttpRequest,
    user: AbstractBaseUser,
    ws: Workspace | None,
    *,
    setup: TOTPDevice | None = None,
    form: CodeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """``form``, with its errors, in its place: the current code asked before a replacement,
    or the code of the other steps."""
    current = form if isinstance(form, CurrentCodeForm) else None
    context: dict[str, Any] = {
        "ws": ws,
        "section": "two_factor",
        "base_template": "dashboard/base.html" if ws is not None else "dashboard/base_public.html",
        "enabled": two_factor.is_enabled(user),
        "requiring": two_factor.accounts_requiring(user),
        "staff_required": two_factor.required_of_staff(user),
        "owned": [m for m in user_memberships(int(user.pk)) if m.role == Membership.Role.OWNER],
        "form": form if form is not None and current is None else CodeForm(),
        "current_form": current or CurrentCodeForm(),
        "next": request.POST.get("next") or request.GET.get("next") or "",
    }
    if setup is not None:
        context.update(setup=setup, qr=_qr_svg(setup.config_url), secret=_secret_groups(setup))
    return render(request, "dashboard/two_factor.html", context, status=status)


@sensitive_post_parameters("code", "current-code")
@never_cache
@require_http_methods(["GET", "POST"])
def two_factor_view(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    user = request.user
    assert isinstance(user, AbstractBaseUser)
    if two_factor.missing_step(user, required=False) == two_factor.CODE_STEP:
        # Two-factor is on but this session never passed a code: that comes first.
        return redirect_to_login(request.get_full_path(), reverse("dashboard:login_code"))
    ws = workspace_for(request)
    action = request.POST.get("action", "") if request.method == "POST" else ""
    if action == "begin":
        return _begin(request, user, ws)
    if action == "confirm":
        return _confirm(request, user, ws)
    if action == "disable":
        return _disable(request, user, ws)
    if action in {"require", "allow"}:
        return _account_policy(request, user, required=action == "require")
    return _page(request, user, ws)


def _current_code_refused(
    request: HttpRequest, user: AbstractBaseUser, ws: Workspace | None, form: CodeForm
) -> HttpResponse | None:
    """None when ``form`` holds a current code of the user's device; otherwise the page
    saying why. Counted by the sign-in code step's throttle (``integration.throttle``, scope
    "code"): these forms give a guesser no tries of their own."""
    throttle = LoginThrottle(user.get_username(), client_address(request), scope="code")
    if throttle.allow():
        if two_factor.verify(user, form.data.get(form.add_prefix("code"))) is not None:
            throttle.succeeded()
            return None
        if not throttle.exhausted():
            form.add_error("code", "That code is not right, or it was already used.")
            return _page(request, user, ws, form=form, status=400)
    form.add_error("code", "Too many wrong codes from your network; try again later.")
    response = _page(request, user, ws, form=form, status=429)
    response["Retry-After"] = str(throttle.retry_after())
    return response


def _begin(request: HttpRequest, user: AbstractBaseUser, ws: Workspace | None) -> HttpResponse:
    """A new device to scan. With two-factor on it is to replace the device in use, whose
    current code comes first."""
    replacing = two_factor.is_enabled(user)
    if replacing:
        refused = _current_code_refused(request, user, ws, CurrentCodeForm(request.POST))
        if refused is not None:
            return refused
    device = two_factor.setup_begin(user)
    if replacing:
        request.session[REPLACING_KEY] = device.pk
    return _page(request, user, ws, setup=device)


def _confirm(request: HttpRequest, user: AbstractBaseUser, ws: Workspace | None) -> HttpResponse:
    replacing = two_factor.is_enabled(user)
    pending = two_factor.pending_device(user)
    approved = request.session.get(REPLACING_KEY)
    if replacing and (pending is None or pending.pk != approved):
        messages.error(
            request,
            "To replace your authenticator app, enter a code from the app in use first, "
            "then scan the new app's key.",
        )
        return redirect("dashboard:two_factor")
    form = CodeForm(request.POST)
    device = two_factor.setup_confirm(user, form.data.get("code"), replacing=approved)
    if device is None:
        form.add_error("code", "That code does not match: scan the code again and retry.")
        return _page(request, user, ws, setup=pending, form=form, status=400)
    request.session.pop(REPLACING_KEY, None)
    # This session has just proved the new factor.
    django_otp.login(request, device)
    action = Action.TWO_FACTOR_REPLACED if replacing else Action.TWO_FACTOR_ENABLED
    audit_user_record(user=user, action=action, request=request)
    messages.success(
        request,
        "The new authenticator app is in use; the old one's codes no longer work."
        if replacing
        else "Two-factor authentication is on: sign-ins now ask for a code.",
    )
    next_url = request.POST.get("next") or ""
    if next_url.startswith("/") and not next_url.startswith("//"):
        return redirect(next_url)
    return redirect("dashboard:two_factor")


def _disable(request: HttpRequest, user: AbstractBaseUser, ws: Workspace | None) -> HttpResponse:
    if two_factor.is_required(user):
        messages.error(request, "Two-factor authentication is required for you; it stays on.")
        return redirect("dashboard:two_factor")
    refused = _current_code_refused(request, user, ws, CodeForm(request.POST))
    if refused is not None:
        return refused
    two_factor.disable(user)
    audit_user_record(user=user, action=Action.TWO_FACTOR_DISABLED, request=request)
    messages.success(request, "Two-factor authentication is off.")
    return redirect("dashboard:two_factor")


def _account_policy(
    request: HttpRequest, user: AbstractBaseUser, *, required: bool
) -> HttpResponse:
    owned = {
        m.account_id: m for m in user_memberships(int(user.pk)) if m.role == Membership.Role.OWNER
    }
    try:
        membership = owned[int(request.POST.get("account", ""))]
    except (KeyError, ValueError):
        messages.error(request, "Only an account's owners can change what it requires.")
        return redirect("dashboard:two_factor")
    account = membership.account
    # Either way only from a session that passed a code: an owner signed in with a password
    # alone must not lift the requirement that stops exactly that.
    if not two_factor.is_enabled(user) or not getattr(user, "is_verified", lambda: False)():
        messages.error(request, "Turn two-factor authentication on for yourself first.")
        return redirect("dashboard:two_factor")
    two_factor.account_set_required(
        account=account, required=required, audit=AuditContext(actor=user, request=request)
    )
    messages.success(
        request,
        f"{account.name} now requires two-factor authentication of every member."
        if required
        else f"{account.name} leaves two-factor authentication to each member.",
    )
    return redirect("dashboard:two_factor")
