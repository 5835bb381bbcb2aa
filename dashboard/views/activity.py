from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from dashboard import selectors
from dashboard.access import Workspace, dashboard_view
from dashboard.forms import ActivityFilterForm
from dashboard.views.common import paginate, render_page
from integration.audit import ACTION_LABELS, action_label
from integration.selectors import account_members


def _action_choices(seen: list[str]) -> list[tuple[str, str]]:
    """Families first ("All API key actions"), then each action known or seen."""
    actions = sorted(set(ACTION_LABELS) | set(seen))
    families = sorted({a.split(".", 1)[0] for a in actions if "." in a})
    choices = [(f, f"All {f.replace('_', ' ')} actions") for f in families]
    return choices + [(a, action_label(a)) for a in actions]


@dashboard_view()
def activity(request: HttpRequest, ws: Workspace) -> HttpResponse:
    members = account_members(account=ws.account)
    form = ActivityFilterForm(
        request.GET or None,
        actions=_action_choices(selectors.audit_actions_seen(account=ws.account)),
        actors=[(m.user_id, m.user.get_username()) for m in members],
    )
    filters = selectors.ActivityFilter()
    if form.is_valid():
        data = form.cleaned_data
        filters = selectors.ActivityFilter(
            action=data.get("action") or "",
            actor_id=data.get("actor"),
            q=data.get("q") or "",
            start=data.get("start"),
            end=data.get("end"),
        )
    page = paginate(request, selectors.audit_events(account=ws.account, filters=filters), 50)
    return render_page(
        request,
        ws,
        "dashboard/activity.html",
        {"form": form, "page": page},
        section="activity",
    )
