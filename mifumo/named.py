"""Writes to account-owned records whose names are unique per account whatever their case
(segments, message templates): the database constraint decides between two concurrent
writes, and losing is 409 CONFLICT naming the record that holds the name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django.db.models import Value
from django.db.models.functions import Lower
from django.utils import timezone

from mifumo.errors import DomainError, ErrorCode

N = TypeVar("N", bound=models.Model)


def save_named(record: models.Model, *, what: str, id_key: str, **kwargs: Any) -> None:
    """Save in a savepoint; a name the account already uses -> CONFLICT with ``id_key``.
    ``record`` has ``account`` and ``name`` fields."""
    name = getattr(record, "name")  # noqa: B009 - every named model has one
    try:
        with transaction.atomic():
            record.save(**kwargs)
    except IntegrityError:
        account_id = getattr(record, "account_id")  # noqa: B009
        # Compared as the unique index compares (lower()): iexact compares upper(), and the
        # two differ for a few letters (the Kelvin sign lowers to k, but upper() keeps it).
        existing = (
            type(record)
            ._default_manager.annotate(lowered=Lower("name"))
            .filter(account_id=account_id, lowered=Lower(Value(name)))
            .exclude(pk=record.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if existing is None:
            raise
        raise DomainError(
            ErrorCode.CONFLICT,
            f"A {what} named '{name}' already exists",
            {id_key: existing, "name": name},
        ) from None


def update_named(
    record: N, data: Mapping[str, Any], fields: Sequence[str], save: Callable[..., None]
) -> N:
    """Set the ``fields`` present in ``data`` and save them with a new ``updated_at``."""
    changed = [name for name in fields if name in data]
    if not changed:
        return record
    for name in changed:
        setattr(record, name, data[name])
    setattr(record, "updated_at", timezone.now())  # noqa: B010
    save(record, update_fields=[*changed, "updated_at"])
    return record
