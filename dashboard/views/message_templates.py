"""Message templates: the list, a form to create or change one, deleting, and a way into
the send form with a template's text."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from dashboard.access import Workspace, dashboard_view
from dashboard.forms import MessageTemplateForm
from dashboard.views.common import form_error, paginate, render_page
from integration.audit import user_audit
from message_templates.models import MessageTemplate
from message_templates.selectors import template_get, templates_of
from message_templates.services import template_create, template_delete, template_update
from mifumo.errors import DomainError
from sms.personalise import placeholder_keys


@dashboard_view()
def templates_list(request: HttpRequest, ws: Workspace) -> HttpResponse:
    page = paginate(request, templates_of(account=ws.account))
    return render_page(
        request,
        ws,
        "dashboard/message_templates.html",
        {"page": page, "rows": [(t, placeholder_keys(t.text)) for t in page.object_list]},
        section="templates",
    )


def _form(request: HttpRequest, ws: Workspace, template: MessageTemplate | None) -> HttpResponse:
    """Create (``template`` None) or change a template from its form."""
    initial = {"name": template.name, "text": template.text} if template is not None else None
    form = MessageTemplateForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        fields = {"name": form.cleaned_data["name"], "text": form.cleaned_data["text"]}
        try:
            if template is None:
                template = template_create(account=ws.account, audit=user_audit(request), **fields)
                verb = "created"
            else:
                template_update(template=template, data=fields, audit=user_audit(request))
                verb = "saved"
        except DomainError as exc:
            form_error(form, exc, "name")
            if template is not None:
                template.refresh_from_db()
        else:
            messages.success(request, f"Template {template.name} {verb}.")
            return redirect("dashboard:templates")
    return render_page(
        request,
        ws,
        "dashboard/message_template_form.html",
        {"form": form, "template": template},
        section="templates",
        status=400 if form.is_bound and form.errors else 200,
    )


@dashboard_view(methods=("GET", "POST"), manage=True)
def template_new(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return _form(request, ws, None)


@dashboard_view(methods=("GET", "POST"), manage=True)
def template_edit(request: HttpRequest, ws: Workspace, template_id: str) -> HttpResponse:
    return _form(request, ws, template_get(account=ws.account, template_id=template_id))


@dashboard_view(methods=("POST",), manage=True)
def template_remove(request: HttpRequest, ws: Workspace, template_id: str) -> HttpResponse:
    template = template_get(account=ws.account, template_id=template_id)
    template_delete(template=template, audit=user_audit(request))
    messages.success(request, f"Template {template.name} deleted.")
    return redirect("dashboard:templates")
