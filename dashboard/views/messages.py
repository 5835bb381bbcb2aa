"""Messages: the list and a message's page (costs net of refunds), and sending from the
dashboard in two steps: a preview of what the send costs, then the confirmed send."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from dashboard.access import Workspace, dashboard_view
from dashboard.forms import (
    DASHBOARD_SOURCE,
    MessageSearchForm,
    SendMessageForm,
    key_choices,
    new_nonce,
)
from dashboard.views.common import (
    claim_nonce,
    error_details,
    form_error,
    paginate,
    render_page,
)
from integration.audit import user_audit
from integration.models import Account
from integration.selectors import account_balance, api_keys_all
from message_templates.selectors import template_get
from mifumo.errors import DomainError, ErrorCode
from segments.selectors import segment_contact_counts, segment_list, segment_queryset
from sms import encoding
from sms.models import Message
from sms.personalise import has_placeholders
from sms.selectors import (
    MessageFilter,
    derive_status,
    message_get,
    message_recipients,
    message_refunds,
    message_status_counts,
    messages_search,
    recipient_was_refunded,
)
from sms.sender_ids import sender_ids_usable
from sms.services import SendPlan, message_cancel, message_quote, message_send
from webhooks.selectors import delivery_list

SEGMENT_CHOICES_LIMIT = 100
DELIVERIES_SHOWN = 50
# How many recipients' own texts a preview shows.
PREVIEW_RECIPIENTS = 5
ZERO = Decimal("0.00")
MAX_ANALYZED_TEXT = 2000


@dashboard_view()
def messages_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = MessageSearchForm(
        request.GET or None, keys=key_choices(api_keys_all(account=ws.account))
    )
    filters = MessageFilter()
    if form.is_valid():
        data = form.cleaned_data
        key = data.get("key") or ""
        filters = MessageFilter(
            q=data.get("q") or "",
            status=data.get("status") or "",
            start=data.get("start"),
            end=data.get("end"),
            api_key_id=int(key) if key.isdigit() else None,
            source=DASHBOARD_SOURCE if key == DASHBOARD_SOURCE else "",
        )
    page = paginate(request, messages_search(account=ws.account, filters=filters))
    rows: list[Message] = list(page.object_list)
    ids = [m.pk for m in rows]
    counts = message_status_counts(message_ids=ids)
    refunds = message_refunds(account=ws.account, message_ids=ids)
    listed = [(m, derive_status(counts.get(m.pk, {})), refunds.get(m.pk, ZERO)) for m in rows]
    return render_page(
        request,
        ws,
        "dashboard/messages.html",
        {"form": form, "page": page, "rows": listed, "filtered": form.is_bound},
        section="messages",
        status=400 if form.is_bound and form.errors else 200,
    )


@dashboard_view()
def message_detail(request: HttpRequest, ws: Workspace, message_id: str) -> HttpResponse:
    message = message_get(account=ws.account, message_id=message_id)
    counts = message_status_counts(message_ids=[message.pk]).get(message.pk, {})
    refunded = message_refunds(account=ws.account, message_ids=[message.pk]).get(message.pk, ZERO)
    page = paginate(request, message_recipients(message=message), per_page=50)
    return render_page(
        request,
        ws,
        "dashboard/message_detail.html",
        {
            "message": message,
            "status": derive_status(counts),
            "counts": sorted(counts.items()),
            "refunded": refunded,
            "net_cost": message.cost - refunded,
            "page": page,
            "recipients": [
                (r, recipient_was_refunded(r, is_test=message.is_test)) for r in page.object_list
            ],
            "deliveries": list(
                delivery_list(account=ws.account, message_id=message.pk)[:DELIVERIES_SHOWN]
            ),
            "can_cancel": ws.can_manage and counts.get("scheduled", 0) > 0,
        },
        section="messages",
    )


def _contacts(n: int) -> str:
    return f"{n:,} contact{'' if n == 1 else 's'}"


def _send_form(account: Account, data: Any = None, initial: Any = None) -> SendMessageForm:
    """The send form offering the newest segments, and any older ones it was asked for (the
    "send to this segment" link of a segment past the newest, or a posted choice)."""
    segments = segment_list(account=account, limit=SEGMENT_CHOICES_LIMIT, offset=0)
    shown, counts = list(segments.segments), dict(segments.counts)
    asked = data.getlist("segments") if data is not None else (initial or {}).get("segments", [])
    missing = set(asked[:SEGMENT_CHOICES_LIMIT]) - {s.pk for s in shown}
    if missing:
        older = list(segment_queryset(account=account).filter(pk__in=missing))
        shown += older
        counts.update(segment_contact_counts(account=account, segments=older))
    return SendMessageForm(
        data,
        initial=initial,
        sender_ids=sender_ids_usable(account=account),
        segments=[(s.pk, f"{s.name} ({_contacts(counts.get(s.pk, 0))})") for s in shown],
    )


def _arguments(form: SendMessageForm) -> dict[str, Any]:
    data = form.cleaned_data
    when = form.schedule_time
    return {
        "text": data["message"],
        "recipients": data["recipients"],
        "segment_ids": data.get("segments") or [],
        "sender_id": data["sender_id"],
        "schedule_time": when.isoformat() if when else None,
    }


def _unit_price(plan: SendPlan) -> Decimal | None:
    """The price of one part when every recipient pays the same for the same parts (not a
    personalised send, whose texts differ), else None."""
    if plan.parts is not None:
        return None
    prices = {cost / plan.info.segments for cost in plan.costs.values()}
    return prices.pop() if len(prices) == 1 else None


def first_recipients(plan: SendPlan, count: int = PREVIEW_RECIPIENTS) -> list[dict[str, Any]]:
    """The first recipients with the text each gets, its parts and its cost."""
    rows = []
    for phone in plan.phones[:count]:
        rows.append(
            {
                "phone": phone,
                "text": plan.texts[phone] if plan.texts is not None else plan.text,
                "segments": plan.parts[phone] if plan.parts is not None else plan.info.segments,
                "cost": plan.costs[phone],
            }
        )
    return rows


def text_summary(info: encoding.TextInfo, limit: int) -> str:
    """How a text will be sent, in words: its length against the limit, its alphabet and
    how many parts (each billed)."""
    alphabet = "GSM-7" if info.encoding == encoding.GSM7 else "UCS-2 (Unicode: emoji or accents)"
    parts = f"{info.segments} part{'' if info.segments == 1 else 's'}"
    room = f"up to {info.per_segment} {'characters' if info.encoding == encoding.GSM7 else 'units'}"
    return f"{info.length} / {limit} characters · {alphabet} · {parts} ({room} each)"


@dashboard_view()
def message_send_preview(request: HttpRequest, ws: Workspace) -> JsonResponse:
    """The live preview of the send form: the first recipients' own texts (placeholders
    filled), their parts and cost, and the total; or what stops the send. Nothing is sent.
    Only for those who may send."""
    if not ws.can_manage:
        raise PermissionDenied
    form = _send_form(ws.account, request.GET)
    if not form.is_valid():
        problems = [str(e) for errors in form.errors.values() for e in errors]
        return JsonResponse({"ok": False, "problems": problems[:10]})
    try:
        plan = message_quote(account=ws.account, **_arguments(form))
    except DomainError as exc:
        return JsonResponse({"ok": False, "problems": [exc.message, *error_details(exc)][:10]})
    count = len(plan.phones)
    return JsonResponse(
        {
            "ok": True,
            "recipients": [{**row, "cost": f"{row['cost']:.2f}"} for row in first_recipients(plan)],
            "summary": (
                f"{count:,} recipient{'' if count == 1 else 's'}, up to {plan.info.segments} "
                f"part{'' if plan.info.segments == 1 else 's'} each, "
                f"{plan.cost:.2f} {ws.account.currency} in all"
            ),
        }
    )


@dashboard_view()
def message_text_info(request: HttpRequest, ws: Workspace) -> JsonResponse:
    """The live counter of the send form: what the typed text will be sent as."""
    text = request.GET.get("text", "")[:MAX_ANALYZED_TEXT]
    info = encoding.analyze(text)
    limit = ws.account.message_length_limit
    summary = text_summary(info, limit)
    if has_placeholders(text):
        summary = f"With placeholders as typed: {summary}. Each recipient's text is counted alone."
    return JsonResponse(
        {
            "length": info.length,
            "limit": limit,
            "encoding": info.encoding,
            "units": info.units,
            "segments": info.segments,
            "per_segment": info.per_segment,
            "over_limit": info.length > limit,
            "summary": summary,
        }
    )


def _form_page(
    request: HttpRequest, ws: Workspace, form: SendMessageForm, *, status: int = 200
) -> HttpResponse:
    return render_page(
        request,
        ws,
        "dashboard/message_send.html",
        {
            "form": form,
            "limit": ws.account.message_length_limit,
            "balance": account_balance(account_id=ws.account.pk),
        },
        section="send",
        status=status,
    )


def _preview(request: HttpRequest, ws: Workspace, form: SendMessageForm) -> HttpResponse:
    try:
        plan = message_quote(account=ws.account, **_arguments(form))
    except DomainError as exc:
        form_error(form, exc)
        return _form_page(request, ws, form, status=400)
    balance = account_balance(account_id=ws.account.pk)
    return render_page(
        request,
        ws,
        "dashboard/message_preview.html",
        {
            "form": form,
            "plan": plan,
            "unit_price": _unit_price(plan),
            "first": first_recipients(plan),
            "balance": balance,
            "balance_after": balance.balance - plan.cost,
            "affordable": plan.cost <= balance.balance,
            "summary": text_summary(plan.info, ws.account.message_length_limit),
            "tz": form.cleaned_data.get("tz") or "UTC",
        },
        section="send",
    )


def _send(request: HttpRequest, ws: Workspace, form: SendMessageForm) -> HttpResponse:
    account = ws.account
    if not claim_nonce(request, form.cleaned_data.get("nonce") or ""):
        messages.warning(request, "That confirmation was already used: the message was sent once.")
        return redirect("dashboard:messages")
    try:
        result = message_send(
            account=account,
            source=Message.Source.DASHBOARD,
            audit=user_audit(request),
            **_arguments(form),
        )
    except DomainError as exc:
        # Back to the form with a fresh one-time token: this one is spent.
        data = request.POST.copy()
        data["nonce"] = new_nonce()
        again = _send_form(account, data)
        again.is_valid()
        form_error(again, exc)
        return _form_page(request, ws, again, status=400)
    sent = result.message
    skipped = f" {len(result.skipped)} opted-out numbers were left out." if result.skipped else ""
    count = sent.recipient_count
    verb = "is scheduled for" if sent.schedule_time else "is on its way to"
    messages.success(
        request,
        f"Message {sent.pk} {verb} {count} recipient{'' if count == 1 else 's'}, "
        f"cost {sent.cost:.2f} {sent.currency}.{skipped}",
    )
    return redirect("dashboard:message", message_id=sent.pk)


@dashboard_view(methods=("GET", "POST"), manage=True)
def message_send_view(request: HttpRequest, ws: Workspace) -> HttpResponse:
    """GET: the form. POST step=preview (the default): check and price it, nothing sent;
    step=send: send what the preview showed; step=edit: back to the form, as filled."""
    if request.method != "POST":
        wanted = request.GET.get("segment")
        initial = {"nonce": new_nonce(), "segments": [wanted] if wanted else []}
        template_id = request.GET.get("template")
        if template_id:
            template = template_get(account=ws.account, template_id=template_id)
            initial["message"] = template.text
        return _form_page(request, ws, _send_form(ws.account, initial=initial))
    form = _send_form(ws.account, request.POST)
    step = request.POST.get("step", "preview")
    if not ws.account.is_active:
        form.is_valid()
        form.add_error(None, "This account is suspended; messages cannot be sent.")
        return _form_page(request, ws, form, status=400)
    if not form.is_valid():
        return _form_page(request, ws, form, status=400)
    if step == "edit":
        return _form_page(request, ws, form)
    if step == "send":
        return _send(request, ws, form)
    return _preview(request, ws, form)


@dashboard_view(methods=("POST",), manage=True)
def message_cancel_view(request: HttpRequest, ws: Workspace, message_id: str) -> HttpResponse:
    message = message_get(account=ws.account, message_id=message_id)
    try:
        _, _, refund = message_cancel(
            account=ws.account, message_id=message.pk, audit=user_audit(request)
        )
    except DomainError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise  # a 404 page, as for any id of nothing
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Canceled; {refund:.2f} {message.currency} refunded.")
    return redirect("dashboard:message", message_id=message.pk)
