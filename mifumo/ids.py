"""Prefixed, sortable public ids: ``msg_01J…`` (a ULID after the prefix)."""

from __future__ import annotations

from django.utils.deconstruct import deconstructible
from ulid import ULID


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


@deconstructible
class IdFactory:
    """A migration-serialisable default for prefixed id fields."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self) -> str:
        return new_id(self.prefix)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdFactory) and other.prefix == self.prefix

    def __hash__(self) -> int:
        return hash(self.prefix)


ID_MAX_LENGTH = 32  # "whk_" + 26 ULID characters, with room to spare
