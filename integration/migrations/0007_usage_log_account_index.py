"""The usage log's index on the account alone goes: ``usage_account_time`` (account, then
time) serves every lookup by account, and each request's row paid one more index entry."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integration", "0006_invitations_and_balance_alerts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="apirequestlog",
            name="account",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="integration.account",
            ),
        ),
    ]
