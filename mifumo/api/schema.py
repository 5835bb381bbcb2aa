"""OpenAPI schema and interactive docs, served from local static files (no CDN)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response


class SchemaView(SpectacularAPIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        # The schema is the one document under the API prefix that is not an envelope.
        response.mifumo_envelope = True  # type: ignore[attr-defined]
        return response


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "integration.auth.ApiKeyAuthentication"
    name = "BearerApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mif_live_<32 base62> or mif_test_<32 base62>",
            "description": "Authorization: Bearer YOUR_API_KEY",
        }
