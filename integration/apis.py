"""API key management over the API (admin keys)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from integration import serializers as s
from integration.audit import AuditContext
from integration.auth import api_principal
from integration.idempotency import idempotent
from integration.models import ApiKey, Permission
from integration.permissions import resolve_mode
from integration.selectors import api_key_get, api_keys_all
from integration.services import api_key_create, api_key_revoke, api_key_rotate
from integration.views import ApiView
from mifumo.api.docs import envelope_responses, page_parameters
from mifumo.api.pagination import paginate_pages
from mifumo.api.responses import ok
from mifumo.errors import ErrorCode


def _audit(request: Request) -> AuditContext:
    """Done with an admin key: no user acts, the key that asked is named."""
    principal = api_principal(request)
    return AuditContext(
        request=request._request, details={"via": "api", "by_key": principal.api_key.prefix}
    )


def _keys(request: Request) -> QuerySet[ApiKey]:
    """The keys the caller manages: the account's, only its test keys for a test key."""
    principal = api_principal(request)
    return api_keys_all(account=principal.account, test_only=principal.test_only)


def _own_key(request: Request, key_id: int) -> ApiKey:
    principal = api_principal(request)
    return api_key_get(account=principal.account, key_id=key_id, test_only=principal.test_only)


class KeyListApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        summary="List API keys",
        description="Newest first.",
        tags=["API keys"],
        parameters=page_parameters(),
        responses=envelope_responses(s.ApiKeyListOut, errors=[ErrorCode.VALIDATION_ERROR]),
    )
    def get(self, request: Request) -> Response:
        keys, pagination = paginate_pages(request, _keys(request).order_by("-created_at", "-id"))
        return ok(
            {"keys": [s.api_key_data(k) for k in keys], "pagination": pagination},
            "API keys retrieved successfully",
        )


class KeyCreateApi(ApiView):
    required_permission = Permission.ADMIN
    # The answer carries the raw key: it must never be kept for a replay.
    idempotent_post = False

    @extend_schema(
        summary="Create an API key",
        tags=["API keys"],
        request=s.ApiKeyCreateIn,
        responses=envelope_responses(
            s.ApiKeyCreatedOut, status=201, errors=[ErrorCode.VALIDATION_ERROR]
        ),
    )
    def post(self, request: Request) -> Response:
        data = s.ApiKeyCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        principal = api_principal(request)
        expires_at = data.validated_data.get("expires_at")
        own_end = principal.api_key.expires_at
        if own_end is not None and (expires_at is None or expires_at > own_end):
            expires_at = own_end  # a key that expires cannot make one that outlives it
        issued = api_key_create(
            account=principal.account,
            name=data.validated_data["name"],
            permission=data.validated_data["permissions"],
            test=resolve_mode(principal, data.validated_data.get("test"), "keys"),
            expires_at=expires_at,
            audit=_audit(request),
        )
        body = {**s.api_key_data(issued.api_key), "key": issued.raw}
        return ok(body, "API key created; it is shown once, store it now", status=201)


class KeyRevokeApi(ApiView):
    required_permission = Permission.ADMIN

    @extend_schema(
        summary="Revoke an API key",
        tags=["API keys"],
        request=None,
        responses=envelope_responses(s.ApiKeyOut, errors=[ErrorCode.NOT_FOUND]),
    )
    @idempotent
    def post(self, request: Request, key_id: int) -> Response:
        key = api_key_revoke(api_key=_own_key(request, key_id), audit=_audit(request))
        return ok(s.api_key_data(key), "API key revoked")


class KeyRotateApi(ApiView):
    required_permission = Permission.ADMIN
    idempotent_post = False

    @extend_schema(
        summary="Rotate an API key: a new key (new id) replaces it, the old one stops working",
        tags=["API keys"],
        request=None,
        responses=envelope_responses(
            s.ApiKeyCreatedOut, errors=[ErrorCode.NOT_FOUND, ErrorCode.CONFLICT]
        ),
    )
    def post(self, request: Request, key_id: int) -> Response:
        issued = api_key_rotate(api_key=_own_key(request, key_id), audit=_audit(request))
        body = {**s.api_key_data(issued.api_key), "key": issued.raw}
        return ok(body, "API key rotated; the new key is shown once")
