"""A JSON array of tags with "has any of" and "has all of" lookups.

Both are the jsonb ``?|`` / ``?&`` operators, which a GIN index on the column serves
(migration 0002).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import JSONField, Lookup
from django.db.models.sql.compiler import SQLCompiler

if TYPE_CHECKING:
    _Lookup = Lookup[Any]
else:
    _Lookup = Lookup


class TagsField(JSONField):
    description = "A list of normalised tags"


class _TagsLookup(_Lookup):
    # The right-hand side is a list of tags, bound as it is: JSON-encoding it, as JSONField
    # does with values it compares, would not suit the operators below.
    prepare_rhs = False
    operator = ""
    # What an empty list of tags matches.
    when_empty = ""

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        tags = sorted({str(tag) for tag in self.rhs})
        if not tags:
            return self.when_empty, ()
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} {self.operator} %s", (*params, tags)


@TagsField.register_lookup
class TagsAnyOf(_TagsLookup):
    lookup_name = "any_of"
    operator = "?|"
    when_empty = "1 = 0"


@TagsField.register_lookup
class TagsAllOf(_TagsLookup):
    lookup_name = "all_of"
    operator = "?&"
    when_empty = "1 = 1"
