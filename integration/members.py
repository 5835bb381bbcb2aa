"""Writes for who belongs to an account: memberships, their roles, and the invitations
that add people."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from integration.audit import Action, AuditContext
from integration.models import Account, Invitation, Membership
from integration.selectors import INVITATION_SALT, invitation_check_usable
from mifumo.errors import DomainError, ErrorCode


@transaction.atomic
def membership_add(
    *, user: User, account: Account, role: str, audit: AuditContext | None = None
) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        user=user, account=account, defaults={"role": role}
    )
    if audit is not None:
        audit.record(
            account=account,
            action=Action.MEMBERSHIP_CHANGED,
            target=user.get_username(),
            details={"role": role},
        )
    return membership


def membership_mark_used(*, membership: Membership) -> None:
    """Remember that the user is working in this account now (they sign in to it next)."""
    now = timezone.now()
    Membership.objects.filter(pk=membership.pk).update(last_used_at=now)
    membership.last_used_at = now


def _keep_an_owner(membership: Membership, *, new_role: str | None) -> None:
    """Refuse to leave an account without an owner. Locks the account's owner rows, so two
    owners demoting each other at once cannot both succeed."""
    if membership.role != Membership.Role.OWNER or new_role == Membership.Role.OWNER:
        return
    owners = list(
        Membership.objects.select_for_update()
        .filter(account_id=membership.account_id, role=Membership.Role.OWNER)
        .values_list("pk", flat=True)
    )
    if owners == [membership.pk]:
        raise DomainError(
            ErrorCode.CONFLICT,
            "An account needs at least one owner: make someone else an owner first",
            {"membership": membership.pk},
        )


def membership_set_role(
    *, membership: Membership, role: str, audit: AuditContext | None = None
) -> Membership:
    """The log names a change of role only. Someone who is no longer an owner loses the
    invitations they sent (``invitations_revoke_sent``)."""
    role = Membership.Role(role)
    before = membership.role
    with transaction.atomic():
        _keep_an_owner(membership, new_role=role)
        Membership.objects.filter(pk=membership.pk).update(role=role)
        membership.role = role
        if audit is not None and role != before:
            audit.record(
                account=membership.account_id,
                action=Action.MEMBERSHIP_CHANGED,
                target=membership.user.get_username(),
                details={"role": role, "was": before},
            )
        if role != Membership.Role.OWNER:
            invitations_revoke_sent(membership=membership, audit=audit)
    return membership


def membership_remove(*, membership: Membership, audit: AuditContext | None = None) -> None:
    """The member's pending invitations to the account are revoked with them."""
    with transaction.atomic():
        _keep_an_owner(membership, new_role=None)
        Membership.objects.filter(pk=membership.pk).delete()
        if audit is not None:
            audit.record(
                account=membership.account_id,
                action=Action.MEMBER_REMOVED,
                target=membership.user.get_username(),
                details={"role": membership.role},
            )
        invitations_revoke_sent(membership=membership, audit=audit)


def invitations_revoke_sent(*, membership: Membership, audit: AuditContext | None = None) -> int:
    """Revoke the pending invitations the member sent to the account, once they are no
    longer an owner of it (removed, or given another role): nobody joins on the word of
    someone who could not invite them now, the former owner at another address included.
    How many; each is logged as revoked. Taken after the memberships' locks, as acceptance
    takes them, so the two never wait for each other."""
    now = timezone.now()
    with transaction.atomic():
        pending = list(
            Invitation.objects.select_for_update()
            .filter(
                account_id=membership.account_id,
                invited_by_id=membership.user_id,
                accepted_at__isnull=True,
                revoked_at__isnull=True,
                expires_at__gt=now,
            )
            .order_by("pk")
        )
        Invitation.objects.filter(pk__in=[i.pk for i in pending]).update(revoked_at=now)
        if audit is not None:
            inviter = membership.user.get_username()
            for invitation in pending:
                audit.record(
                    account=membership.account_id,
                    action=Action.INVITATION_REVOKED,
                    target=invitation.email,
                    details={"invited_by": inviter},
                )
    return len(pending)


