"""Contacts and segments: read through their apps' selectors, changed through their
services (the same ones the API uses)."""

from __future__ import annotations

import json
from dataclasses import replace

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect

from contacts.csvio import COLUMNS, csv_lines
from contacts.models import Contact, OptOutSource
from contacts.selectors import (
    contact_custom_keys,
    contact_export_rows,
    contact_get,
    contact_queryset,
    contact_text_q,
)
from contacts.services import (
    ImportResult,
    contact_create,
    contact_delete,
    contact_import,
    contact_opt_in,
    contact_opt_out,
    contact_update,
)
from dashboard.access import Workspace, dashboard_view
from dashboard.forms import (
    ContactForm,
    ContactImportForm,
    SearchForm,
    SegmentForm,
    custom_fields_text,
)
from dashboard.views.common import (
    csv_attachment,
    form_error,
    paginate,
    record,
    render_page,
)
from integration.audit import Action, user_audit
from mifumo.days import today
from mifumo.errors import DomainError
from segments.models import Segment
from segments.selectors import (
    criteria_contact_count,
    segment_contact_count,
    segment_contact_counts,
    segment_filter,
    segment_get,
    segment_queryset,
)
from segments.services import segment_create, segment_delete, segment_update
from sms.selectors import messages_list, texts_received

ERRORS_SHOWN = 50


def _query(request: HttpRequest) -> tuple[SearchForm, str]:
    form = SearchForm(request.GET or None)
    return form, (form.cleaned_data.get("q") or "") if form.is_valid() else ""


_record = record


# --- contacts ------------------------------------------------------------------------------------


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
def contacts_export(request: HttpRequest, ws: Workspace) -> HttpResponseBase:
    """Every contact (or those the search matches) as the import's CSV format."""
    _, q = _query(request)
    within = contact_text_q(q) if q else None
    rows = contact_export_rows(account=ws.account, within=within)
    keys = contact_custom_keys(account=ws.account, within=within)
    _record(request, ws, Action.CONTACTS_EXPORTED, "contacts CSV", search=q)
    name = f"mifumo-contacts-{today().isoformat()}.csv"
    return csv_attachment(csv_lines(rows, keys), name)


def _contact_form_page(
    request: HttpRequest,
    ws: Workspace,
    form: ContactForm,
    contact: Contact | None,
    status: int = 200,
) -> HttpResponse:
    return render_page(
        request,
        ws,
        "dashboard/contact_form.html",
        {"form": form, "contact": contact},
        section="contacts",
        status=status,
    )


