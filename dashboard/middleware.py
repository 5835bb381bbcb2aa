"""A Content-Security-Policy on every dashboard page.

The dashboard's markup holds no inline script, style or event handler (its script and
stylesheet are files, its charts and QR codes plain SVG), so the policy allows only files
from this site: text an account stores and the dashboard shows, even if escaping ever
failed, could not run or load anything. Pages cannot be framed, forms post only here.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._prefix: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self._prefix is None:
            self._prefix = reverse("dashboard:overview")
        if request.path.startswith(self._prefix):
            response.setdefault("Content-Security-Policy", POLICY)
        return response
