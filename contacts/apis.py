"""Contacts API: create, search, read, change, delete, opt-out/in, CSV import and export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from contacts import serializers as s
from contacts.csvio import csv_lines
from contacts.parsers import CsvBodyParser
from contacts.selectors import (
    contact_custom_keys,
    contact_export_rows,
    contact_get,
    contact_search,
)
from contacts.services import (
    contact_create,
    contact_delete,
    contact_import,
    contact_opt_in,
    contact_opt_out,
    contact_update,
)
from integration.auth import ApiPrincipal, api_principal
from integration.idempotency import idempotent
from integration.models import Account
from integration.views import ApiView
from mifumo.api.docs import envelope_responses
from mifumo.api.responses import ok
from mifumo.errors import DomainError, ErrorCode

TAG = "Contacts"
CONTACT_EXAMPLE = {
    "id": "con_01JDQ3W2ZK8V0M4T6R9XHB5N7C",
    "name": "John Doe",
    "phone_number": "+255712345678",
    "email": "john@example.com",
    "tags": ["customer", "vip"],
    "custom_fields": {"city": "Arusha", "order_id": "1043"},
    "is_active": True,
    "opted_out": False,
    "opted_out_at": None,
    "created_at": "2024-01-01T10:00:00Z",
    "updated_at": "2024-01-01T10:00:00Z",
}


class ContactsApiView(ApiView):
    """Contact and segment endpoints count against the account's "contacts" limit."""

    rate_limit_bucket = "contacts"


def account_of(request: Request) -> Account:
    assert isinstance(request.user, ApiPrincipal)
    return request.user.account


# The members of a segment as a filter over the account's contacts. Segments are built on
# contacts, not the reverse: the segments app provides this (SegmentsConfig.ready()).
SegmentFilter = Callable[[Account, str], Q]
_segment_filters: list[SegmentFilter] = []


def provide_segment_filter(segment_filter: SegmentFilter) -> None:
    _segment_filters[:] = [segment_filter]


def segment_within(request: Request, segment_id: str | None) -> Q | None:
    if not segment_id:
        return None
    if not _segment_filters:
        raise DomainError(ErrorCode.NOT_FOUND, "Segment not found", {"segment_id": segment_id})
    return _segment_filters[0](account_of(request), segment_id)


