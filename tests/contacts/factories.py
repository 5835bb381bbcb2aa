"""Contacts made directly in the database, for tests that are not about creating them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contacts.models import Contact
from integration.models import Account


def phone(n: int) -> str:
    """A distinct valid Tanzanian mobile number in E.164 for each n < 10,000,000."""
    return f"+25571{n:07d}"


def make_contact(
    account: Account,
    n: int = 0,
    *,
    name: str | None = None,
    tags: list[str] | None = None,
    created_at: datetime | None = None,
    **fields: Any,
) -> Contact:
    contact = Contact.objects.create(
        account=account,
        name=name or f"Contact {n}",
        phone_number=fields.pop("phone_number", phone(n)),
        tags=tags or [],
        **fields,
    )
    if created_at is not None:
        Contact.objects.filter(pk=contact.pk).update(created_at=created_at)
        contact.refresh_from_db()
    return contact
