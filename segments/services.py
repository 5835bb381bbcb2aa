"""Writes to segments. Names are unique per account, case-insensitively; the database
constraint decides between two concurrent creates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from integration.audit import Action, AuditContext
from integration.models import Account
from mifumo.named import save_named, update_named
from segments.models import Segment

UPDATABLE_FIELDS = ("name", "description", "criteria")


def _save(segment: Segment, **kwargs: Any) -> None:
    save_named(segment, what="segment", id_key="segment_id", **kwargs)


def _record(audit: AuditContext | None, action: str, segment: Segment, **details: str) -> None:
    if audit is not None:
        audit.record(
            account=segment.account_id, action=action, target=segment.name, details=details
        )


def _criteria(segment: Segment) -> str:
    return json.dumps(segment.criteria)


@transaction.atomic
def segment_create(
    *,
    account: Account,
    name: str,
    description: str = "",
    criteria: Mapping[str, Any],
    audit: AuditContext | None = None,
) -> Segment:
    """Expects validated fields (SegmentIn): criteria in canonical form."""
    segment = Segment(account=account, name=name, description=description, criteria=dict(criteria))
    _save(segment, force_insert=True)
    _record(audit, Action.SEGMENT_CREATED, segment, criteria=_criteria(segment))
    return segment


@transaction.atomic
def segment_update(
    *, segment: Segment, data: Mapping[str, Any], audit: AuditContext | None = None
) -> Segment:
    update_named(segment, data, UPDATABLE_FIELDS, _save)
    _record(audit, Action.SEGMENT_UPDATED, segment, criteria=_criteria(segment))
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment, audit: AuditContext | None = None) -> None:
    _record(audit, Action.SEGMENT_DELETED, segment)
    segment.delete()