@dashboard_view(methods=("GET", "POST"), manage=True)
def contact_new(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = ContactForm(request.POST or None, initial={"is_active": True})
    if request.method == "POST" and form.is_valid():
        try:
            contact = contact_create(
                account=ws.account, audit=user_audit(request), **form.cleaned_data
            )
        except DomainError as exc:
            form_error(form, exc, "phone_number")
        else:
            messages.success(request, f"{contact.name} added.")
            return redirect("dashboard:contact", contact_id=contact.pk)
    status = 400 if form.is_bound and form.errors else 200
    return _contact_form_page(request, ws, form, None, status)


@dashboard_view(methods=("GET", "POST"), manage=True)
def contact_edit(request: HttpRequest, ws: Workspace, contact_id: str) -> HttpResponse:
    contact = contact_get(account=ws.account, contact_id=contact_id)
    initial = {
        "name": contact.name,
        "phone_number": contact.phone_number,
        "email": contact.email,
        "tags": ", ".join(contact.tags),
        "custom_fields": custom_fields_text(contact.custom_fields or {}),
        "is_active": contact.is_active,
    }
    form = ContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = {k: v for k, v in form.cleaned_data.items() if k in form.changed_data}
        # The form shows every field: a line taken out removes that field.
        custom = form.cleaned_data["custom_fields"]
        removed = dict.fromkeys(set(contact.custom_fields or {}) - set(custom))
        data = {**form.cleaned_data, "custom_fields": {**removed, **custom}}
        try:
            # The log names what the form changed, which only the form knows.
            audit = replace(user_audit(request), details=changed)
            contact_update(contact=contact, data=data, audit=audit)
        except DomainError as exc:
            form_error(form, exc, "phone_number")
        else:
            messages.success(request, f"{contact.name} saved.")
            return redirect("dashboard:contact", contact_id=contact.pk)
    status = 400 if form.is_bound and form.errors else 200
    return _contact_form_page(request, ws, form, contact, status)


@dashboard_view(methods=("POST",), manage=True)
def contact_opt(request: HttpRequest, ws: Workspace, contact_id: str, out: bool) -> HttpResponse:
    contact = contact_get(account=ws.account, contact_id=contact_id)
    if out:
        contact_opt_out(contact=contact, source=OptOutSource.DASHBOARD, audit=user_audit(request))
        messages.success(request, f"{contact.name} is opted out: no message reaches them.")
    else:
        contact_opt_in(contact=contact, source=OptOutSource.DASHBOARD, audit=user_audit(request))
        messages.success(request, f"{contact.name} receives messages again.")
    return redirect("dashboard:contact", contact_id=contact.pk)


@dashboard_view(methods=("POST",), manage=True)
def contact_remove(request: HttpRequest, ws: Workspace, contact_id: str) -> HttpResponse:
    contact = contact_get(account=ws.account, contact_id=contact_id)
    try:
        contact_delete(contact=contact, audit=user_audit(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("dashboard:contact", contact_id=contact.pk)
    messages.success(request, f"{contact.name} deleted.")
    return redirect("dashboard:contacts")


@dashboard_view()
def contact_detail(request: HttpRequest, ws: Workspace, contact_id: str) -> HttpResponse:
    contact = contact_get(account=ws.account, contact_id=contact_id)
    recent = list(messages_list(account=ws.account, phone=contact.phone_number)[:20])
    texts = texts_received(messages=recent, phone=contact.phone_number)
    return render_page(
        request,
        ws,
        "dashboard/contact_detail.html",
        {"contact": contact, "recent": [(m, texts[m.pk]) for m in recent]},
        section="contacts",
    )


def _opt_out_summary(result: ImportResult) -> str:
    if not (result.opted_out or result.opted_in or result.left_opted_out):
        return ""
    summary = f" {result.opted_out} opted out, {result.opted_in} opted back in"
    if result.left_opted_out:
        summary += (
            f", {result.left_opted_out} left opted out (the contact opted out itself or "
            "was opted out in the dashboard)"
        )
    return summary + "."


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
                audit=user_audit(request),
                filename=upload.name,
            )
        except DomainError as exc:
            form_error(form, exc, "file")
        else:
            if not result.failed:
                messages.success(
                    request,
                    f"Imported: {result.created} created, {result.updated} updated, "
                    f"{result.skipped} skipped." + _opt_out_summary(result),
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
                    "columns": COLUMNS,
                },
                section="contacts",
            )
    return render_page(
        request,
        ws,
        "dashboard/contacts_import.html",
        {"form": form, "columns": COLUMNS},
        section="contacts",
        status=400 if form.is_bound and form.errors else 200,
    )


# --- segments ------------------------------------------------------------------------------------


@dashboard_view()
def segments_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form, q = _query(request)
    page = paginate(request, segment_queryset(account=ws.account, q=q))
    rows = list(page.object_list)
    counts = segment_contact_counts(account=ws.account, segments=rows)
    return render_page(
        request,
        ws,
        "dashboard/segments.html",
        {"form": form, "q": q, "page": page, "rows": [(s, counts.get(s.pk, 0)) for s in rows]},
        section="segments",
    )


@dashboard_view()
def segment_detail(request: HttpRequest, ws: Workspace, segment_id: str) -> HttpResponse:
    segment = segment_get(account=ws.account, segment_id=segment_id)
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


def _members(n: int) -> str:
    return f"{n:,} contact{'' if n == 1 else 's'} match now"


@dashboard_view()
def segment_count(request: HttpRequest, ws: Workspace) -> JsonResponse:
    """The live count of the segment form: contacts its criteria select, or what is wrong."""
    form = SegmentForm(request.GET)
    form.is_valid()
    problems = {k: v for k, v in form.errors.items() if k != "name"}
    if problems or "criteria" not in form.cleaned_data:
        return JsonResponse(
            {"count": None, "errors": problems, "summary": "Fix the criteria to see a count."}
        )
    count = criteria_contact_count(account=ws.account, criteria=form.cleaned_data["criteria"])
    return JsonResponse({"count": count, "errors": {}, "summary": _members(count)})


def _segment_form_page(
    request: HttpRequest,
    ws: Workspace,
    form: SegmentForm,
    segment: Segment | None,
    status: int = 200,
) -> HttpResponse:
    count = (
        criteria_contact_count(account=ws.account, criteria=segment.criteria)
        if segment is not None
        else None
    )
    return render_page(
        request,
        ws,
        "dashboard/segment_form.html",
        {"form": form, "segment": segment, "count": _members(count) if count is not None else ""},
        section="segments",
        status=status,
    )


def _segment_form(request: HttpRequest, ws: Workspace, segment: Segment | None) -> HttpResponse:
    """Create (``segment`` None) or change a segment from its form."""
    initial = (
        SegmentForm.initial_from(segment.name, segment.description, segment.criteria)
        if segment is not None
        else None
    )
    form = SegmentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        fields = {k: data[k] for k in ("name", "description", "criteria")}
        try:
            if segment is None:
                segment = segment_create(account=ws.account, audit=user_audit(request), **fields)
                verb = "created"
            else:
                segment_update(segment=segment, data=fields, audit=user_audit(request))
                verb = "saved"
        except DomainError as exc:
            form_error(form, exc, "name")
            if segment is not None:
                segment.refresh_from_db()  # the page heads with the saved name, not the refused
        else:
            messages.success(request, f"Segment {segment.name} {verb}.")
            return redirect("dashboard:segment", segment_id=segment.pk)
    status = 400 if form.is_bound and form.errors else 200
    return _segment_form_page(request, ws, form, segment, status)


@dashboard_view(methods=("GET", "POST"), manage=True)
def segment_new(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return _segment_form(request, ws, None)


@dashboard_view(methods=("GET", "POST"), manage=True)
def segment_edit(request: HttpRequest, ws: Workspace, segment_id: str) -> HttpResponse:
    return _segment_form(request, ws, segment_get(account=ws.account, segment_id=segment_id))


@dashboard_view(methods=("POST",), manage=True)
def segment_remove(request: HttpRequest, ws: Workspace, segment_id: str) -> HttpResponse:
    segment = segment_get(account=ws.account, segment_id=segment_id)
    segment_delete(segment=segment, audit=user_audit(request))
    messages.success(request, f"Segment {segment.name} deleted; its contacts are kept.")
    return redirect("dashboard:segments")
