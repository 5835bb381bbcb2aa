from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard import selectors
from dashboard.access import Workspace, dashboard_view
from dashboard.audit import Action, audit_record
from dashboard.forms import MessageSearchForm, SendMessageForm
from dashboard.views.common import form_error, or_404, paginate, render_page
from integration.models import Account
from mifumo.api.errors import ApiError
from segments.selectors import segment_list
from sms.models import Message
from sms.selectors import derive_status, message_recipients, message_status_counts
from sms.services import message_cancel, message_send
from webhooks.selectors import delivery_list

SEGMENT_CHOICES_LIMIT = 100
DELIVERIES_SHOWN = 50


@dashboard_view()
def messages_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = MessageSearchForm(request.GET or None)
    filters = selectors.MessageFilter()
    if form.is_valid():
        data = form.cleaned_data
        filters = selectors.MessageFilter(
            q=data.get("q") or "",
            status=data.get("status") or "",
            start=data.get("start"),
            end=data.get("end"),
        )
    page = paginate(request, selectors.messages_search(account=ws.account, filters=filters))
    rows: list[Message] = list(page.object_list)
    counts = message_status_counts(message_ids=[m.pk for m in rows])
    listed = [(m, derive_status(counts.get(m.pk, {}))) for m in rows]
    return render_page(
        request,
        ws,
        "dashboard/messages.html",
        {"form": form, "page": page, "rows": listed, "filtered": form.is_bound},
        section="messages",
    )


@dashboard_view()
def message_detail(request: HttpRequest, ws: Workspace, message_id: str) -> HttpResponse:
    message = selectors.message_for_account(account=ws.account, message_id=message_id)
    counts = message_status_counts(message_ids=[message.pk]).get(message.pk, {})
    return render_page(
        request,
        ws,
        "dashboard/message_detail.html",
        {
            "message": message,
            "status": derive_status(counts),
            "counts": sorted(counts.items()),
            "page": paginate(request, message_recipients(message=message), per_page=50),
            "deliveries": list(
                delivery_list(account=ws.account, message_id=message.pk)[:DELIVERIES_SHOWN]
            ),
            "can_cancel": ws.can_manage and counts.get("scheduled", 0) > 0,
        },
        section="messages",
    )


def _send_form(account: Account, data: Any = None) -> SendMessageForm:
    segments = segment_list(account=account, limit=SEGMENT_CHOICES_LIMIT, offset=0)
    return SendMessageForm(
        data,
        sender_ids=selectors.sender_ids_usable(account=account),
        segments=[
            (s.pk, f"{s.name} ({segments.counts.get(s.pk, 0)} contacts)") for s in segments.segments
        ],
    )


@dashboard_view(methods=("GET", "POST"), manage=True)
def message_send_view(request: HttpRequest, ws: Workspace) -> HttpResponse:
    account = ws.account
    form = _send_form(account, request.POST if request.method == "POST" else None)
    if request.method == "POST" and not account.is_active:
        form.is_valid()
        form.add_error(None, "This account is suspended; messages cannot be sent.")
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = message_send(
                account=account,
                text=data["message"],
                recipients=data["recipients"],
                segment_ids=data.get("segments") or [],
                sender_id=data["sender_id"],
                source=Message.Source.DASHBOARD,
            )
        except ApiError as exc:
            form_error(form, exc)
        else:
            sent = result.message
            audit_record(
                account=account,
                actor=request.user,
                action=Action.MESSAGE_SENT,
                target=sent.pk,
                details={
                    "recipients": sent.recipient_count,
                    "cost": sent.cost,
                    "sender_id": sent.sender_id,
                },
                request=request,
            )
            skipped = (
                f" {len(result.skipped)} opted-out numbers were left out." if result.skipped else ""
            )
            messages.success(
                request,
                f"Message {sent.pk} is on its way to {sent.recipient_count} recipient(s), "
                f"cost {sent.cost:.2f} {sent.currency}.{skipped}",
            )
            return redirect("dashboard:message", message_id=sent.pk)
    return render_page(
        request,
        ws,
        "dashboard/message_send.html",
        {"form": form, "limit": account.message_length_limit},
        section="send",
        status=400 if form.is_bound and form.errors else 200,
    )


@dashboard_view(methods=("POST",), manage=True)
def message_cancel_view(request: HttpRequest, ws: Workspace, message_id: str) -> HttpResponse:
    message = selectors.message_for_account(account=ws.account, message_id=message_id)
    try:
        _, canceled, refund = or_404(message_cancel, account=ws.account, message_id=message.pk)
    except ApiError as exc:
        messages.error(request, exc.message)
    else:
        audit_record(
            account=ws.account,
            actor=request.user,
            action=Action.MESSAGE_CANCELED,
            target=message.pk,
            details={"recipients": canceled, "refund": refund},
            request=request,
        )
        messages.success(request, f"Canceled; {refund:.2f} {message.currency} refunded.")
    return redirect("dashboard:message", message_id=message.pk)
