"""Two-way messaging in the dashboard: conversations and replies, the opt-out list and its
history, keywords and automatic replies, and the account's numbers (read only)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect

from dashboard.access import Workspace, dashboard_view
from dashboard.forms import new_nonce
from dashboard.views.common import claim_nonce, csv_download, paginate, record, render_page
from inbox import selectors
from inbox.models import Action
from inbox.services import (
    auto_reply_set,
    inbound_mark_read,
    keyword_add,
    keyword_remove,
)
from integration.audit import user_audit
from mifumo.days import today
from mifumo.errors import DomainError
from sms.models import Message
from sms.phones import InvalidPhone, normalize_phone
from sms.services import message_send

ACTION_CHOICES = [(a.value, a.label) for a in Action]


class ReplyForm(forms.Form):
    text = forms.CharField(label="Reply", max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    # One form, one reply: a double click or a reload must not send and charge it twice.
    nonce = forms.CharField(widget=forms.HiddenInput, max_length=64)


class KeywordForm(forms.Form):
    word = forms.CharField(label="Keyword", max_length=20)
    action = forms.ChoiceField(label="What it does", choices=ACTION_CHOICES)


_record = record


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InvalidPhone:
        return raw


@dashboard_view()
def inbox(request: HttpRequest, ws: Workspace) -> HttpResponse:
    page = paginate(request, selectors.conversations(account=ws.account))
    return render_page(
        request,
        ws,
        "dashboard/inbox.html",
        {"page": page, "unread": selectors.unread_count(account=ws.account)},
        section="inbox",
    )


def _conversation_page(
    request: HttpRequest, ws: Workspace, phone: str, form: ReplyForm, status: int = 200
) -> HttpResponse:
    entries = selectors.conversation(account=ws.account, phone=phone)
    # Members read too: opening the conversation is what reading it means.
    inbound_mark_read(account=ws.account, phone=phone)
    return render_page(
        request,
        ws,
        "dashboard/conversation.html",
        {
            "phone": phone,
            "entries": entries,
            "form": form,
            "number": selectors.reply_number(account=ws.account, phone=phone),
        },
        section="inbox",
        status=status,
    )


@dashboard_view(methods=("GET", "POST"), manage=True)
def conversation(request: HttpRequest, ws: Workspace, phone: str) -> HttpResponse:
    phone = _phone(phone)
    if request.method != "POST":
        return _conversation_page(request, ws, phone, ReplyForm(initial={"nonce": new_nonce()}))
    form = ReplyForm(request.POST)
    number = selectors.reply_number(account=ws.account, phone=phone)
    if number is None:
        return _conversation_page(request, ws, phone, form)  # 404 there
    if not form.is_valid():
        return _conversation_page(request, ws, phone, form, status=400)
    if not claim_nonce(request, form.cleaned_data["nonce"]):
        messages.warning(request, "That reply was already sent once.")
        return redirect("dashboard:conversation", phone=phone)
    try:
        result = message_send(
            account=ws.account,
            text=form.cleaned_data["text"],
            recipients=[phone],
            sender_id=number,
            source=Message.Source.DASHBOARD,
        )
    except DomainError as exc:
        # Back to the form with a fresh one-time token: this one is spent.
        form = ReplyForm({**request.POST.dict(), "nonce": new_nonce()})
        form.is_valid()
        form.add_error("text", exc.message)
        return _conversation_page(request, ws, phone, form, status=400)
    _record(request, ws, "inbox.replied", phone, message=result.message.pk, number=number)
    messages.success(request, f"Reply sent from {number}.")
    return redirect("dashboard:conversation", phone=phone)


@dashboard_view()
def opt_outs(request: HttpRequest, ws: Workspace) -> HttpResponse:
    page = paginate(request, selectors.opt_out_history(account=ws.account))
    return render_page(request, ws, "dashboard/opt_outs.html", {"page": page}, section="opt_outs")


@dashboard_view()
def opt_outs_export(request: HttpRequest, ws: Workspace) -> HttpResponseBase:
    """The whole opt-out history as CSV: when, phone, opted out or back in, how."""
    rows = selectors.opt_out_history(account=ws.account).iterator()
    _record(request, ws, "opt_outs.exported", "opt-out history CSV")
    name = f"mifumo-opt-outs-{today().isoformat()}.csv"
    header = ["time", "phone", "name", "change", "source", "inbound_id", "detail"]
    return csv_download(
        [
            header,
            *(
                [
                    change.created_at.isoformat(),
                    change.contact.phone_number,
                    change.contact.name,
                    "opted_out" if change.opted_out else "opted_in",
                    change.source,
                    change.inbound_id,
                    change.detail,
                ]
                for change in rows
            ),
        ],
        name,
    )


def _keywords_page(
    request: HttpRequest, ws: Workspace, form: KeywordForm, status: int = 200
) -> HttpResponse:
    return render_page(
        request,
        ws,
        "dashboard/keywords.html",
        {
            "form": form,
            "keywords": selectors.keywords_of(account=ws.account),
            "replies": selectors.auto_replies(account=ws.account),
            "standard": {
                "opt_out": "STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, SITISHA, ACHA",
                "opt_in": "START, UNSTOP, YES, ANZA",
                "help": "HELP, INFO, MSAADA",
            },
        },
        section="keywords",
        status=status,
    )


@dashboard_view(methods=("GET", "POST"), manage=True)
def keywords(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = KeywordForm(request.POST or None)
    if request.method != "POST":
        return _keywords_page(request, ws, form)
    if not form.is_valid():
        return _keywords_page(request, ws, form, status=400)
    try:
        keyword = keyword_add(account=ws.account, audit=user_audit(request), **form.cleaned_data)
    except ValueError as exc:
        form.add_error("word", str(exc))
        return _keywords_page(request, ws, form, status=400)
    messages.success(request, f"{keyword.word} added.")
    return redirect("dashboard:keywords")


@dashboard_view(methods=("POST",), manage=True)
def keyword_delete(request: HttpRequest, ws: Workspace, keyword_id: int) -> HttpResponse:
    word = keyword_remove(account=ws.account, keyword_id=keyword_id, audit=user_audit(request))
    if word is None:
        raise Http404("No such keyword")
    messages.success(request, f"{word} removed.")
    return redirect("dashboard:keywords")


@dashboard_view(methods=("POST",), manage=True)
def auto_reply(request: HttpRequest, ws: Workspace, action: str) -> HttpResponse:
    if action not in Action.values:
        raise Http404("No such keyword action")
    try:
        auto_reply_set(
            account=ws.account,
            action=action,
            text=request.POST.get("text", ""),
            enabled=request.POST.get("enabled") == "on",
            audit=user_audit(request),
        )
    except ValueError as exc:
        messages.error(request, str(exc))
        return _keywords_page(request, ws, KeywordForm(), status=400)
    messages.success(request, "Automatic reply saved.")
    return redirect("dashboard:keywords")


@dashboard_view()
def numbers(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return render_page(
        request,
        ws,
        "dashboard/numbers.html",
        {"numbers": selectors.numbers_of(account=ws.account)},
        section="numbers",
    )
