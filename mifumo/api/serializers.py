"""Serializers shared by every app's API documentation."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.fields import Field


def _field_copy(field: Field) -> Field:
    """A fresh, unbound copy of a prototype field: its attributes copied, not its
    constructor run again. A list or dict field's child is copied too and points at its new
    parent; a nested serializer is deep-copied as DRF would."""
    if isinstance(field, serializers.BaseSerializer):
        return copy.deepcopy(field)
    clone = object.__new__(type(field))
    clone.__dict__.update(field.__dict__)
    child = getattr(field, "child", None)
    if isinstance(child, Field):
        child_clone = _field_copy(child)
        child_clone.__dict__["parent"] = clone
        clone.__dict__["child"] = child_clone
    return clone


class PrebuiltFieldsSerializer(serializers.Serializer):
    """A serializer whose declared fields are built once per class.

    DRF deep-copies every declared field for each serializer instance, which re-runs each
    field's constructor: for a request body of nine fields that was most of validating it.
    Here the first instance of a class keeps DRF's copies as prototypes and every instance
    gets shallow copies of them. Fields are configured by their constructors and only bound
    (name, parent) afterwards, so a shallow copy is a fresh field; what the copies share
    (validators, error messages, choices) is never changed after construction."""

    def get_fields(self) -> dict[str, Field]:
        cls = type(self)
        prototypes: dict[str, Field] | None = cls.__dict__.get("_field_prototypes")
        if prototypes is None:
            prototypes = super().get_fields()
            cls._field_prototypes = prototypes  # type: ignore[attr-defined]
        return {name: _field_copy(field) for name, field in prototypes.items()}


class PagePaginationOut(serializers.Serializer):
    page = serializers.IntegerField()
    per_page = serializers.IntegerField()
    total = serializers.IntegerField()
    pages = serializers.IntegerField()


class OffsetPaginationOut(serializers.Serializer):
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    total = serializers.IntegerField()


class StrictSerializer(PrebuiltFieldsSerializer):
    """Refuses fields it does not know (400 VALIDATION_ERROR naming each), so that a
    misspelt option is an error rather than silently a default."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                known = ", ".join(sorted(self.fields))
                raise serializers.ValidationError(
                    {name: [f"Unknown field; the fields are: {known}"] for name in unknown}
                )
        return super().to_internal_value(data)


def near_miss(name: str, known: list[str]) -> str | None:
    """The field ``name`` looks like a misspelling of (case, hyphens, a letter or two, a
    plural), or None."""
    close = difflib.get_close_matches(name.lower().replace("-", "_"), known, n=1, cutoff=0.75)
    return close[0] if close else None


class TolerantSerializer(PrebuiltFieldsSerializer):
    """Passes over fields it does not know, except one that looks like a misspelling of a
    field it does (``scheduled_time``, ``scheduleTime``, ``sender``): that is a 400
    VALIDATION_ERROR naming the field it resembles, so that a misspelt option is not
    silently its default."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = sorted(self.fields)
            misspelt = {}
            for name in data:
                if name not in self.fields:
                    match = near_miss(str(name), known)
                    if match is not None:
                        misspelt[str(name)] = [f"Unknown field; did you mean {match}?"]
            if misspelt:
                raise serializers.ValidationError(dict(sorted(misspelt.items())))
        return super().to_internal_value(data)
