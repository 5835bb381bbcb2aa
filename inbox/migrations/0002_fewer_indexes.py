"""Inbound messages write fewer index entries, with every lookup still indexed: no pattern
index (``LIKE 'x%'``) on their id, their contact's or the message they answer (ids are looked
up whole), and no index on the account alone (``inbound_account_recent`` and
``inbound_conversation`` start with it). The plain indexes on the contact and the message
answered stay, renamed ``inbound_contact`` and ``inbound_in_reply_to``: nothing is rebuilt."""

import django.db.models.deletion
from django.db import migrations, models

from mifumo.migration_ops import RetireFieldIndexes


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0005_fewer_indexes"),
        ("inbox", "0001_initial"),
        ("integration", "0008_ledger_created_by_partial_index"),
        ("sms", "0010_submit_attempt_message_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                RetireFieldIndexes("inboundmessage", "id", plain=False),
                RetireFieldIndexes("inboundmessage", "account"),
                RetireFieldIndexes("inboundmessage", "contact", keep_as="inbound_contact"),
                RetireFieldIndexes("inboundmessage", "in_reply_to", keep_as="inbound_in_reply_to"),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="inboundmessage",
                    name="account",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="inbound",
                        to="integration.account",
                    ),
                ),
                migrations.AlterField(
                    model_name="inboundmessage",
                    name="contact",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="contacts.contact",
                    ),
                ),
                migrations.AlterField(
                    model_name="inboundmessage",
                    name="in_reply_to",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="sms.message",
                    ),
                ),
                migrations.AddIndex(
                    model_name="inboundmessage",
                    index=models.Index(fields=["contact"], name="inbound_contact"),
                ),
                migrations.AddIndex(
                    model_name="inboundmessage",
                    index=models.Index(fields=["in_reply_to"], name="inbound_in_reply_to"),
                ),
            ],
        ),
    ]
