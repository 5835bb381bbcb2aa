"""API keys: the raw key is shown in the response that creates (or rotates) it and never
again; it is not kept anywhere the dashboard could show it from."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard.access import Workspace, dashboard_view
from dashboard.forms import ApiKeyCreateForm, new_nonce
from dashboard.views.common import claim_nonce, render_page
from integration.audit import user_audit
from integration.selectors import api_key_get, api_keys_all
from integration.services import IssuedKey, api_key_create, api_key_revoke, api_key_rotate
from mifumo.errors import DomainError

ALREADY_SHOWN = (
    "That form was already submitted, and its key was shown once. For security it cannot be "
    "shown again: rotate or create a key if you did not copy it."
)


def _list(
    request: HttpRequest, ws: Workspace, form: ApiKeyCreateForm | None = None
) -> HttpResponse:
    if form is None and ws.can_manage:
        form = ApiKeyCreateForm(initial={"nonce": new_nonce()})
    return render_page(
        request,
        ws,
        "dashboard/keys.html",
        {
            "keys": api_keys_all(account=ws.account),
            "form": form,
            "rotate_nonce": new_nonce(),
        },
        section="keys",
        status=400 if form is not None and form.is_bound else 200,
    )


def _issued(
    request: HttpRequest, ws: Workspace, issued: IssuedKey, *, rotated: bool
) -> HttpResponse:
    return render_page(
        request,
        ws,
        "dashboard/key_issued.html",
        {"key": issued.api_key, "raw": issued.raw, "rotated": rotated},
        section="keys",
    )


@dashboard_view()
def keys_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return _list(request, ws)


@dashboard_view(methods=("POST",), manage=True)
def key_create(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _list(request, ws, form)
    if not claim_nonce(request, form.cleaned_data["nonce"]):
        messages.warning(request, ALREADY_SHOWN)
        return redirect("dashboard:keys")
    issued = api_key_create(
        account=ws.account,
        name=form.cleaned_data["name"],
        permission=form.cleaned_data["permission"],
        test=form.cleaned_data["mode"] == "test",
        expires_at=form.expires_at,
        created_by=request.user,  # type: ignore[arg-type]
        audit=user_audit(request),
    )
    return _issued(request, ws, issued, rotated=False)


@dashboard_view(methods=("POST",), manage=True)
def key_revoke(request: HttpRequest, ws: Workspace, key_id: int) -> HttpResponse:
    key = api_key_get(account=ws.account, key_id=key_id)
    if key.revoked_at is not None:
        messages.info(request, f"The key “{key.name}” was already revoked.")
        return redirect("dashboard:keys")
    api_key_revoke(api_key=key, audit=user_audit(request))
    messages.success(request, f"The key “{key.name}” is revoked; requests with it now fail.")
    return redirect("dashboard:keys")


@dashboard_view(methods=("POST",), manage=True)
def key_rotate(request: HttpRequest, ws: Workspace, key_id: int) -> HttpResponse:
    key = api_key_get(account=ws.account, key_id=key_id)
    if not claim_nonce(request, request.POST.get("nonce", "")):
        messages.warning(request, ALREADY_SHOWN)
        return redirect("dashboard:keys")
    try:
        issued = api_key_rotate(
            api_key=key,
            created_by=request.user,  # type: ignore[arg-type]
            audit=user_audit(request),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:keys")
    return _issued(request, ws, issued, rotated=True)
