from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from dashboard import selectors
from dashboard.access import Workspace, dashboard_view
from dashboard.charts import Series, stacked_bars
from dashboard.views.common import render_page
from mifumo.days import days_back
from sms.selectors import recent_failed_recipients

CHART_DAYS = 30

STATUS_SERIES = [
    Series(key, label, f"s-{key}") for key, label, _statuses in selectors.STATUS_GROUPS
]


@dashboard_view()
def overview(request: HttpRequest, ws: Workspace) -> HttpResponse:
    account = ws.account
    chart = stacked_bars(
        title=f"SMS per day by status, last {CHART_DAYS} days",
        days=days_back(CHART_DAYS),
        series=STATUS_SERIES,
        values=selectors.recipients_per_day(account=account, days=CHART_DAYS),
    )
    return render_page(
        request,
        ws,
        "dashboard/overview.html",
        {
            "stats": selectors.account_overview(account=account),
            "chart": chart,
            "failures": recent_failed_recipients(account=account),
            "activity": selectors.audit_recent(account=account),
        },
        section="overview",
    )
