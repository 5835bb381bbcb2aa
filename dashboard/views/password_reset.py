"""Password reset by e-mail, with Django's views and tokens: a form asks for the address,
a mail carries a one-time link, the link sets a new password. Whether an address belongs
to anyone is never revealed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse_lazy

from dashboard.access import user_memberships
from integration.audit import Action, audit_record
from mifumo.client_ip import client_address

# Reset mails per client address an hour: enough for a forgetful person, not for flooding
# someone's inbox.
MAX_RESETS_PER_HOUR = 5


def _allowed(address: str) -> bool:
    key = f"dashboard-reset:{address}"
    try:
        cache.add(key, 0, 3600)
        return int(cache.incr(key)) <= MAX_RESETS_PER_HOUR
    except Exception:  # noqa: BLE001 - resets keep working while the cache is down
        return True


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "dashboard/password_reset.html"
    email_template_name = "dashboard/email/password_reset.txt"
    subject_template_name = "dashboard/email/password_reset_subject.txt"
    success_url = reverse_lazy("dashboard:password_reset_sent")

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        if not _allowed(client_address(self.request)):
            # The same answer as a sent mail: nothing to learn, nothing sent.
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class PasswordResetSentView(auth_views.PasswordResetDoneView):
    template_name = "dashboard/password_reset_sent.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "dashboard/password_reset_confirm.html"
    success_url = reverse_lazy("dashboard:password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        user = form.user
        for membership in user_memberships(user.pk):
            audit_record(
                account=membership.account,
                actor=user,
                action=Action.PASSWORD_RESET,
                target=user.get_username(),
                request=self.request,
            )
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "dashboard/password_reset_complete.html"
