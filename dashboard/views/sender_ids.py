from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard.access import Workspace, dashboard_view
from dashboard.forms import SenderIdRequestForm
from dashboard.views.common import render_page
from integration.audit import user_audit
from mifumo.errors import DomainError
from sms.sender_ids import sender_id_request, sender_ids_all


def _page(
    request: HttpRequest, ws: Workspace, form: SenderIdRequestForm | None = None, status: int = 200
) -> HttpResponse:
    if form is None and ws.can_manage:
        form = SenderIdRequestForm()
    return render_page(
        request,
        ws,
        "dashboard/sender_ids.html",
        {
            "sender_ids": sender_ids_all(account=ws.account, by_status=True),
            "default_sender_id": settings.MIFUMO_DEFAULT_SENDER_ID,
            "form": form,
        },
        section="sender_ids",
        status=status,
    )


@dashboard_view()
def sender_ids(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return _page(request, ws)


@dashboard_view(methods=("POST",), manage=True)
def sender_id_request_view(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = SenderIdRequestForm(request.POST)
    if form.is_valid():
        try:
            sender = sender_id_request(
                account=ws.account,
                value=form.cleaned_data["value"],
                purpose=form.cleaned_data["purpose"],
                audit=user_audit(request),
            )
        except DomainError as exc:
            form.add_error("value", exc.message)
        else:
            messages.success(
                request, f"Sender ID {sender.value} requested; an operator will review it."
            )
            return redirect("dashboard:sender_ids")
    return _page(request, ws, form, status=400)
