"""A JSON array of tags with "has any of" and "has all of" lookups that are single SQL
expressions on PostgreSQL and SQLite.

PostgreSQL answers both with the jsonb ``?|`` / ``?&`` operators, which a GIN index on the
column serves (migration 0002). SQLite has no such operators; ``json_each`` expands the
array inside a correlated subquery, which is correct and fast enough for a laptop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import NotSupportedError
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

    def tags(self) -> list[str]:
        return sorted({str(tag) for tag in self.rhs})

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        raise NotSupportedError(
            f"tags__{self.lookup_name} needs PostgreSQL or SQLite, not {connection.vendor}"
        )


@TagsField.register_lookup
class TagsAnyOf(_TagsLookup):
    lookup_name = "any_of"

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        tags = self.tags()
        if not tags:
            return "1 = 0", ()
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} ?| %s", (*params, tags)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        tags = self.tags()
        if not tags:
            return "1 = 0", ()
        lhs, params = self.process_lhs(compiler, connection)
        marks = ", ".join(["%s"] * len(tags))
        # lhs is the compiled column; every value is a bound parameter.
        sql = f"EXISTS (SELECT 1 FROM json_each({lhs}) AS t WHERE t.value IN ({marks}))"  # noqa: S608
        return sql, (*params, *tags)


@TagsField.register_lookup
class TagsAllOf(_TagsLookup):
    lookup_name = "all_of"

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        tags = self.tags()
        if not tags:
            return "1 = 1", ()
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} ?& %s", (*params, tags)

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Any:
        tags = self.tags()
        if not tags:
            return "1 = 1", ()
        lhs, params = self.process_lhs(compiler, connection)
        marks = ", ".join(["%s"] * len(tags))
        # Stored tags are de-duplicated, so counting the matches tells whether all are there.
        sql = (
            f"(SELECT COUNT(DISTINCT t.value) FROM json_each({lhs}) AS t "  # noqa: S608
            f"WHERE t.value IN ({marks})) = %s"
        )
        return sql, (*params, *tags, len(tags))
