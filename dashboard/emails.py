"""The mail the dashboard sends: team invitations and low-balance alerts (password resets
are Django's, with templates of ours). Sent with the EMAIL_BACKEND from the settings."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from integration.models import Invitation
from integration.selectors import account_alert_emails, account_name


def _send(template: str, context: dict[str, object], to: list[str]) -> int:
    # A header must be one line, whatever the template's whitespace.
    subject = " ".join(render_to_string(f"dashboard/email/{template}_subject.txt", context).split())
    body = render_to_string(f"dashboard/email/{template}.txt", context)
    return send_mail(subject, body, None, to)


def invitation_send(*, invitation: Invitation, link: str) -> int:
    return _send(
        "invitation",
        {
            "account": invitation.account,
            "role": invitation.get_role_display(),
            "inviter": invitation.invited_by.get_username() if invitation.invited_by else "",
            "link": link,
            "expires_at": invitation.expires_at,
        },
        [invitation.email],
    )


def low_balance_alert_send(
    *, account_id: int, balance: Decimal, threshold: Decimal, currency: str
) -> int:
    """Tell the account's owners and admins; answers how many mails went out."""
    to = account_alert_emails(account_id=account_id)
    if not to:
        return 0
    return _send(
        "low_balance",
        {
            "account_name": account_name(account_id=account_id),
            "balance": balance,
            "threshold": threshold,
            "currency": currency,
            "link": settings.MIFUMO_PUBLIC_URL + reverse("dashboard:billing"),
        },
        to,
    )
