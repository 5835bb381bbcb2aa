"""Billing: the balance, what sending cost per day, the ledger (top-ups, debits, refunds,
adjustments) with its CSV, and the low-balance alert."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect

from dashboard.access import Workspace, dashboard_view
from dashboard.charts import Number, Series, stacked_bars
from dashboard.forms import LedgerFilterForm, ThresholdForm
from dashboard.views.common import csv_download, form_error, paginate, render_page
from integration.audit import user_audit
from integration.models import LedgerEntry
from integration.selectors import account_balance, ledger_entries, ledger_per_day, spend_of
from integration.services import account_set_low_balance_threshold
from mifumo.days import day_end, day_start, days_back, today
from mifumo.errors import DomainError

CHART_DAYS = 30
SPEND_SERIES = [Series("spend", "Spend after refunds", "s-spend")]
LEDGER_HEADER = ["date", "kind", "amount", "balance_after", "reference", "note", "by"]
ZERO = Decimal("0.00")


def _money(value: Number) -> str:
    return f"{Decimal(value):,.2f}"


def _ledger(ws: Workspace, form: LedgerFilterForm) -> QuerySet[LedgerEntry]:
    data = form.cleaned_data if form.is_valid() else {}
    start = data.get("start")
    end = data.get("end")
    return ledger_entries(
        account=ws.account,
        kind=data.get("kind") or "",
        start=day_start(start) if start else None,
        end=day_end(end) if end else None,
    )


def entry_by(entry: LedgerEntry) -> str:
    """Who moved the money, as the account may see it: top-ups and adjustments are an
    operator's (never named), debits and refunds the platform's own."""
    if entry.kind in (LedgerEntry.Kind.TOP_UP, LedgerEntry.Kind.ADJUSTMENT):
        return "Mifumo operator"
    return ""


def _page(
    request: HttpRequest, ws: Workspace, threshold_form: ThresholdForm | None, status: int = 200
) -> HttpResponse:
    account = ws.account
    form = LedgerFilterForm(request.GET or None)
    days = days_back(CHART_DAYS)
    per_day = ledger_per_day(account=account, start=day_start(days[0]))
    spend = {day: spend_of(kinds) for day, kinds in per_day.items()}
    chart = stacked_bars(
        title=f"Spend per day ({account.currency}), last {CHART_DAYS} days",
        days=days,
        series=SPEND_SERIES,
        values={day: {"spend": value} for day, value in spend.items()},
        fmt=_money,
    )
    page = paginate(request, _ledger(ws, form))
    if threshold_form is None and ws.can_manage:
        threshold_form = ThresholdForm(initial={"threshold": account.low_balance_threshold})
    balance = account_balance(account_id=account.pk)
    threshold = account.low_balance_threshold
    return render_page(
        request,
        ws,
        "dashboard/billing.html",
        {
            "balance": balance,
            "spend_30d": sum(spend.values(), ZERO),
            "top_ups_30d": sum(
                (kinds.get(LedgerEntry.Kind.TOP_UP, ZERO) for kinds in per_day.values()), ZERO
            ),
            "threshold": threshold,
            "below_threshold": threshold is not None and balance.balance < threshold,
            "chart": chart,
            "form": form,
            "page": page,
            "rows": [(e, entry_by(e)) for e in page.object_list],
            "threshold_form": threshold_form,
        },
        section="billing",
        status=status if not (form.is_bound and form.errors) else 400,
    )


@dashboard_view()
def billing(request: HttpRequest, ws: Workspace) -> HttpResponse:
    return _page(request, ws, None)


@dashboard_view(methods=("POST",), manage=True)
def billing_threshold(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form = ThresholdForm(request.POST)
    if not form.is_valid():
        return _page(request, ws, form, status=400)
    try:
        account_set_low_balance_threshold(
            account=ws.account,
            threshold=form.cleaned_data.get("threshold"),
            audit=user_audit(request),
        )
    except DomainError as exc:
        form_error(form, exc, "threshold")
        return _page(request, ws, form, status=400)
    value = ws.account.low_balance_threshold
    if value is None:
        messages.success(request, "The low-balance alert is off.")
    else:
        messages.success(
            request,
            f"You will be alerted when the balance falls below {value:,.2f} {ws.account.currency}.",
        )
        if account_balance(account_id=ws.account.pk).balance < value:
            messages.warning(request, "The balance is already below it: top up soon.")
    return redirect("dashboard:billing")


def _csv_rows(rows: QuerySet[LedgerEntry]) -> Iterator[Sequence[object]]:
    yield LEDGER_HEADER
    for entry in rows.iterator(chunk_size=2000):
        yield [
            entry.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            entry.kind,
            f"{entry.amount:.2f}",
            f"{entry.balance_after:.2f}",
            entry.reference,
            entry.note,
            entry_by(entry),
        ]


@dashboard_view()
def billing_export(request: HttpRequest, ws: Workspace) -> HttpResponseBase:
    form = LedgerFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        # Not the whole ledger in place of the part asked for: the page says what is wrong.
        return _page(request, ws, None, status=400)
    name = f"mifumo-ledger-{today().isoformat()}.csv"
    return csv_download(_csv_rows(_ledger(ws, form)), name)
