"""Signing in and out, changing the password, and choosing the account to work in."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from dashboard.access import (
    SESSION_ACCOUNT_KEY,
    Workspace,
    dashboard_view,
    method_not_allowed,
    user_memberships,
)
from dashboard.audit import Action, audit_failed_sign_in, audit_record
from dashboard.forms import LoginForm
from dashboard.throttle import MAX_FAILURES, LoginThrottle
from dashboard.views.common import render_page
from integration.ratelimit import client_address
from integration.services import membership_mark_used


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("dashboard:overview")


def _throttled(request: HttpRequest, throttle: LoginThrottle, next_url: str) -> HttpResponse:
    wait = throttle.retry_after()
    minutes = max(math.ceil(wait / 60), 1)
    form = LoginForm(request, initial={"username": throttle.username})
    response = render(
        request,
        "dashboard/login.html",
        {
            "form": form,
            "next": next_url,
            "throttled": (
                f"Too many failed sign-in attempts for this username from your network. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
            ),
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


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
    if throttle.blocked():
        return _throttled(request, throttle, next_url)
    form = LoginForm(request, data=request.POST)
    if not form.is_valid():
        audit_failed_sign_in(request=request, username=str(request.POST.get("username", "")))
        if throttle.fail() >= MAX_FAILURES:
            return _throttled(request, throttle, next_url)
        return render(request, "dashboard/login.html", {"form": form, "next": next_url}, status=200)
    throttle.reset()
    user = form.get_user()
    login(request, user)
    for membership in user_memberships(user.pk):
        audit_record(
            account=membership.account,
            actor=user,
            action=Action.LOGIN,
            target=user.get_username(),
            request=request,
        )
    return HttpResponseRedirect(_safe_next(request, next_url))


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
        for membership in ws.memberships:
            audit_record(
                account=membership.account,
                actor=user,
                action=Action.PASSWORD_CHANGED,
                target=user.get_username(),
                request=request,
            )
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
