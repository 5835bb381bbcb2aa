"""Who is looking at which account: the signed-in user's memberships, the account chosen
for this session, and what the user's role allows there."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Concatenate, ParamSpec

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from integration import two_factor
from integration.models import Account, Membership
from integration.selectors import memberships_of_user
from mifumo.api import text
from mifumo.errors import DomainError, ErrorCode

SESSION_ACCOUNT_KEY = "dashboard_account_id"

P = ParamSpec("P")


@dataclass(frozen=True)
class Workspace:
    membership: Membership
    memberships: list[Membership]

    @property
    def account(self) -> Account:
        return self.membership.account

    @property
    def role(self) -> str:
        return self.membership.role

    @property
    def can_manage(self) -> bool:
        return self.membership.can_manage

    @property
    def is_owner(self) -> bool:
        return self.membership.role == Membership.Role.OWNER


def user_memberships(user_id: int) -> list[Membership]:
    return memberships_of_user(user_id=user_id)


def workspace_for(request: HttpRequest) -> Workspace | None:
    """The session's account if the user still belongs to it, else the one they used last;
    None when the user belongs to no account at all."""
    memberships = user_memberships(int(request.user.pk or 0))
    if not memberships:
        return None
    wanted = request.session.get(SESSION_ACCOUNT_KEY)
    chosen = next((m for m in memberships if m.account_id == wanted), memberships[0])
    if chosen.account_id != wanted:
        request.session[SESSION_ACCOUNT_KEY] = chosen.account_id
    by_name = sorted(memberships, key=lambda m: (m.account.name.casefold(), m.account_id))
    return Workspace(membership=chosen, memberships=by_name)


def two_factor_step(request: HttpRequest, account: Account) -> HttpResponse | None:
    """Where a session that owes two-factor goes before any page of ``account``: the code
    step when two-factor is on and this session has not passed a code, the two-factor page
    when the account requires it and it is off; None when nothing is owed."""
    step = two_factor.missing_step(request.user, required=account.require_2fa)
    if step == two_factor.CODE_STEP:
        return redirect_to_login(request.get_full_path(), reverse("dashboard:login_code"))
    if step == two_factor.SETUP_STEP:
        messages.warning(
            request,
            f"{account.name} requires two-factor authentication: set it up to continue.",
        )
        return redirect_to_login(request.get_full_path(), reverse("dashboard:two_factor"))
    return None


def forbidden(request: HttpRequest, ws: Workspace | None, reason: str) -> HttpResponse:
    return render(request, "dashboard/403.html", {"ws": ws, "reason": reason}, status=403)


def method_not_allowed(
    request: HttpRequest, allowed: Sequence[str], *, ws: Workspace | None = None
) -> HttpResponse:
    """405 as a page of the dashboard (with its Allow header), not a blank answer."""
    response = render(
        request,
        "dashboard/405.html",
        {"ws": ws, "method": request.method, "allowed": list(allowed)},
        status=405,
    )
    response["Allow"] = ", ".join(allowed)
    return response


UNSTORABLE = (
    "The form or the address held characters no text can be stored with (a NUL character, "
    "or broken Unicode). Remove them and try again."
)


def _unstorable(request: HttpRequest) -> bool:
    """Whether a query parameter or form field holds text no column can store: every view
    is spared checking its own (a form's fields do, a parameter read directly does not)."""
    return any(
        text.problem(name) or any(text.problem(value) for value in values)
        for query in (request.GET, request.POST)
        for name, values in query.lists()
    )


def dashboard_view(
    *, methods: tuple[str, ...] = ("GET",), manage: bool = False, owner: bool = False
) -> Callable[
    [Callable[Concatenate[HttpRequest, Workspace, P], HttpResponseBase]],
    Callable[Concatenate[HttpRequest, P], HttpResponseBase],
]:
    """A signed-in page of the current account. ``manage``: POSTs need an owner or admin
    (members see the page, never change anything); ``owner``: POSTs need an owner. Pages
    are never cached: several show secrets, and all show one account's data. What the view
    lets through as NOT_FOUND (an id of nothing, or of another account) is a 404 page."""

    allowed = (*methods, "HEAD") if "GET" in methods else methods

    def decorate(
        view: Callable[Concatenate[HttpRequest, Workspace, P], HttpResponseBase],
    ) -> Callable[Concatenate[HttpRequest, P], HttpResponseBase]:
        def wrapper(request: HttpRequest, /, *args: P.args, **kwargs: P.kwargs) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if any(isinstance(v, str) and text.problem(v) for v in kwargs.values()):
                # An id with NUL or a lone surrogate names nothing, and must not reach a query.
                raise Http404("No such page")
            ws = workspace_for(request)
            response: HttpResponseBase
            # A session that still owes a code sees nothing of the account, not even a 405.
            if ws is not None and (step := two_factor_step(request, ws.account)) is not None:
                response = step
            elif request.method not in allowed:
                response = method_not_allowed(request, allowed, ws=ws)
            elif ws is None:
                response = render(request, "dashboard/no_account.html", status=403)
            elif owner and request.method == "POST" and not ws.is_owner:
                response = forbidden(request, ws, "Only the account's owners can make this change.")
            elif manage and request.method == "POST" and not ws.can_manage:
                response = forbidden(
                    request, ws, "Only the account's owners and admins can make this change."
                )
            elif _unstorable(request):
                response = render(
                    request,
                    "dashboard/400.html",
                    {"ws": ws, "reason": UNSTORABLE},
                    status=400,
                )
            else:
                try:
                    response = view(request, ws, *args, **kwargs)
                except DomainError as exc:
                    if exc.code != ErrorCode.NOT_FOUND:
                        raise
                    raise Http404(exc.message) from None
            add_never_cache_headers(response)
            return response

        functools.update_wrapper(wrapper, view)
        return wrapper

    return decorate
