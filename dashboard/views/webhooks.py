"""Webhook endpoints, their signing secrets and deliveries, through the webhooks app."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard.access import Workspace, dashboard_view
from dashboard.forms import RotateSecretForm, WebhookCreateForm, WebhookEditForm
from dashboard.views.common import form_error, paginate, render_page
from integration.audit import Action, audit_record, user_audit
from mifumo.errors import DomainError
from webhooks import delivery as webhook_delivery
from webhooks import endpoints as webhook_endpoints
from webhooks import security
from webhooks import selectors as webhook_selectors
from webhooks.models import Endpoint

RECENT_DELIVERIES = 25


def _list(
    request: HttpRequest,
    ws: Workspace,
    *,
    form: WebhookCreateForm | None = None,
    account_secret: str | None = None,
    revealed_mode: str = "live",
    status: int = 200,
) -> HttpResponse:
    endpoints = list(webhook_selectors.endpoint_list(account=ws.account))
    secrets = []
    for mode in ("live", "test"):
        holder = webhook_selectors.account_signing_secret_find(
            account=ws.account, test=mode == "test"
        )
        secrets.append(
            {
                "mode": mode,
                "rotated_at": holder.secret_rotated_at if holder else None,
                "revealed": account_secret if mode == revealed_mode else None,
            }
        )
    return render_page(
        request,
        ws,
        "dashboard/webhooks.html",
        {
            "endpoints": endpoints,
            "stats": webhook_selectors.endpoint_delivery_stats(endpoints=endpoints),
            "form": form if form is not None else (WebhookCreateForm() if ws.can_manage else None),
            "rotate_form": RotateSecretForm(),
            "deliveries": list(
                webhook_selectors.delivery_list(account=ws.account)[:RECENT_DELIVERIES]
            ),
            "account_secret": account_secret,
            "account_secrets": secrets,
            "allow_private": security.allow_private(),
        },
        section="webhooks",
        status=status,
    )


def _warn_if_private(request: HttpRequest, endpoint: Endpoint) -> None:
    """Accepted only because this server allows private targets: say so, plainly."""
    problem = security.refusal_without_exemption(endpoint.url) if security.allow_private() else None
    if problem:
        messages.warning(
            request,
            f"Accepted because this server allows private webhook URLs "
            f"(MIFUMO_WEBHOOK_ALLOW_PRIVATE): {problem}. A production server refuses it.",
        )


def _endpoint(ws: Workspace, webhook_id: str) -> Endpoint:
    return webhook_selectors.endpoint_get(account=ws.account, endpoint_id=webhook_id)


def _detail(
    request: HttpRequest,
    ws: Workspace,
    endpoint: Endpoint,
    *,
    form: WebhookEditForm | None = None,
    secret: str | None = None,
    status: int = 200,
) -> HttpResponse:
    if form is None:
        form = WebhookEditForm(
            initial={
                "url": endpoint.url,
                "events": endpoint.events,
                "description": endpoint.description,
                "active": endpoint.active,
            }
        )
    return render_page(
        request,
        ws,
        "dashboard/webhook_detail.html",
        {
            "endpoint": endpoint,
            "form": form,
            "rotate_form": RotateSecretForm(),
            "secret": secret,
            "allow_private": security.allow_private(),
            "page": paginate(
                request, webhook_selectors.delivery_list(account=ws.account, endpoint=endpoint)
            ),
        },
        section="webhooks",
        status=status,
    )


@dashboard_view()
def webhooks_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return _list(request, ws)


@dashboard_view(methods=("POST",), manage=True)
def webhook_create(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = WebhookCreateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            endpoint = webhook_endpoints.endpoint_create(
                account=ws.account,
                url=data["url"],
                events=data["events"],
                description=data["description"],
                test=data["mode"] == "test",
                audit=user_audit(request),
            )
        except DomainError as exc:
            form_error(form, exc, "url" if "url" in (exc.details or {}) else None)
        else:
            messages.success(request, "Webhook created. Send it a test event to check it works.")
            _warn_if_private(request, endpoint)
            return redirect("dashboard:webhook", webhook_id=endpoint.pk)
    return _list(request, ws, form=form, status=400)


@dashboard_view()
def webhook_detail(request: HttpRequest, ws: Workspace, webhook_id: str) -> HttpResponse:
    return _detail(request, ws, _endpoint(ws, webhook_id))


@dashboard_view(methods=("POST",), manage=True)
def webhook_edit(request: HttpRequest, ws: Workspace, webhook_id: str) -> HttpResponse:
    endpoint = _endpoint(ws, webhook_id)
    form = WebhookEditForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            webhook_endpoints.endpoint_update(
                endpoint=endpoint,
                url=data["url"],
                events=data["events"],
                description=data["description"],
                active=data["active"],
                audit=user_audit(request),
            )
        except DomainError as exc:
            form_error(form, exc, "url" if "url" in (exc.details or {}) else None)
        else:
            messages.success(request, "Webhook saved.")
            _warn_if_private(request, endpoint)
            return redirect("dashboard:webhook", webhook_id=endpoint.pk)
    endpoint.refresh_from_db()
    return _detail(request, ws, endpoint, form=form, status=400)


@dashboard_view(methods=("POST",), manage=True)
def webhook_toggle(request: HttpRequest, ws: Workspace, webhook_id: str) -> HttpResponse:
    endpoint = _endpoint(ws, webhook_id)
    active = not endpoint.active
    webhook_endpoints.endpoint_update(endpoint=endpoint, active=active, audit=user_audit(request))
    messages.success(request, "Webhook enabled." if active else "Webhook disabled.")
    return redirect("dashboard:webhook", webhook_id=endpoint.pk)


@dashboard_view(methods=("POST",), manage=True)
def webhook_delete(request: HttpRequest, ws: Workspace, webhook_id: str) -> HttpResponse:
    endpoint = _endpoint(ws, webhook_id)
    webhook_endpoints.endpoint_delete(endpoint=endpoint, audit=user_audit(request))
    messages.success(request, "Webhook deleted.")
    return redirect("dashboard:webhooks")


@dashboard_view(methods=("POST",), manage=True)
def webhook_secret(request: HttpRequest, ws: Workspace, webhook_id: str) -> HttpResponse:
    endpoint = _endpoint(ws, webhook_id)
    audit_record(
        account=ws.account,
        actor=request.user,
        action=Action.WEBHOOK_SECRET_REVEALED,
        target=endpoint.pk,
        request=request,
    )
    return _detail(request, ws, endpoint, secret=endpoint.secret)


@dashboard_view(methods=("POST",), manage=True)
def webhook_rotate_secret(request: HttpRequest, ws: Workspace, webhook_id: str) -> HttpResponse:
    endpoint = _endpoint(ws, webhook_id)
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how long the old secret keeps working.")
        return redirect("dashboard:webhook", webhook_id=endpoint.pk)
    grace = form.cleaned_data["grace_seconds"]
    webhook_endpoints.endpoint_rotate_secret(
        endpoint=endpoint, grace_seconds=grace, audit=user_audit(request)
    )
    messages.success(request, "Signing secret rotated. Update your receiver with the new one.")
    return _detail(request, ws, endpoint, secret=endpoint.secret)


@dashboard_view(methods=("POST",), manage=True)
def webhook_test(request: HttpRequest, ws: Workspace, webhook_id: str) -> HttpResponse:
    endpoint = _endpoint(ws, webhook_id)
    delivery = webhook_delivery.event_send_test(
        endpoint=endpoint, api_key=None, audit=user_audit(request)
    )
    latency = f" in {delivery.last_latency_ms:.0f} ms" if delivery.last_latency_ms else ""
    if delivery.status == delivery.Status.SUCCEEDED:
        messages.success(
            request, f"Test event delivered: HTTP {delivery.last_status_code}{latency}."
        )
    else:
        answer = (
            f"HTTP {delivery.last_status_code}"
            if delivery.last_status_code
            else (delivery.last_error or "no answer")
        )
        messages.error(request, f"Test event not delivered: {answer}{latency}.")
    return redirect("dashboard:webhook", webhook_id=endpoint.pk)


@dashboard_view()
def delivery_detail(request: HttpRequest, ws: Workspace, delivery_id: str) -> HttpResponse:
    delivery = webhook_selectors.delivery_get(account=ws.account, delivery_id=delivery_id)
    try:
        body = json.dumps(json.loads(delivery.event.body), indent=2, ensure_ascii=False)
    except ValueError:
        body = delivery.event.body
    return render_page(
        request,
        ws,
        "dashboard/delivery_detail.html",
        {
            "delivery": delivery,
            "attempts": list(webhook_selectors.delivery_attempts(delivery=delivery)),
            "body": body,
        },
        section="webhooks",
    )


@dashboard_view(methods=("POST",), manage=True)
def delivery_redeliver(request: HttpRequest, ws: Workspace, delivery_id: str) -> HttpResponse:
    delivery = webhook_selectors.delivery_get(account=ws.account, delivery_id=delivery_id)
    try:
        again = webhook_delivery.delivery_redeliver(delivery=delivery, audit=user_audit(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:delivery", delivery_id=delivery.pk)
    messages.success(request, f"Queued again as delivery {again.pk}.")
    return redirect("dashboard:delivery", delivery_id=again.pk)


def _revealed_mode(request: HttpRequest) -> str:
    """Which account signing secret a form names: live (the default) or test traffic's."""
    return "test" if request.POST.get("mode") == "test" else "live"


@dashboard_view(methods=("POST",), manage=True)
def signing_secret_reveal(request: HttpRequest, ws: Workspace) -> HttpResponse:
    mode = _revealed_mode(request)
    holder = webhook_endpoints.account_signing_secret_ensure(
        account_id=ws.account.pk, test=mode == "test"
    )
    audit_record(
        account=ws.account,
        actor=request.user,
        action=Action.SIGNING_SECRET_REVEALED,
        target=f"account signing secret ({mode})",
        request=request,
    )
    return _list(request, ws, account_secret=holder.secret, revealed_mode=mode)


@dashboard_view(methods=("POST",), manage=True)
def signing_secret_rotate(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how long the old secret keeps working.")
        return redirect("dashboard:webhooks")
    mode = _revealed_mode(request)
    grace = form.cleaned_data["grace_seconds"]
    holder = webhook_endpoints.account_signing_secret_rotate(
        account_id=ws.account.pk,
        grace_seconds=grace,
        test=mode == "test",
        audit=user_audit(request),
    )
    messages.success(request, f"Account signing secret for {mode} traffic rotated.")
    return _list(request, ws, account_secret=holder.secret, revealed_mode=mode)
