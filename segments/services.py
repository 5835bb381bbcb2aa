"""Writes to segments. Names are unique per account, case-insensitively; the database
constraint decides between two concurrent creates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integration.models import Account
from mifumo.named import save_named, update_named
from segments.models import Segment

UPDATABLE_FIELDS = ("name", "description", "criteria")


def _save(segment: Segment, **kwargs: Any) -> None:
    save_named(segment, what="segment", id_key="segment_id", **kwargs)


def segment_create(
    *, account: Account, name: str, description: str = "", criteria: Mapping[str, Any]
) -> Segment:
    """Expects validated fields (SegmentIn): criteria in canonical form."""
    segment = Segment(account=account, name=name, description=description, criteria=dict(criteria))
    _save(segment, force_insert=True)
    return segment


def segment_update(*, segment: Segment, data: Mapping[str, Any]) -> Segment:
    return update_named(segment, data, UPDATABLE_FIELDS, _save)


def segment_delete(*, segment: Segment) -> None:
    segment.delete()
