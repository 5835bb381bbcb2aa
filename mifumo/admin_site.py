"""The operators' Django admin site: Django's own, with the sign-in throttled like the
dashboard's and two-factor aware (``integration.two_factor``).

- Every sign-in attempt is counted before the password is checked, per username and client
  address and per address (``integration.throttle``; the dashboard and the admin share one
  budget). Over the limit the answer is 429 with ``Retry-After``, even for the right
  password.
- A staff user with two-factor on enters the code from their app with the password; a
  session that has not passed a code does not reach the admin. With
  ``MIFUMO_REQUIRE_STAFF_2FA`` on, staff without two-factor are sent to set it up first.
"""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from integration import two_factor
from integration.throttle import LoginThrottle
from mifumo.client_ip import client_address


class AdminLoginForm(AdminAuthenticationForm):
    otp_token = forms.CharField(
        required=False,
        max_length=12,
        label="Authentication code",
        help_text="From your authenticator app, when two-factor authentication is on for you.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user = self.get_user()
        if two_factor.is_enabled(user):
            device = two_factor.verify(user, self.cleaned_data.get("otp_token"))
            if device is None:
                raise forms.ValidationError(
                    "Enter the current code from your authenticator app.", code="otp"
                )
            # django-otp marks the session verified when the user is signed in.
            user.otp_device = device  # type: ignore[attr-defined]
        elif two_factor.required_of_staff(user):
            setup = reverse("dashboard:two_factor")
            raise forms.ValidationError(
                "Staff must use two-factor authentication. Sign in to the dashboard and set "
                f"it up at {setup}, then come back.",
                code="otp_setup",
            )
        return cleaned


class AdminSite(admin.AdminSite):
    login_form = AdminLoginForm
    login_template = "admin/mifumo_login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        step = two_factor.missing_step(
            request.user, required=two_factor.required_of_staff(request.user)
        )
        return step is None

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        if request.method != "POST":
            return super().login(request, extra_context)
        throttle = LoginThrottle(str(request.POST.get("username", "")), client_address(request))
        # Counted before the password is checked: parallel guesses cannot overtake the count.
        if not throttle.allow():
            return self._throttled(request, throttle)
        response = super().login(request, extra_context)
        if response.status_code == 302 and request.user.is_authenticated:
            throttle.succeeded()
        elif throttle.exhausted():
            return self._throttled(request, throttle)
        return response

    def _throttled(self, request: HttpRequest, throttle: LoginThrottle) -> HttpResponse:
        wait = throttle.retry_after()
        minutes = max(math.ceil(wait / 60), 1)
        context = {
            **self.each_context(request),
            "title": "Log in",
            "site_header": self.site_header,
            "form": self.login_form(request),
            "app_path": request.get_full_path(),
            "throttled": (
                "Too many failed sign-in attempts from your network. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
            ),
        }
        response = TemplateResponse(request, self.login_template, context, status=429)
        response["Retry-After"] = str(wait)
        return response
