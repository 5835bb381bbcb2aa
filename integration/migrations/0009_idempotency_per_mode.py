"""Idempotency records per mode: a test key and a live key of one account that send the same
Idempotency-Key make two requests, not a replay of the other's answer.

The new unique index is built before the old one goes, so keys stay unique throughout; the
table holds a day of records at most."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integration", "0008_ledger_created_by_partial_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencyrecord",
            name="is_test",
            field=models.BooleanField(default=False),
        ),
        migrations.AddConstraint(
            model_name="idempotencyrecord",
            constraint=models.UniqueConstraint(
                fields=("account", "is_test", "key"), name="idempotency_unique_key_per_mode"
            ),
        ),
        migrations.RemoveConstraint(
            model_name="idempotencyrecord",
            name="idempotency_unique_key",
        ),
    ]
