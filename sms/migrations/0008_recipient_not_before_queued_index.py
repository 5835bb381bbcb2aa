"""Recipients in temporary trouble wait until ``not_before`` before they are claimed again;
the dispatcher claims queued recipients of any message through a partial index on their id.

The index is built concurrently, so sends go on while it is built on a large table."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("sms", "0007_unmatched_receipts"),
    ]

    operations = [
        migrations.AddField(
            model_name="recipient",
            name="not_before",
            field=models.DateTimeField(blank=True, null=True),
        ),
        AddIndexConcurrently(
            model_name="recipient",
            index=models.Index(
                condition=models.Q(("status", "queued")), fields=["id"], name="recipient_queued"
            ),
        ),
    ]