def invitation_token(*, invitation: Invitation) -> str:
    """The signed token of an invitation's link; it also expires with the invitation."""
    return signing.dumps(invitation.pk, salt=INVITATION_SALT)


def invitation_create(
    *,
    account: Account,
    email: str,
    role: str,
    invited_by: User | None,
    audit: AuditContext | None = None,
) -> tuple[Invitation, str]:
    """A new invitation and its link token. An earlier pending invitation of the same
    address to the account is revoked, so only the newest link works."""
    email = email.strip()
    if Membership.objects.filter(account=account, user__email__iexact=email).exists():
        raise DomainError(
            ErrorCode.CONFLICT,
            f"{email} already belongs to a member of this account",
            {"email": [f"{email} is already a member"]},
        )
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.filter(
            account=account,
            email__iexact=email,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        ).update(revoked_at=now)
        invitation = Invitation.objects.create(
            account=account,
            email=email,
            role=Membership.Role(role),
            invited_by=invited_by,
            created_at=now,
            expires_at=now + timedelta(days=settings.MIFUMO_INVITATION_DAYS),
        )
        if audit is not None:
            audit.record(
                account=account,
                action=Action.MEMBER_INVITED,
                target=invitation.email,
                details={"role": invitation.role, "expires_at": invitation.expires_at},
            )
    return invitation, invitation_token(invitation=invitation)


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, audit: AuditContext | None = None) -> Invitation:
    if invitation.status == "pending":
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    if audit is not None:
        audit.record(
            account=invitation.account_id,
            action=Action.INVITATION_REVOKED,
            target=invitation.email,
        )
    return invitation


def _lock_inviter(invitation: Invitation) -> None:
    """Hold the inviter's membership until the commit: their removal or change of role
    waits for the acceptance, or the acceptance sees it."""
    if invitation.invited_by_id is None:
        return
    list(
        Membership.objects.select_for_update()
        .filter(account_id=invitation.account_id, user_id=invitation.invited_by_id)
        .values_list("pk", flat=True)
    )


def invitation_accept(
    *, invitation: Invitation, user: User, audit: AuditContext | None = None
) -> Membership:
    """Join the invitation's account; the link is used up. Someone who already belongs to
    the account keeps their role. The joining user is the one who acts. CONFLICT when the
    invitation can no longer be used (``invitation_check_usable``)."""
    with transaction.atomic():
        _lock_inviter(invitation)
        locked = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("account")
            .get(pk=invitation.pk)
        )
        invitation_check_usable(invitation=locked)
        membership, _ = Membership.objects.get_or_create(
            user=user, account_id=locked.account_id, defaults={"role": locked.role}
        )
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
        if audit is not None:
            replace(audit, actor=user).record(
                account=locked.account_id,
                action=Action.INVITATION_ACCEPTED,
                target=user.get_username(),
                details={"email": locked.email, "role": membership.role},
            )
    invitation.accepted_at, invitation.accepted_by = locked.accepted_at, user
    return membership


def invitation_accept_as_new_user(
    *,
    invitation: Invitation,
    username: str,
    password: str,
    audit: AuditContext | None = None,
) -> tuple[User, Membership]:
    """Create the invited person's login (with the invited address) and join the account,
    both or neither. CONFLICT when a login with that address exists: its owner signs in and
    joins with it (a second login with one address would share its password resets)."""
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise DomainError(
            ErrorCode.CONFLICT,
            f"A login with {invitation.email} exists already: sign in with it, then open "
            "this link again to join with it.",
            {"email": [f"a login with {invitation.email} exists"]},
        )
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username, email=invitation.email, password=password
            )
            return user, invitation_accept(invitation=invitation, user=user, audit=audit)
    except IntegrityError:
        raise DomainError(
            ErrorCode.CONFLICT,
            f"The username {username} is taken; choose another",
            {"username": [f"{username} is taken"]},
        ) from None
