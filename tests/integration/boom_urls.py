"""URLs for envelope tests: the real ones plus views that fail on purpose."""

from django.db import OperationalError
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from integration.views import ApiView
from mifumo.urls import urlpatterns as real_urlpatterns


class BoomApi(ApiView):
    def get(self, request: Request) -> Response:
        raise RuntimeError("secret internals /etc/passwd")


class DatabaseDownApi(ApiView):
    def get(self, request: Request) -> Response:
        raise OperationalError("could not connect to server")


def plain_django_view(request):
    raise ValueError("outside DRF")


urlpatterns = [
    path("api/integration/v1/test/boom/", BoomApi.as_view()),
    path("api/integration/v1/test/db-down/", DatabaseDownApi.as_view()),
    path("api/integration/v1/test/plain/", plain_django_view),
    *real_urlpatterns,
]
