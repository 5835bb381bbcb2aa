"""Delivery-receipt and inbound-message callbacks, mounted at ``/api/integration/carriers/``."""

from __future__ import annotations

from django.urls import URLPattern, re_path

from sms.carriers.dlr import carrier_dlr
from sms.carriers.inbound_http import carrier_inbound

app_name = "carriers"

# The trailing slash is optional: provider dashboards store the URL exactly as typed, and a
# redirect would turn their POST into a GET.
urlpatterns: list[URLPattern] = [
    re_path(r"^(?P<carrier>[\w.-]+)/dlr/?$", carrier_dlr, name="dlr"),
    re_path(r"^(?P<carrier>[\w.-]+)/inbound/?$", carrier_inbound, name="inbound"),
]
