"""Contacts and their opt-out history write fewer index entries, with every lookup still
indexed: no pattern index (``LIKE 'x%'``) on the contact's id, here or in the history (ids
are looked up whole), and no index on the account alone (``contact_account_recent``,
``contact_phone_unique`` and ``opt_out_change_recent`` start with it). The history's plain
index on the contact stays, renamed ``opt_out_change_contact``: nothing is rebuilt."""

import django.db.models.deletion
from django.db import migrations, models

from mifumo.migration_ops import RetireFieldIndexes


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0004_opt_out_history"),
        ("integration", "0008_ledger_created_by_partial_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                RetireFieldIndexes("contact", "id", plain=False),
                RetireFieldIndexes("contact", "account"),
                RetireFieldIndexes("optoutchange", "account"),
                RetireFieldIndexes("optoutchange", "contact", keep_as="opt_out_change_contact"),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="contact",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="contacts",
                        to="integration.account",
                    ),
                ),
                migrations.AlterField(
                    model_name="optoutchange",
                    name="account",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="integration.account",
                    ),
                ),
                migrations.AlterField(
                    model_name="optoutchange",
                    name="contact",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="opt_out_history",
                        to="contacts.contact",
                    ),
                ),
                migrations.AddIndex(
                    model_name="optoutchange",
                    index=models.Index(fields=["contact"], name="opt_out_change_contact"),
                ),
            ],
        ),
    ]
