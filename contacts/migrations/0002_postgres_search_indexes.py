"""PostgreSQL indexes: trigram GIN indexes for substring search on name, email and
phone number, and a GIN index on tags for the ?| / ?& segment operators.

Search uses icontains on all three columns, so each index is on ``UPPER(column)``, which is
what the ORM emits (``UPPER(name::text) LIKE UPPER(…)``). For the phone number this also
matters the other way: a trigram index on the bare column serves ``=`` too, and the planner
then picks it for ``phone_number IN (…2,000 numbers…)`` (the import's duplicate check)
over the unique btree, taking seconds instead of milliseconds.

Without the pg_trgm extension (and no right to create it) search still works, by scanning.
"""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger(__name__)

TRIGRAM_INDEXES = {
    "contact_name_trgm": "UPPER(name) gin_trgm_ops",
    "contact_email_trgm": "UPPER(email) gin_trgm_ops",
    "contact_phone_trgm": "UPPER(phone_number) gin_trgm_ops",
}
TAGS_INDEX = ("contact_tags_gin", "tags")


def _table(apps):
    return apps.get_model("contacts", "Contact")._meta.db_table


def create_indexes(apps, schema_editor):
    table = schema_editor.quote_name(_table(apps))
    indexes = [TAGS_INDEX]
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        logger.warning("pg_trgm unavailable (%s); contact search will scan instead", exc)
    else:
        indexes += list(TRIGRAM_INDEXES.items())
    for name, expression in indexes:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {schema_editor.quote_name(name)} "
            f"ON {table} USING gin ({expression})"
        )


def drop_indexes(apps, schema_editor):
    for name in [TAGS_INDEX[0], *TRIGRAM_INDEXES]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


class Migration(migrations.Migration):
    dependencies = [("contacts", "0001_initial")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
