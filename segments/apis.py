"""Segments API: saved, dynamic filters over an account's contacts."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from contacts import serializers as cs
from contacts.apis import ContactsApiView, account_of
from contacts.selectors import contact_search
from integration.idempotency import idempotent
from mifumo.api.docs import envelope_responses
from mifumo.api.responses import ok
from mifumo.errors import ErrorCode
from segments import serializers as s
from segments.selectors import (
    segment_contact_count,
    segment_filter,
    segment_get,
    segment_list,
)
from segments.services import segment_create, segment_delete, segment_update

TAG = "Segments"
SEGMENT_EXAMPLE = {
    "id": "seg_01JDQ3Y8M2C4E6G8J0K2M4P6R8",
    "name": "VIP Customers",
    "description": "High-value customers",
    "criteria": {"tags": ["vip", "premium"], "is_active": True, "created_after": "2024-01-01"},
    "contact_count": 42,
    "created_at": "2024-01-01T10:00:00Z",
    "updated_at": "2024-01-01T10:00:00Z",
}


class SegmentListApi(ContactsApiView):
    @extend_schema(
        summary="List segments with their contact counts",
        operation_id="contacts_segments_list",
        tags=[TAG],
        parameters=[cs.PageIn],
        responses=envelope_responses(s.SegmentListOut, errors=[ErrorCode.VALIDATION_ERROR]),
    )
    def get(self, request: Request) -> Response:
        params = cs.PageIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit, offset = params.validated_data["limit"], params.validated_data["offset"]
        page = segment_list(account=account_of(request), limit=limit, offset=offset)
        return ok(
            {
                "segments": [
                    s.segment_data(seg, contact_count=page.counts[seg.pk]) for seg in page.segments
                ],
                "pagination": cs.page_data(limit=limit, offset=offset, total=page.total),
            },
            "Segments retrieved successfully",
        )


class SegmentCreateApi(ContactsApiView):
    @extend_schema(
        summary="Create a segment",
        description=(
            "Criteria keys, combined with AND: tags (any of), tags_all (all of), is_active, "
            "opted_out, created_after, created_before. Membership is evaluated when used."
        ),
        tags=[TAG],
        request=s.SegmentIn,
        responses=envelope_responses(
            s.SegmentOut,
            status=201,
            errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.CONFLICT],
            example=SEGMENT_EXAMPLE,
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = s.SegmentIn(data=request.data)
        data.is_valid(raise_exception=True)
        segment = segment_create(account=account_of(request), **data.validated_data)
        return ok(
            s.segment_data(segment, contact_count=segment_contact_count(segment=segment)),
            "Segment created successfully",
            status=201,
        )


class SegmentDetailApi(ContactsApiView):
    @extend_schema(
        summary="Get a segment",
        tags=[TAG],
        responses=envelope_responses(s.SegmentOut, errors=[ErrorCode.NOT_FOUND]),
    )
    def get(self, request: Request, segment_id: str) -> Response:
        segment = segment_get(account=account_of(request), segment_id=segment_id)
        return ok(
            s.segment_data(segment, contact_count=segment_contact_count(segment=segment)),
            "Segment retrieved successfully",
        )

    @extend_schema(
        summary="Update a segment",
        description="Changes only the fields sent; criteria are replaced as a whole.",
        tags=[TAG],
        request=s.SegmentIn(partial=True),
        responses=envelope_responses(
            s.SegmentOut,
            errors=[ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR, ErrorCode.CONFLICT],
        ),
    )
    def patch(self, request: Request, segment_id: str) -> Response:
        segment = segment_get(account=account_of(request), segment_id=segment_id)
        data = s.SegmentIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        segment = segment_update(segment=segment, data=data.validated_data)
        return ok(
            s.segment_data(segment, contact_count=segment_contact_count(segment=segment)),
            "Segment updated successfully",
        )

    @extend_schema(
        summary="Delete a segment",
        description="The contacts stay; only the saved filter goes.",
        tags=[TAG],
        responses=envelope_responses(cs.DeletedOut, errors=[ErrorCode.NOT_FOUND]),
    )
    def delete(self, request: Request, segment_id: str) -> Response:
        segment = segment_get(account=account_of(request), segment_id=segment_id)
        segment_delete(segment=segment)
        return ok({"id": segment_id, "deleted": True}, "Segment deleted successfully")


class SegmentContactsApi(ContactsApiView):
    @extend_schema(
        summary="List a segment's contacts",
        description="The contacts matching the criteria now, newest first.",
        tags=[TAG],
        parameters=[cs.PageIn],
        responses=envelope_responses(
            cs.ContactListOut, errors=[ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR]
        ),
    )
    def get(self, request: Request, segment_id: str) -> Response:
        account = account_of(request)
        segment = segment_get(account=account, segment_id=segment_id)
        params = cs.PageIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit, offset = params.validated_data["limit"], params.validated_data["offset"]
        page = contact_search(
            account=account, limit=limit, offset=offset, within=segment_filter(segment)
        )
        return ok(
            {
                "contacts": [cs.contact_data(c) for c in page.contacts],
                "pagination": cs.page_data(limit=limit, offset=offset, total=page.total),
            },
            "Segment contacts retrieved successfully",
        )
