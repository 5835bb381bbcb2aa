"""Error pages in the dashboard's look: inside its layout when a signed-in user is lost
in it, on the public frame otherwise. (Under the API prefix errors stay JSON envelopes.)"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from dashboard.access import workspace_for


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    user = getattr(request, "user", None)
    ws = workspace_for(request) if user is not None and user.is_authenticated else None
    return render(request, "dashboard/404.html", {"ws": ws, "path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    # No context processors and no database: whatever broke may break those too.
    return HttpResponseServerError(loader.get_template("dashboard/500.html").render({}))
