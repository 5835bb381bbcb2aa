"""Message templates API: saved texts, usually with placeholders, sent by template_id."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from contacts import serializers as cs
from integration.auth import api_principal
from integration.idempotency import idempotent
from integration.views import ApiView
from message_templates import serializers as s
from message_templates.selectors import template_get, template_list
from message_templates.services import template_create, template_delete, template_update
from mifumo.api.docs import envelope_responses
from mifumo.api.responses import ok
from mifumo.errors import ErrorCode

TAG = "Templates"
TEMPLATE_EXAMPLE = {
    "id": "tpl_01JDQ41B7N3Q5S7V9X1Z3B5D7F",
    "name": "Order ready",
    "text": "Habari {{name}}, your order {{order_id}} is ready in {{city|Dar es Salaam}}",
    "placeholders": ["name", "order_id", "city"],
    "created_at": "2024-01-01T10:00:00Z",
    "updated_at": "2024-01-01T10:00:00Z",
}


class TemplateListApi(ApiView):
    @extend_schema(
        summary="List message templates",
        operation_id="sms_templates_list",
        tags=[TAG],
        parameters=[cs.PageIn],
        responses=envelope_responses(s.TemplateListOut, errors=[ErrorCode.VALIDATION_ERROR]),
    )
    def get(self, request: Request) -> Response:
        params = cs.PageIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit, offset = params.validated_data["limit"], params.validated_data["offset"]
        page = template_list(account=api_principal(request).account, limit=limit, offset=offset)
        return ok(
            {
                "templates": [s.template_data(t) for t in page.templates],
                "pagination": cs.page_data(limit=limit, offset=offset, total=page.total),
            },
            "Templates retrieved successfully",
        )


class TemplateCreateApi(ApiView):
    @extend_schema(
        summary="Create a message template",
        description=(
            "Names are unique per account, whatever their case. Placeholders are checked "
            "now; their values are filled at each send."
        ),
        tags=[TAG],
        request=s.TemplateIn,
        responses=envelope_responses(
            s.TemplateOut,
            status=201,
            errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.CONFLICT],
            example=TEMPLATE_EXAMPLE,
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = s.TemplateIn(data=request.data)
        data.is_valid(raise_exception=True)
        template = template_create(account=api_principal(request).account, **data.validated_data)
        return ok(s.template_data(template), "Template created successfully", status=201)


class TemplateDetailApi(ApiView):
    @extend_schema(
        summary="Get a message template",
        tags=[TAG],
        responses=envelope_responses(s.TemplateOut, errors=[ErrorCode.NOT_FOUND]),
    )
    def get(self, request: Request, template_id: str) -> Response:
        template = template_get(account=api_principal(request).account, template_id=template_id)
        return ok(s.template_data(template), "Template retrieved successfully")

    @extend_schema(
        summary="Update a message template",
        description="Changes only the fields sent. Messages already sent keep their text.",
        tags=[TAG],
        request=s.TemplateIn(partial=True),
        responses=envelope_responses(
            s.TemplateOut,
            errors=[ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR, ErrorCode.CONFLICT],
        ),
    )
    def patch(self, request: Request, template_id: str) -> Response:
        template = template_get(account=api_principal(request).account, template_id=template_id)
        data = s.TemplateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        template = template_update(template=template, data=data.validated_data)
        return ok(s.template_data(template), "Template updated successfully")

    @extend_schema(
        summary="Delete a message template",
        description="Messages already sent from it keep their text.",
        tags=[TAG],
        responses=envelope_responses(cs.DeletedOut, errors=[ErrorCode.NOT_FOUND]),
    )
    def delete(self, request: Request, template_id: str) -> Response:
        template = template_get(account=api_principal(request).account, template_id=template_id)
        template_delete(template=template)
        return ok({"id": template_id, "deleted": True}, "Template deleted successfully")
