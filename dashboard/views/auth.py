"""Signing in and out, changing the password, and choosing the account to work in."""

from __future__ import annotations

import math
import time
from typing import Any

import django_otp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from dashboard.access import SESSION_ACCOUNT_KEY, Workspace, dashboard_view, method_not_allowed
from dashboard.forms import CodeForm, LoginForm
from dashboard.views.common import render_page
from integration import two_factor
from integration.audit import Action, audit_failed_sign_in, audit_user_record
from integration.members import membership_mark_used
from integration.throttle import LoginThrottle
from mifumo.client_ip import client_address

# The session of someone who passed the password step and owes a code; it lasts this long.
PENDING_KEY = "dashboard_2fa_pending"
PENDING_SECONDS = 300


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("dashboard:overview")


def _throttled(
    request: HttpRequest,
    throttle: LoginThrottle,
    template: str,
    context: dict[str, Any],
) -> HttpResponse:
    wait = throttle.retry_after()
    minutes = max(math.ceil(wait / 60), 1)
    context["throttled"] = (
        "Too many failed sign-in attempts from your network. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(wait)
    return response


def _signed_in(request: HttpRequest, user: User, next_url: str) -> HttpResponse:
    login(request, user)
    audit_user_record(user=user, action=Action.LOGIN, request=request)
    return HttpResponseRedirect(_safe_next(request, next_url))


@sensitive_post_parameters("password")
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if request.method == "GET" and request.user.is_authenticated:
        return redirect(_safe_next(request, next_url))
    if request.method != "POST":
        return render(
            request, "dashboard/login.html", {"form": LoginForm(request), "next": next_url}
        )
    throttle = LoginThrottle(str(request.POST.get("username", "")), client_address(request))
    blank = {"form": LoginForm(request, initial={"username": throttle.username}), "next": next_url}
    # Counted before the password is checked: parallel guesses cannot overtake the count.
    if not throttle.allow():
        return _throttled(request, throttle, "dashboard/login.html", blank)
    form = LoginForm(request, data=request.POST)
    if not form.is_valid():
        audit_failed_sign_in(request=request, username=throttle.username)
        if throttle.exhausted():
            return _throttled(request, throttle, "dashboard/login.html", blank)
        return render(request, "dashboard/login.html", {"form": form, "next": next_url}, status=200)
    throttle.succeeded()
    user = form.get_user()
    if two_factor.is_enabled(user):
        # Not signed in yet: the code step finishes it.
        request.session[PENDING_KEY] = {
            "user": user.pk,
            "backend": getattr(user, "backend", ""),
            "next": next_url,
            "at": time.time(),
        }
        return redirect("dashboard:login_code")
    return _signed_in(request, user, next_url)


def _pending_user(request: HttpRequest) -> tuple[User | None, dict[str, Any]]:
    """Who passed the password step in this session and owes a code, if it was recent."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None, {}
    user = User.objects.filter(pk=int(pending.get("user") or 0), is_active=True).first()
    return user, pending


@sensitive_post_parameters("code")
@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    """The second step of signing in for a user with two-factor on, and the step a signed-in
    session owes when two-factor was turned on since it began."""
    user, pending = _pending_user(request)
    if user is None and request.user.is_authenticated:
        if two_factor.missing_step(request.user, required=False) != two_factor.CODE_STEP:
            return redirect("dashboard:overview")
        user = request.user
    if user is None:
        messages.info(request, "Sign in again: the code step waits five minutes at most.")
        return redirect(settings.LOGIN_URL)
    next_url = str(pending.get("next") or request.POST.get("next") or request.GET.get("next") or "")
    context: dict[str, Any] = {"form": CodeForm(), "next": next_url}
    if request.method != "POST":
        return render(request, "dashboard/login_code.html", context)
    throttle = LoginThrottle(user.get_username(), client_address(request), scope="code")
    if not throttle.allow():
        return _throttled(request, throttle, "dashboard/login_code.html", context)
    form = CodeForm(request.POST)
    device = two_factor.verify(user, form.data.get("code"))
    if device is None:
        # The password was right: a wrong code is worth the account's attention.
        audit_user_record(user=user, action=Action.LOGIN_FAILED, request=request, signed_in=False)
        if throttle.exhausted():
            return _throttled(request, throttle, "dashboard/login_code.html", context)
        form.add_error("code", "That code is not right, or it was already used. Try the next one.")
        return render(request, "dashboard/login_code.html", {**context, "form": form})
    throttle.succeeded()
    if not pending:
        django_otp.login(request, device)
        return HttpResponseRedirect(_safe_next(request, next_url))
    request.session.pop(PENDING_KEY, None)
    # django-otp marks the new session verified when the user is signed in.
    user.otp_device = device  # type: ignore[attr-defined]
    user.backend = pending.get("backend") or settings.AUTHENTICATION_BACKENDS[0]  # type: ignore[attr-defined]
    return _signed_in(request, user, next_url)


@never_cache
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return method_not_allowed(request, ("POST",))
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect(settings.LOGIN_URL)


@sensitive_post_parameters("old_password", "new_password1", "new_password2")
@dashboard_view(methods=("GET", "POST"))
def password_change(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        # Keep this session signed in; every other session of the user ends.
        update_session_auth_hash(request, user)
        audit_user_record(user=user, action=Action.PASSWORD_CHANGED, request=request)
        messages.success(request, "Your password was changed.")
        return redirect("dashboard:overview")
    return render_page(request, ws, "dashboard/password_change.html", {"form": form})


@dashboard_view(methods=("POST",))
def account_switch(request: HttpRequest, ws: Workspace) -> HttpResponse:
    try:
        wanted = int(request.POST.get("account", ""))
    except ValueError:
        raise Http404("No such account") from None
    chosen = next((m for m in ws.memberships if m.account_id == wanted), None)
    if chosen is None:
        # Another account's id, or one that does not exist: the same answer for both.
        raise Http404("No such account")
    request.session[SESSION_ACCOUNT_KEY] = chosen.account_id
    membership_mark_used(membership=chosen)
    messages.info(request, f"Now working in {chosen.account.name}.")
    # Back to the overview: the page the user was on may belong to the other account.
    return redirect("dashboard:overview")
