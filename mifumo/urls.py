from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from mifumo import metrics, views
from mifumo.api.schema import SchemaView

api_v1: list[URLPattern | URLResolver] = [
    path("sms/inbound/", include("inbox.urls")),
    path("sms/", include("sms.urls")),
    path("keys/", include("integration.urls")),
    # Segments are built on contacts and live under their prefix.
    path("contacts/segments/", include("segments.urls")),
    path("contacts/", include("contacts.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("schema/", SchemaView.as_view(), name="schema"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/integration/v1/", include(api_v1)),
    path("api/integration/carriers/", include("sms.carriers.urls")),
    path(
        "api/integration/documentation/",
        SpectacularSwaggerView.as_view(url_name="schema"),
        name="documentation",
    ),
    path(
        "api/integration/documentation/redoc/",
        SpectacularRedocView.as_view(url_name="schema"),
        name="redoc",
    ),
    path("api/integration/dashboard/", include("dashboard.urls")),
    re_path(r"^api/integration/v1/.*$", views.NotFoundView.as_view(), name="api-not-found"),
]

handler400 = "mifumo.views.bad_request"
handler404 = "dashboard.views.errors.page_not_found"
handler500 = "dashboard.views.errors.server_error"
