"""Reads over segments. Membership is the criteria evaluated now, as one query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from contacts.models import Contact
from integration.models import Account
from mifumo.errors import DomainError, ErrorCode
from segments.criteria import criteria_q
from segments.models import Segment


@dataclass(frozen=True)
class SegmentPage:
    segments: list[Segment]
    counts: dict[str, int]  # segment id -> contact_count
    total: int


def segment_get(*, account: Account, segment_id: str) -> Segment:
    segment = Segment.objects.filter(account=account, pk=segment_id).first()
    if segment is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Segment not found", {"segment_id": segment_id})
    return segment


def segment_filter(segment: Segment) -> Q:
    """The segment's criteria as a filter over the account's contacts."""
    return criteria_q(segment.criteria)


def segment_members_filter(account: Account, segment_id: str) -> Q:
    """The account's segment ``segment_id`` as a filter over its contacts; NOT_FOUND if it
    has no such segment."""
    return segment_filter(segment_get(account=account, segment_id=segment_id))


def segment_contacts(*, segment: Segment) -> QuerySet[Contact]:
    return Contact.objects.filter(account_id=segment.account_id).filter(segment_filter(segment))


def segment_contact_count(*, segment: Segment) -> int:
    return segment_contacts(segment=segment).count()


def segment_contact_counts(*, account: Account, segments: Sequence[Segment]) -> dict[str, int]:
    """Every segment's count in one pass over the account's contacts."""
    if not segments:
        return {}
    counts = Contact.objects.filter(account=account).aggregate(
        **{f"s{i}": Count("pk", filter=segment_filter(s)) for i, s in enumerate(segments)}
    )
    return {s.pk: int(counts[f"s{i}"] or 0) for i, s in enumerate(segments)}


def segment_queryset(*, account: Account, q: str = "") -> QuerySet[Segment]:
    """The account's segments, newest first; ``q`` matches the name or description."""
    segments = Segment.objects.filter(account=account)
    q = q.strip()
    if q:
        segments = segments.filter(Q(name__icontains=q) | Q(description__icontains=q))
    return segments.order_by("-created_at", "-id")


def criteria_contact_count(*, account: Account, criteria: dict[str, object]) -> int:
    """How many of the account's contacts canonical ``criteria`` select now (a segment
    being edited, before it is saved)."""
    return Contact.objects.filter(account=account).filter(criteria_q(criteria)).count()


def segment_list(*, account: Account, limit: int, offset: int) -> SegmentPage:
    segments = Segment.objects.filter(account=account).order_by("-created_at", "-id")
    total = segments.count()
    page = list(segments[offset : offset + limit]) if offset < total else []
    return SegmentPage(
        segments=page,
        counts=segment_contact_counts(account=account, segments=page),
        total=total,
    )


def segment_member_phones(*, account: Account, segment_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each segment's member phone numbers (E.164), oldest contact first.

    Raises NOT_FOUND listing every id that is not a segment of this account.
    """
    wanted = list(dict.fromkeys(segment_ids))
    found = {s.pk: s for s in Segment.objects.filter(account=account, pk__in=wanted)}
    unknown = [segment_id for segment_id in wanted if segment_id not in found]
    if unknown:
        raise DomainError(
            ErrorCode.NOT_FOUND,
            f"Segment not found: {', '.join(unknown)}",
            {"segment_ids": unknown},
        )
    return {
        segment_id: list(
            segment_contacts(segment=found[segment_id])
            .order_by("created_at", "id")
            .values_list("phone_number", flat=True)
        )
        for segment_id in wanted
    }
