"""The ledger's index on ``created_by`` holds only the rows that name a user: every send's
debit (and every refund) has none, and each paid an index entry that no lookup reads.

The new index is built concurrently, before the old one goes, so sends (each writes a ledger
row) go on while it is built on a large ledger, and a user's rows are never unindexed. The
old index is dropped by name and the field changed in the state only: altering the field in
the database would drop and re-add its foreign key, which checks every row again."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

from mifumo.migration_ops import RetireFieldIndexes


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("integration", "0007_usage_log_account_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="ledgerentry",
            index=models.Index(
                condition=models.Q(("created_by__isnull", False)),
                fields=["created_by"],
                name="ledger_created_by",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[RetireFieldIndexes("ledgerentry", "created_by")],
            state_operations=[
                migrations.AlterField(
                    model_name="ledgerentry",
                    name="created_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
