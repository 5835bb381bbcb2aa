"""Migration operations for the indexes Django's PostgreSQL schema editor makes on its own.

For a ``varchar`` primary key, and for a foreign key to one with ``db_index``, Django makes a
second index with ``varchar_pattern_ops`` (named ``..._like``) for ``LIKE 'x%'``; for every
foreign key with ``db_index``, a plain index of its own, even where a composite index starts
with its column. Ids are looked up whole (only the messages' id is searched by prefix), and
every index is one more entry written with each row (and with each update that is not HOT).
``RetireFieldIndexes`` drops them from the database only: pair it, in
``SeparateDatabaseAndState``, with the state's ``AlterField`` (``db_index=False``; altering
the field in the database would also drop and re-add its foreign key, which checks every row
again) and, where the plain index stays as a named one, its ``AddIndex``. Keeping that index
is a rename, so nothing is rebuilt and no write waits.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState


def _pattern_opclass(field: Any, schema_editor: BaseDatabaseSchemaEditor) -> str:
    """The operator class of the pattern index Django makes for ``field``'s column type, or
    "" for a type it makes none for (an integer key)."""
    db_type = field.db_type(connection=schema_editor.connection) or ""
    if db_type.startswith("varchar"):
        return "varchar_pattern_ops"
    if db_type.startswith("text"):
        return "text_pattern_ops"
    return ""


class RetireFieldIndexes(Operation):
    """Drop the ``_like`` index Django made for ``model_name.field_name``; with ``plain``,
    drop its plain index too, or rename it ``keep_as`` (the name of the ``Meta`` index the
    state adds for it). PostgreSQL only; reversible."""

    reduces_to_sql = True
    reversible = True

    def __init__(
        self, model_name: str, field_name: str, *, plain: bool = True, keep_as: str = ""
    ) -> None:
        self.model_name = model_name
        self.field_name = field_name
        self.plain = plain
        self.keep_as = keep_as

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"plain": self.plain, "keep_as": self.keep_as}
        return self.__class__.__name__, [self.model_name, self.field_name], kwargs

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass  # the database only

    def _names(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> tuple[Any, Any, str, str] | None:
        model = state.apps.get_model(app_label, self.model_name)
        if schema_editor.connection.vendor != "postgresql" or not self.allow_migrate_model(
            schema_editor.connection.alias, model
        ):
            return None
        field = model._meta.get_field(self.field_name)
        table = model._meta.db_table
        plain = schema_editor._create_index_name(table, [field.column])  # type: ignore[attr-defined]
        like = schema_editor._create_index_name(table, [field.column], suffix="_like")  # type: ignore[attr-defined]
        return model, field, plain, like

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        names = self._names(app_label, schema_editor, from_state)
        if names is None:
            return
        _model, field, plain, like = names
        quote = schema_editor.quote_name
        if _pattern_opclass(field, schema_editor):
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(like)}")
        if not self.plain:
            return
        if self.keep_as:
            schema_editor.execute(f"ALTER INDEX {quote(plain)} RENAME TO {quote(self.keep_as)}")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(plain)}")

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        names = self._names(app_label, schema_editor, to_state)
        if names is None:
            return
        model, field, plain, like = names
        quote = schema_editor.quote_name
        if self.plain:
            if self.keep_as:
                schema_editor.execute(f"ALTER INDEX {quote(self.keep_as)} RENAME TO {quote(plain)}")
            else:
                schema_editor.execute(
                    schema_editor._create_index_sql(model, fields=[field], name=plain)  # type: ignore[attr-defined]
                )
        # As Django makes it (``_create_like_index_sql``), whatever the field's db_index in
        # the state handed here.
        opclass = _pattern_opclass(field, schema_editor)
        if not opclass:
            return  # an integer key: Django made no pattern index for it
        schema_editor.execute(
            schema_editor._create_index_sql(  # type: ignore[attr-defined]
                model, fields=[field], name=like, suffix="_like", opclasses=[opclass]
            )
        )

    def describe(self) -> str:
        kept = f", keeping the plain one as {self.keep_as}" if self.keep_as else ""
        which = "indexes" if self.plain and not self.keep_as else "pattern index"
        return f"Drop the {which} Django made for {self.model_name}.{self.field_name}{kept}"
