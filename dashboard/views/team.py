"""The team: who belongs to the account and with which role; owners invite people by
e-mail (a signed link that expires), change roles and remove members. Accepting an
invitation is the one page here that needs no sign-in."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from dashboard.access import SESSION_ACCOUNT_KEY, Workspace, dashboard_view, method_not_allowed
from dashboard.emails import invitation_send
from dashboard.forms import AcceptInvitationForm, InviteForm, RoleForm
from dashboard.views.common import form_error, render_page
from integration.audit import user_audit
from integration.members import (
    invitation_accept,
    invitation_accept_as_new_user,
    invitation_create,
    invitation_revoke,
    membership_mark_used,
    membership_remove,
    membership_set_role,
)
from integration.models import Invitation, Membership
from integration.selectors import (
    account_members,
    invitation_check_usable,
    invitation_from_token,
    invitation_get,
    invitations_pending,
    membership_get,
)
from mifumo.errors import DomainError, ErrorCode

logger = logging.getLogger(__name__)


def _page(
    request: HttpRequest, ws: Workspace, form: InviteForm | None = None, *, status: int = 200
) -> HttpResponse:
    return render_page(
        request,
        ws,
        "dashboard/team.html",
        {
            "members": account_members(account=ws.account),
            "invitations": list(invitations_pending(account=ws.account)),
            "form": form if form is not None else (InviteForm() if ws.is_owner else None),
            "roles": Membership.Role.choices,
            "days": settings.MIFUMO_INVITATION_DAYS,
        },
        section="team",
        status=status,
    )


@dashboard_view()
def team(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return _page(request, ws)


@dashboard_view(methods=("POST",), owner=True)
def invite(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = InviteForm(request.POST)
    if not form.is_valid():
        return _page(request, ws, form, status=400)
    try:
        invitation, token = invitation_create(
            account=ws.account,
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"],
            invited_by=request.user,  # type: ignore[arg-type]
            audit=user_audit(request),
        )
    except DomainError as exc:
        form_error(form, exc, "email")
        return _page(request, ws, form, status=400)
    link = request.build_absolute_uri(reverse("dashboard:invitation", args=[token]))
    try:
        invitation_send(invitation=invitation, link=link)
    except OSError:
        logger.warning("could not mail the invitation to %s", invitation.email, exc_info=True)
        messages.warning(
            request,
            f"The invitation could not be e-mailed to {invitation.email}. Send them this link "
            f"yourself; it works once, for {settings.MIFUMO_INVITATION_DAYS} days: {link}",
        )
    else:
        messages.success(
            request,
            f"Invitation sent to {invitation.email}; the link works for "
            f"{settings.MIFUMO_INVITATION_DAYS} days.",
        )
    return redirect("dashboard:team")


@dashboard_view(methods=("POST",), owner=True)
def invitation_revoke_view(request: HttpRequest, ws: Workspace, invitation_id: int) -> HttpResponse:
    invitation = invitation_get(account=ws.account, invitation_id=invitation_id)
    invitation_revoke(invitation=invitation, audit=user_audit(request))
    messages.success(request, f"The invitation to {invitation.email} no longer works.")
    return redirect("dashboard:team")


@dashboard_view(methods=("POST",), owner=True)
def member_role(request: HttpRequest, ws: Workspace, membership_id: int) -> HttpResponse:
    membership = membership_get(account=ws.account, membership_id=membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or member.")
        return redirect("dashboard:team")
    try:
        membership_set_role(
            membership=membership, role=form.cleaned_data["role"], audit=user_audit(request)
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:team")
    name = membership.user.get_username()
    messages.success(request, f"{name} is now {membership.get_role_display().lower()}.")
    return redirect("dashboard:team")


@dashboard_view(methods=("POST",), owner=True)
def member_remove(request: HttpRequest, ws: Workspace, membership_id: int) -> HttpResponse:
    membership = membership_get(account=ws.account, membership_id=membership_id)
    name = membership.user.get_username()
    try:
        membership_remove(membership=membership, audit=user_audit(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:team")
    messages.success(request, f"{name} no longer has access to {ws.account.name}.")
    if membership.user_id == request.user.pk:
        return redirect("dashboard:overview")
    return redirect("dashboard:team")


def _invalid(request: HttpRequest, reason: str, status: int) -> HttpResponse:
    return render(request, "dashboard/invitation_invalid.html", {"reason": reason}, status=status)


def _joined(request: HttpRequest, invitation: Invitation, membership: Membership) -> HttpResponse:
    request.session[SESSION_ACCOUNT_KEY] = membership.account_id
    membership_mark_used(membership=membership)
    messages.success(
        request,
        f"Welcome to {invitation.account.name}: you are {membership.get_role_display().lower()}.",
    )
    return redirect("dashboard:overview")


@sensitive_post_parameters("password1", "password2")
@never_cache
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    """Signed in: join as this user. Not signed in: make a login (with the invited
    address), or sign in first and come back to the link."""
    if request.method not in ("GET", "HEAD", "POST"):
        return method_not_allowed(request, ("GET", "HEAD", "POST"))
    try:
        invitation = invitation_from_token(token=token)
        invitation_check_usable(invitation=invitation)
    except DomainError as exc:
        return _invalid(request, exc.message, 404 if exc.code == ErrorCode.NOT_FOUND else 410)
    user = request.user
    form = None
    if request.method == "POST":
        try:
            if user.is_authenticated:
                membership = invitation_accept(
                    invitation=invitation,
                    user=user,
                    audit=user_audit(request),
                )
                return _joined(request, invitation, membership)
            form = AcceptInvitationForm(request.POST)
            if form.is_valid():
                new_user, membership = invitation_accept_as_new_user(
                    invitation=invitation,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                    audit=user_audit(request),
                )
                login(request, new_user, backend=settings.AUTHENTICATION_BACKENDS[0])
                return _joined(request, invitation, membership)
        except DomainError as exc:
            if form is None:
                return _invalid(request, exc.message, 409)
            form_error(form, exc, "username" if "username" in (exc.details or {}) else None)
    if form is None and not user.is_authenticated:
        form = AcceptInvitationForm()
    return render(
        request,
        "dashboard/invitation.html",
        {"invitation": invitation, "form": form, "next": request.get_full_path()},
        status=400 if form is not None and form.errors else 200,
    )
