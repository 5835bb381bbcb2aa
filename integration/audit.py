"""The account activity log: one call records who did what, from wherever it happened.

    audit_record(account=account, actor=request.user, action=Action.API_KEY_CREATED,
                 target=api_key, details={"permission": "write"}, request=request)

``actor`` may be None (an API key or the system acting) or an anonymous user, which is
stored as None too. ``target`` is anything with a useful ``str()``. With a request, the
client address is kept as well.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest

from integration.models import Account, AuditEvent, Membership
from mifumo.api import text
from mifumo.client_ip import client_address


class Action:
    """The actions the platform records, with how the activity page names them. Other
    strings are accepted too and shown as they are."""

    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 - an action name
    PASSWORD_RESET = "password.reset"  # noqa: S105 - an action name
    TWO_FACTOR_ENABLED = "two_factor.enabled"
    TWO_FACTOR_DISABLED = "two_factor.disabled"
    TWO_FACTOR_REPLACED = "two_factor.replaced"
    ACCOUNT_TWO_FACTOR_CHANGED = "account.two_factor"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    API_KEY_ROTATED = "api_key.rotated"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_UPDATED = "webhook.updated"
    WEBHOOK_DELETED = "webhook.deleted"
    WEBHOOK_SECRET_REVEALED = "webhook.secret_revealed"  # noqa: S105 - an action name
    WEBHOOK_SECRET_ROTATED = "webhook.secret_rotated"  # noqa: S105 - an action name
    WEBHOOK_TESTED = "webhook.tested"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
    SIGNING_SECRET_REVEALED = "signing_secret.revealed"  # noqa: S105 - an action name
    SIGNING_SECRET_ROTATED = "signing_secret.rotated"  # noqa: S105 - an action name
    SENDER_ID_REQUESTED = "sender_id.requested"
    SENDER_ID_APPROVED = "sender_id.approved"
    SENDER_ID_REJECTED = "sender_id.rejected"
    MESSAGE_SENT = "message.sent"
    MESSAGE_CANCELED = "message.canceled"
    CONTACTS_IMPORTED = "contacts.imported"
    ACCOUNT_TOPPED_UP = "account.top_up"
    ACCOUNT_ADJUSTED = "account.adjusted"
    ACCOUNT_SUSPENDED = "account.suspended"
    ACCOUNT_ACTIVATED = "account.activated"
    ACCOUNT_LIMITS_CHANGED = "account.limits_changed"
    MEMBERSHIP_CHANGED = "membership.changed"
    MEMBER_REMOVED = "membership.removed"
    MEMBER_INVITED = "invitation.sent"
    INVITATION_REVOKED = "invitation.revoked"
    INVITATION_ACCEPTED = "invitation.accepted"
    CONTACT_CREATED = "contact.created"
    CONTACT_UPDATED = "contact.updated"
    CONTACT_DELETED = "contact.deleted"
    CONTACT_OPTED_OUT = "contact.opted_out"
    CONTACT_OPTED_IN = "contact.opted_in"
    CONTACTS_EXPORTED = "contacts.exported"
    SEGMENT_CREATED = "segment.created"
    SEGMENT_UPDATED = "segment.updated"
    SEGMENT_DELETED = "segment.deleted"
    TEMPLATE_CREATED = "template.created"
    TEMPLATE_UPDATED = "template.updated"
    TEMPLATE_DELETED = "template.deleted"
    LOW_BALANCE_THRESHOLD_SET = "account.low_balance_threshold"
    BALANCE_LOW = "account.low_balance"


ACTION_LABELS: dict[str, str] = {
    Action.LOGIN: "Signed in",
    Action.LOGIN_FAILED: "Failed sign-in",
    Action.PASSWORD_CHANGED: "Changed password",
    Action.PASSWORD_RESET: "Reset password by e-mail",
    Action.TWO_FACTOR_ENABLED: "Turned on two-factor authentication",
    Action.TWO_FACTOR_DISABLED: "Turned off two-factor authentication",
    Action.TWO_FACTOR_REPLACED: "Replaced the two-factor authenticator app",
    Action.ACCOUNT_TWO_FACTOR_CHANGED: "Changed the two-factor requirement",
    Action.API_KEY_CREATED: "Created API key",
    Action.API_KEY_REVOKED: "Revoked API key",
    Action.API_KEY_ROTATED: "Rotated API key",
    Action.WEBHOOK_CREATED: "Created webhook",
    Action.WEBHOOK_UPDATED: "Changed webhook",
    Action.WEBHOOK_DELETED: "Deleted webhook",
    Action.WEBHOOK_SECRET_REVEALED: "Revealed webhook signing secret",
    Action.WEBHOOK_SECRET_ROTATED: "Rotated webhook signing secret",
    Action.WEBHOOK_TESTED: "Sent webhook test event",
    Action.WEBHOOK_REDELIVERED: "Redelivered webhook",
    Action.SIGNING_SECRET_REVEALED: "Revealed account signing secret",
    Action.SIGNING_SECRET_ROTATED: "Rotated account signing secret",
    Action.SENDER_ID_REQUESTED: "Requested sender ID",
    Action.SENDER_ID_APPROVED: "Sender ID approved",
    Action.SENDER_ID_REJECTED: "Sender ID rejected",
    Action.MESSAGE_SENT: "Sent message",
    Action.MESSAGE_CANCELED: "Canceled message",
    Action.CONTACTS_IMPORTED: "Imported contacts",
    Action.ACCOUNT_TOPPED_UP: "Balance topped up",
    Action.ACCOUNT_ADJUSTED: "Balance adjusted",
    Action.ACCOUNT_SUSPENDED: "Account suspended",
    Action.ACCOUNT_ACTIVATED: "Account activated",
    Action.ACCOUNT_LIMITS_CHANGED: "Account limits changed",
    Action.MEMBERSHIP_CHANGED: "Membership changed",
    Action.MEMBER_REMOVED: "Removed member",
    Action.MEMBER_INVITED: "Invited member",
    Action.INVITATION_REVOKED: "Revoked invitation",
    Action.INVITATION_ACCEPTED: "Accepted invitation",
    Action.CONTACT_CREATED: "Added contact",
    Action.CONTACT_UPDATED: "Changed contact",
    Action.CONTACT_DELETED: "Deleted contact",
    Action.CONTACT_OPTED_OUT: "Opted contact out",
    Action.CONTACT_OPTED_IN: "Opted contact back in",
    Action.CONTACTS_EXPORTED: "Exported contacts",
    Action.SEGMENT_CREATED: "Created segment",
    Action.SEGMENT_UPDATED: "Changed segment",
    Action.SEGMENT_DELETED: "Deleted segment",
    Action.TEMPLATE_CREATED: "Created message template",
    Action.TEMPLATE_UPDATED: "Changed message template",
    Action.TEMPLATE_DELETED: "Deleted message template",
    Action.LOW_BALANCE_THRESHOLD_SET: "Set low-balance alert",
    Action.BALANCE_LOW: "Balance fell below the alert threshold",
}

_TARGET_LENGTH = AuditEvent._meta.get_field("target").max_length or 255


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def _address(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    raw = client_address(request)
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        # The column only takes addresses; "unknown" or a mangled proxy header is dropped.
        return None


def _plain(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details as JSON-safe values (decimals, dates and ids become strings)."""
    if not details:
        return {}
    encoder = DjangoJSONEncoder()
    out: dict[str, Any] = {}
    for key, value in details.items():
        if value is None or isinstance(value, bool | int | float | str):
            out[str(key)] = value
        elif isinstance(value, list | tuple):
            out[str(key)] = [
                v if isinstance(v, bool | int | float | str) else str(v) for v in value
            ]
        else:
            try:
                out[str(key)] = encoder.default(value)
            except TypeError:
                out[str(key)] = str(value)
    return out