class ContactCreateApi(ContactsApiView):
    @extend_schema(
        summary="Create a contact",
        tags=[TAG],
        request=s.ContactIn,
        responses=envelope_responses(
            s.ContactOut,
            status=201,
            errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.INVALID_PHONE, ErrorCode.CONFLICT],
            example=CONTACT_EXAMPLE,
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = s.ContactIn(data=request.data)
        data.is_valid(raise_exception=True)
        contact = contact_create(account=account_of(request), **data.validated_data)
        return ok(s.contact_data(contact), "Contact created successfully", status=201)


class ContactSearchApi(ContactsApiView):
    fast_read = True

    @extend_schema(
        summary="Search contacts",
        description=(
            "Case-insensitive search in name, email and phone number (0712…, 712… and "
            "+255712… find the same contact). Without q, lists contacts. Newest first."
        ),
        tags=[TAG],
        parameters=[s.ContactSearchIn],
        responses=envelope_responses(
            s.ContactListOut, errors=[ErrorCode.VALIDATION_ERROR, ErrorCode.NOT_FOUND]
        ),
    )
    def get(self, request: Request) -> Response:
        params = s.ContactSearchIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        limit, offset = params.validated_data["limit"], params.validated_data["offset"]
        page = contact_search(
            account=account_of(request),
            q=params.validated_data["q"],
            limit=limit,
            offset=offset,
            within=segment_within(request, params.validated_data.get("segment_id")),
        )
        return ok(
            {
                "contacts": [s.contact_data(c) for c in page.contacts],
                "pagination": s.page_data(limit=limit, offset=offset, total=page.total),
            },
            "Contacts retrieved successfully",
        )


class ContactDetailApi(ContactsApiView):
    @extend_schema(
        summary="Get a contact",
        tags=[TAG],
        responses=envelope_responses(s.ContactOut, errors=[ErrorCode.NOT_FOUND]),
    )
    def get(self, request: Request, contact_id: str) -> Response:
        contact = contact_get(account=account_of(request), contact_id=contact_id)
        return ok(s.contact_data(contact), "Contact retrieved successfully")

    @extend_schema(
        summary="Update a contact",
        description="Changes only the fields sent.",
        tags=[TAG],
        request=s.ContactIn(partial=True),
        responses=envelope_responses(
            s.ContactOut,
            errors=[
                ErrorCode.NOT_FOUND,
                ErrorCode.VALIDATION_ERROR,
                ErrorCode.INVALID_PHONE,
                ErrorCode.CONFLICT,
            ],
        ),
    )
    def patch(self, request: Request, contact_id: str) -> Response:
        contact = contact_get(account=account_of(request), contact_id=contact_id)
        data = s.ContactIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        contact = contact_update(contact=contact, data=data.validated_data)
        return ok(s.contact_data(contact), "Contact updated successfully")

    @extend_schema(
        summary="Delete a contact",
        tags=[TAG],
        responses=envelope_responses(
            s.DeletedOut, errors=[ErrorCode.NOT_FOUND, ErrorCode.CONFLICT]
        ),
    )
    def delete(self, request: Request, contact_id: str) -> Response:
        contact = contact_get(account=account_of(request), contact_id=contact_id)
        contact_delete(contact=contact)
        return ok({"id": contact_id, "deleted": True}, "Contact deleted successfully")


class ContactOptOutApi(ContactsApiView):
    @extend_schema(
        summary="Opt a contact out of messages",
        description="Sends to an opted-out number are refused. Repeating it changes nothing.",
        tags=[TAG],
        request=None,
        responses=envelope_responses(s.ContactOut, errors=[ErrorCode.NOT_FOUND]),
    )
    @idempotent
    def post(self, request: Request, contact_id: str) -> Response:
        contact = contact_get(account=account_of(request), contact_id=contact_id)
        opted = contact_opt_out(contact=contact, is_test=api_principal(request).test_only)
        return ok(s.contact_data(opted), "Contact opted out")


class ContactOptInApi(ContactsApiView):
    @extend_schema(
        summary="Opt a contact back in to messages",
        tags=[TAG],
        request=None,
        responses=envelope_responses(s.ContactOut, errors=[ErrorCode.NOT_FOUND]),
    )
    @idempotent
    def post(self, request: Request, contact_id: str) -> Response:
        contact = contact_get(account=account_of(request), contact_id=contact_id)
        opted = contact_opt_in(contact=contact, is_test=api_principal(request).test_only)
        return ok(s.contact_data(opted), "Contact opted in")


def _upload(request: Request) -> bytes:
    upload = request.data.get("file")
    if isinstance(upload, bytes):
        return upload
    if isinstance(upload, UploadedFile):
        return upload.read()
    raise DomainError(
        ErrorCode.VALIDATION_ERROR,
        "No CSV received",
        {"file": ["Send the CSV as the multipart field 'file' or as a text/csv body"]},
    )


class ContactImportApi(ContactsApiView):
    parser_classes = [MultiPartParser, CsvBodyParser]

    @extend_schema(
        summary="Import contacts from CSV",
        description=(
            "A CSV as the multipart field `file` or as a `text/csv` body (gzip-compressed "
            "files are accepted), with `on_duplicate` as a form field or query parameter. "
            "Rows with errors are reported and left out; the rest is imported at once. The "
            "request body limit applies to the upload: compress large files."
        ),
        tags=[TAG],
        parameters=[s.ContactImportIn],
        request={"multipart/form-data": s.ContactImportUploadIn, "text/csv": OpenApiTypes.STR},
        responses=envelope_responses(
            s.ImportOut,
            errors=[
                ErrorCode.VALIDATION_ERROR,
                ErrorCode.PAYLOAD_TOO_LARGE,
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ],
        ),
    )
    @idempotent
    def post(self, request: Request) -> Response:
        options = s.ContactImportIn(
            data={
                "on_duplicate": request.data.get("on_duplicate")
                or request.query_params.get("on_duplicate", "skip")
            }
        )
        options.is_valid(raise_exception=True)
        result = contact_import(
            account=account_of(request),
            data=_upload(request),
            on_duplicate=options.validated_data["on_duplicate"],
            is_test=api_principal(request).test_only,
        )
        return ok(
            result.as_dict(),
            f"Import finished: {result.created} created, {result.updated} updated, "
            f"{result.skipped} skipped, {result.failed} failed",
        )

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, UnsupportedMediaType):
            exc = DomainError(
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                f"{exc.detail} Send the CSV as multipart/form-data (field 'file') or as text/csv.",
            )
        return super().handle_exception(exc)


def _csv_responses() -> dict[Any, OpenApiResponse]:
    errors = envelope_responses(OpenApiTypes.NONE, errors=[ErrorCode.NOT_FOUND])
    csv_ok = OpenApiResponse(
        OpenApiTypes.STR,
        description="CSV in the import format",
        examples=[
            OpenApiExample(
                "csv",
                value="name,phone_number,email,tags,is_active,opted_out\r\n"
                "John Doe,+255712345678,john@example.com,customer;vip,true,false\r\n",
            )
        ],
    )
    return {(200, "text/csv"): csv_ok, **{k: v for k, v in errors.items() if k != 200}}


class ContactExportApi(ContactsApiView):
    @extend_schema(
        summary="Export contacts as CSV",
        description=(
            "The account's contacts (or a segment's members), oldest first, in the import "
            "format, with a column per custom field key in use. The one success response "
            "that is CSV, not a JSON envelope."
        ),
        tags=[TAG],
        parameters=[s.ContactExportIn],
        responses=_csv_responses(),
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        params = s.ContactExportIn(data=request.query_params)
        params.is_valid(raise_exception=True)
        account = account_of(request)
        within = segment_within(request, params.validated_data.get("segment_id"))
        rows = contact_export_rows(account=account, within=within)
        keys = contact_custom_keys(account=account, within=within)
        response = StreamingHttpResponse(
            csv_lines(rows, keys), content_type="text/csv; charset=utf-8"
        )
        filename = f"contacts-{timezone.now():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        # The envelope middleware passes marked responses through untouched.
        response.mifumo_envelope = True  # type: ignore[attr-defined]
        return response

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # "Accept: text/csv" must not fail negotiation: success bypasses renderers, and
        # errors are JSON envelopes whatever was asked for.
        return super().perform_content_negotiation(request, force=True)
