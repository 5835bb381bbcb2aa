"""What every dashboard page shares: rendering with the workspace, paging, domain errors
shown on forms (NOT_FOUND is a 404 page, in ``dashboard_view``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django import forms
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from dashboard.access import Workspace
from integration.audit import audit_record
from mifumo.csv_cells import spreadsheet_lines
from mifumo.errors import DomainError
from mifumo.once import first_use

PER_PAGE = 25
USED_NONCES_KEY = "dashboard_used_nonces"
KEEP_NONCES = 50


def render_page(
    request: HttpRequest,
    ws: Workspace,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    section: str = "",
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        template,
        {"ws": ws, "section": section, **(context or {})},
        status=status,
    )


def paginate(
    request: HttpRequest, rows: QuerySet[Any] | list[Any], per_page: int = PER_PAGE
) -> Page:
    return Paginator(rows, per_page).get_page(request.GET.get("page"))


def form_error(form: forms.BaseForm, exc: DomainError, field: str | None = None) -> None:
    """Show a service's refusal on the form: its message, plus what its details name."""
    form.add_error(field, exc.message)
    for line in error_details(exc):
        form.add_error(field, line)


def error_details(exc: DomainError) -> list[str]:
    details = exc.details
    lines: list[str] = []
    if isinstance(details, dict):
        for item in details.get("invalid") or []:
            if isinstance(item, dict):
                lines.append(f"{item.get('phone', '')}: {item.get('reason', 'not valid')}")
        for phone in details.get("unsupported") or []:
            lines.append(f"{phone}: no route covers this destination")
    return lines[:20]


def claim_nonce(request: HttpRequest, nonce: str) -> bool:
    """True the first time a form's one-time token is used. The session remembers it for
    later requests; two requests at once (a double click) both read the session before
    either saves it, so the claim itself is one atomic ``SET NX`` in the cache. With the
    cache down, the session alone decides."""
    used: list[str] = list(request.session.get(USED_NONCES_KEY, []))
    if not nonce or nonce in used:
        return False
    request.session[USED_NONCES_KEY] = [*used, nonce][-KEEP_NONCES:]
    return first_use(f"dashboard:{request.user.pk}:{nonce}")


def csv_attachment(lines: Iterable[str], filename: str) -> StreamingHttpResponse:
    """CSV text lines streamed as a download."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def csv_download(rows: Iterable[Sequence[object]], filename: str) -> StreamingHttpResponse:
    """Rows (the header first) streamed as a CSV attachment; no cell runs as a formula."""
    return csv_attachment(spreadsheet_lines(rows), filename)


def record(
    request: HttpRequest, ws: Workspace, action: str, target: object, **details: object
) -> None:
    """Note what the signed-in user did to the current account in its activity log."""
    audit_record(
        account=ws.account,
        actor=request.user,
        action=action,
        target=target,
        details=details,
        request=request,
    )
