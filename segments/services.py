"""Writes to segments. Names are unique per account, case-insensitively; the database
constraint decides between two concurrent creates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from integration.models import Account
from mifumo.api.errors import ApiError, ErrorCode
from segments.models import Segment

UPDATABLE_FIELDS = ("name", "description", "criteria")


def _save(segment: Segment, **kwargs: Any) -> None:
    try:
        with transaction.atomic():
            segment.save(**kwargs)
    except IntegrityError:
        existing = (
            Segment.objects.filter(account_id=segment.account_id, name__iexact=segment.name)
            .exclude(pk=segment.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if existing is None:
            raise
        raise ApiError(
            ErrorCode.CONFLICT,
            f"A segment named '{segment.name}' already exists",
            {"segment_id": existing, "name": segment.name},
        ) from None


def segment_create(
    *, account: Account, name: str, description: str = "", criteria: Mapping[str, Any]
) -> Segment:
    """Expects validated fields (SegmentIn): criteria in canonical form."""
    segment = Segment(account=account, name=name, description=description, criteria=dict(criteria))
    _save(segment, force_insert=True)
    return segment


def segment_update(*, segment: Segment, data: Mapping[str, Any]) -> Segment:
    changed = [name for name in UPDATABLE_FIELDS if name in data]
    if not changed:
        return segment
    for name in changed:
        setattr(segment, name, data[name])
    segment.updated_at = timezone.now()
    _save(segment, update_fields=[*changed, "updated_at"])
    return segment


def segment_delete(*, segment: Segment) -> None:
    segment.delete()
