from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from dashboard.access import Workspace, dashboard_view
from dashboard.charts import Number, Series, stacked_bars
from dashboard.forms import PeriodForm, key_choices
from dashboard.selectors import UsageReport, usage_report
from dashboard.views.common import csv_download, render_page
from integration.selectors import api_keys_all
from mifumo.days import today

DEFAULT_PERIOD = 30

REQUEST_SERIES = [
    Series("ok", "Succeeded", "s-ok"),
    Series("client", "Client errors", "s-client"),
    Series("limited", "Rate limited (429)", "s-limited"),
    Series("server", "Server errors", "s-server"),
]
MESSAGE_SERIES = [Series("recipients", "SMS (recipients)", "s-sent")]
SPEND_SERIES = [Series("spend", "Spend", "s-spend")]


def _filters(request: HttpRequest, ws: Workspace) -> tuple[PeriodForm, int, int | None]:
    """The period (days) and the API key (None: every key) the page is about."""
    form = PeriodForm(request.GET, keys=key_choices(api_keys_all(account=ws.account)))
    if not form.is_valid():
        return form, DEFAULT_PERIOD, None
    return form, form.cleaned_data.get("period") or DEFAULT_PERIOD, form.cleaned_data.get("key")


def _money(value: Number) -> str:
    return f"{Decimal(value):,.2f}"


@dashboard_view()
def usage(request: HttpRequest, ws: Workspace) -> HttpResponse:
    form, period, key = _filters(request, ws)
    report = usage_report(account=ws.account, days=period, api_key_id=key)
    days = [d.day for d in report.days]
    requests_chart = stacked_bars(
        title=f"API requests per day, last {period} days",
        days=days,
        series=REQUEST_SERIES,
        values={
            d.day: {
                "ok": d.ok,
                "client": d.errors - d.rate_limited - d.server_errors,
                "limited": d.rate_limited,
                "server": d.server_errors,
            }
            for d in report.days
        },
    )
    messages_chart = stacked_bars(
        title=f"SMS sent per day, last {period} days",
        days=days,
        series=MESSAGE_SERIES,
        values={d.day: {"recipients": d.recipients} for d in report.days},
    )
    spend_chart = stacked_bars(
        title=f"Spend per day ({ws.account.currency}), last {period} days",
        days=days,
        series=SPEND_SERIES,
        values={d.day: {"spend": d.spend} for d in report.days},
        fmt=_money,
    )
    return render_page(
        request,
        ws,
        "dashboard/usage.html",
        {
            "form": form,
            "period": period,
            "key": key,
            "report": report,
            "charts": [requests_chart, messages_chart, spend_chart],
        },
        section="usage",
    )


DAILY_HEADER = [
    "date",
    "api_requests",
    "api_errors",
    "rate_limited",
    "avg_latency_ms",
    "messages",
    "recipients",
    "spend",
]
ROUTE_HEADER = ["method", "route", "requests", "errors", "error_rate", "avg_latency_ms", "p95_ms"]


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _csv_rows(report: UsageReport, table: str) -> Iterator[list[str]]:
    if table == "endpoints":
        yield ROUTE_HEADER
        for r in report.routes:
            yield [
                r.method,
                r.route,
                str(r.requests),
                str(r.errors),
                f"{r.error_rate:.2f}",
                _ms(r.avg_latency_ms),
                _ms(r.p95_latency_ms),
            ]
        return
    yield DAILY_HEADER
    for d in report.days:
        yield [
            d.day.isoformat(),
            str(d.requests),
            str(d.errors),
            str(d.rate_limited),
            _ms(d.avg_latency_ms),
            str(d.messages),
            str(d.recipients),
            f"{d.spend:.2f}",
        ]


@dashboard_view()
def usage_export(request: HttpRequest, ws: Workspace) -> HttpResponseBase:
    _, period, key = _filters(request, ws)
    table = "endpoints" if request.GET.get("table") == "endpoints" else "daily"
    report = usage_report(account=ws.account, days=period, api_key_id=key)
    name = f"mifumo-usage-{table}-{period}d-{today().isoformat()}.csv"
    return csv_download(_csv_rows(report, table), name)
