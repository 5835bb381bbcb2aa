"""Contacts and segments, read through their apps' selectors; the import goes through the
contacts service, as the API's does."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from contacts.selectors import contact_get, contact_queryset
from contacts.services import contact_import
from dashboard.access import Workspace, dashboard_view
from dashboard.audit import Action, audit_record
from dashboard.forms import ContactImportForm, SearchForm
from dashboard.views.common import form_error, or_404, paginate, render_page
from mifumo.api.errors import ApiError
from segments.selectors import segment_contact_count, segment_filter, segment_get, segment_list
from sms.selectors import messages_list

SEGMENTS_PER_PAGE = 25
ERRORS_SHOWN = 50


def _query(request: HttpRequest) -> tuple[SearchForm, str]:
    form = SearchForm(request.GET or None)
    return form, (form.cleaned_data.get("q") or "") if form.is_valid() else ""


@dashboard_view()
def contacts_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form, q = _query(request)
    page = paginate(request, contact_queryset(account=ws.account, q=q))
    return render_page(
        request,
        ws,
        "dashboard/contacts.html",
        {"form": form, "page": page, "q": q},
        section="contacts",
    )


@dashboard_view()
def contact_detail(request: HttpRequest, ws: Workspace, contact_id: str) -> HttpResponse:
    contact = or_404(contact_get, account=ws.account, contact_id=contact_id)
    recent = list(messages_list(account=ws.account, phone=contact.phone_number)[:20])
    return render_page(
        request,
        ws,
        "dashboard/contact_detail.html",
        {"contact": contact, "recent": recent},
        section="contacts",
    )


@dashboard_view(methods=("GET", "POST"), manage=True)
def contacts_import(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = ContactImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            result = contact_import(
                account=ws.account,
                data=upload.read(),
                on_duplicate=form.cleaned_data["on_duplicate"],
            )
        except ApiError as exc:
            form_error(form, exc, "file")
        else:
            audit_record(
                account=ws.account,
                actor=request.user,
                action=Action.CONTACTS_IMPORTED,
                target=upload.name,
                details={
                    "created": result.created,
                    "updated": result.updated,
                    "skipped": result.skipped,
                    "failed": result.failed,
                },
                request=request,
            )
            if not result.failed:
                messages.success(
                    request,
                    f"Imported: {result.created} created, {result.updated} updated, "
                    f"{result.skipped} skipped.",
                )
                return redirect("dashboard:contacts")
            return render_page(
                request,
                ws,
                "dashboard/contacts_import.html",
                {
                    "form": ContactImportForm(),
                    "result": result,
                    "errors": result.errors[:ERRORS_SHOWN],
                },
                section="contacts",
            )
    return render_page(
        request,
        ws,
        "dashboard/contacts_import.html",
        {"form": form},
        section="contacts",
        status=400 if form.is_bound and form.errors else 200,
    )


@dashboard_view()
def segments_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    try:
        number = max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        number = 1
    listing = segment_list(
        account=ws.account, limit=SEGMENTS_PER_PAGE, offset=(number - 1) * SEGMENTS_PER_PAGE
    )
    pages = max((listing.total + SEGMENTS_PER_PAGE - 1) // SEGMENTS_PER_PAGE, 1)
    return render_page(
        request,
        ws,
        "dashboard/segments.html",
        {
            "rows": [(s, listing.counts.get(s.pk, 0)) for s in listing.segments],
            "total": listing.total,
            "number": number,
            "pages": pages,
            "previous": number - 1 if number > 1 else None,
            "next": number + 1 if number < pages else None,
        },
        section="segments",
    )


@dashboard_view()
def segment_detail(request: HttpRequest, ws: Workspace, segment_id: str) -> HttpResponse:
    segment = or_404(segment_get, account=ws.account, segment_id=segment_id)
    form, q = _query(request)
    members = contact_queryset(account=ws.account, q=q, within=segment_filter(segment))
    return render_page(
        request,
        ws,
        "dashboard/segment_detail.html",
        {
            "segment": segment,
            "count": segment_contact_count(segment=segment),
            "criteria": json.dumps(segment.criteria, indent=2, ensure_ascii=False),
            "form": form,
            "page": paginate(request, members),
            "q": q,
        },
        section="segments",
    )
