"""The submit attempts' index on the message keeps its entries but not its twin: Django's
pattern index on the message's id (``LIKE 'x%'``), which no lookup uses and every attempt
wrote. The plain index is renamed ``submit_attempt_message``, declared in ``Meta``; nothing
is rebuilt."""

import django.db.models.deletion
from django.db import migrations, models

from mifumo.migration_ops import RetireFieldIndexes


class Migration(migrations.Migration):
    dependencies = [
        ("sms", "0009_recipient_tally"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                RetireFieldIndexes("submitattempt", "message", keep_as="submit_attempt_message"),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="submitattempt",
                    name="message",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="submit_attempts",
                        to="sms.message",
                    ),
                ),
                migrations.AddIndex(
                    model_name="submitattempt",
                    index=models.Index(fields=["message"], name="submit_attempt_message"),
                ),
            ],
        ),
    ]