def audit_record(
    *,
    account: Account | int,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    target: object = "",
    details: Mapping[str, Any] | None = None,
    request: HttpRequest | None = None,
    operator: bool = False,
) -> AuditEvent:
    """``operator``: done by a Mifumo operator (Django admin, a management command); the
    account's activity page names no operator and shows no address for it."""
    user = actor if isinstance(actor, AbstractBaseUser) and actor.pk is not None else None
    account_id = account if isinstance(account, int) else account.pk
    return AuditEvent.objects.create(
        account_id=account_id,
        actor_id=user.pk if user is not None else None,
        action=action,
        target=str(target)[:_TARGET_LENGTH] if target is not None else "",
        details=_plain(details),
        ip=_address(request),
        operator=operator,
    )


@dataclass(frozen=True)
class AuditContext:
    """Who asks a service for an action, from where: the service records the action with
    it, in the same transaction as the change. ``details`` says how it was asked (``via``
    the API, ``by`` an operator) and is added to what the service records."""

    actor: AbstractBaseUser | AnonymousUser | None = None
    request: HttpRequest | None = None
    operator: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    def record(
        self,
        *,
        account: Account | int,
        action: str,
        target: object = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        return audit_record(
            account=account,
            actor=self.actor,
            action=action,
            target=target,
            details={**(details or {}), **self.details},
            request=self.request,
            operator=self.operator,
        )


def user_audit(request: HttpRequest) -> AuditContext:
    """What the signed-in user asks for, from the client address of ``request``."""
    return AuditContext(actor=request.user, request=request)


def operator_audit(request: HttpRequest, **details: Any) -> AuditContext:
    """What a Mifumo operator does in the Django admin."""
    return AuditContext(actor=request.user, request=request, operator=True, details=details)


def audit_user_record(
    *,
    user: AbstractBaseUser,
    action: str,
    request: HttpRequest | None = None,
    signed_in: bool = True,
    audit: AuditContext | None = None,
) -> None:
    """Record something that happened to a user's sign-in (signing in, a failed attempt,
    their password, their second factor) in the activity log of every account they belong
    to. ``signed_in``: the user did it; otherwise no one known did (a wrong password).
    ``audit``: someone else did it, as it says (an operator in Django admin)."""
    context = audit or AuditContext(actor=user if signed_in else None, request=request)
    for account_id in Membership.objects.filter(user_id=user.pk).values_list(
        "account_id", flat=True
    ):
        context.record(account=account_id, action=action, target=user.get_username())


def audit_failed_sign_in(*, request: HttpRequest, username: str) -> None:
    """A wrong password for an existing user goes into the log of each of their accounts
    (an unknown username belongs to no account, so it is not recorded anywhere)."""
    if text.problem(username):
        return  # names no user, and could not be looked up
    user_model = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is not None:
        audit_user_record(user=user, action=Action.LOGIN_FAILED, request=request, signed_in=False)
